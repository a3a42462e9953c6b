/**
 * The public API as a consumer sees it: the declarations the build ships (emitted here
 * into a temporary directory by the build's own tsconfig). Every export of src/index.ts
 * has a doc comment, is named in the README's Library section, and uses only types a
 * consumer can name (exported too); the README's example is examples/pull.ts, and each
 * main entry point has a program in examples/ (type-checked by `tsc -p .`, run against
 * the installed package by consumer.test.ts).
 *
 * Adding an export: give its declaration a doc comment, name it in the README's Library
 * section, and export the types its signature uses (or mark a member that is not for
 * consumers `@internal`: the build strips it from the declarations).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { DeclarationFiles, type PublicExport } from "./public-api.ts";

const TOP = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

const pkg = JSON.parse(readFileSync(join(TOP, "package.json"), "utf8")) as {
  name: string;
  exports: Record<string, unknown>;
  files: string[];
};
const readme = readFileSync(join(TOP, "README.md"), "utf8");

/** The README's Library section: from its heading to the next second-level heading. */
function librarySection(): string {
  const start = readme.indexOf("\n## Library\n");
  assert.ok(start >= 0, "README.md has a ## Library section");
  const end = readme.indexOf("\n## ", start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

/** The code of a Markdown text: its fenced blocks and inline code spans. */
function codeOf(markdown: string): string {
  const blocks = [...markdown.matchAll(/```[\s\S]*?```/g)].map((m) => m[0]);
  const spans = [...markdown.replace(/```[\s\S]*?```/g, "").matchAll(/`([^`]+)`/g)].map((m) => m[1]);
  return [...blocks, ...spans].join("\n");
}

const mentions = (code: string, name: string) =>
  new RegExp(`(?:^|[^\\w$])${name.replace(/\$/g, "\\$")}(?:$|[^\\w$])`).test(code);

let tmp: string;
let api: PublicExport[];
before(() => {
  tmp = mkdtempSync(join(tmpdir(), "dist-api-"));
  const tsc = spawnSync(
    process.execPath,
    [
      join(TOP, "node_modules", "typescript", "bin", "tsc"),
      ...["-p", join(TOP, "tsconfig.build.json"), "--emitDeclarationOnly", "--outDir", tmp],
      ...["--sourceMap", "false", "--inlineSources", "false"],
    ],
    { encoding: "utf8" },
  );
  assert.equal(tsc.status, 0, `tsc failed:\n${tsc.stdout}${tsc.stderr}`);
  api = new DeclarationFiles(tmp).publicApi();
});
after(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe("the public API", () => {
  test("is what index exports: a fair number of names, each traced to its declaration", () => {
    assert.ok(api.length > 100, `only ${api.length} exports found`);
    const pull = api.find((e) => e.name === "pull");
    assert.equal(pull?.id, "pull.d.ts#pull");
  });

  test("every export has a doc comment", () => {
    const undocumented = api.filter((e) => !e.doc).map((e) => `${e.name} (${e.id})`);
    assert.deepEqual(undocumented, [], "exports without a doc comment above their declaration");
  });

  test("every export is named in the README's Library section", () => {
    const code = codeOf(librarySection());
    const missing = api.filter((e) => !mentions(code, e.name)).map((e) => e.name);
    assert.deepEqual(missing, [], "exports the README's Library section does not name (in code)");
  });

  test("public signatures use only types a consumer can name", () => {
    const exported = new Set(api.map((e) => e.id));
    const hidden = api.flatMap((e) =>
      [...e.uses].filter((id) => !exported.has(id)).map((id) => `${e.name} uses ${id}`),
    );
    assert.deepEqual(hidden, [], "export these too, or mark the members that use them @internal");
  });

  test("the package exposes only its entry point", () => {
    assert.deepEqual(Object.keys(pkg.exports).sort(), [".", "./package.json"]);
    assert.deepEqual(pkg.exports["."], { types: "./build/index.d.ts", default: "./build/index.js" });
    assert.deepEqual(pkg.files, ["build/"]);
  });
});

describe("the examples", () => {
  const EXAMPLES: Record<string, string> = {
    pull: "pull.ts",
    fetchImage: "fetch.ts",
    createResolver: "resolver.ts",
    namespacedContentStore: "content-store.ts",
    openSnapshotterAt: "snapshots.ts",
    applyLayer: "apply.ts",
  };

  for (const [entry, file] of Object.entries(EXAMPLES)) {
    test(`examples/${file} shows ${entry}, imported from the package`, () => {
      const text = readFileSync(join(TOP, "examples", file), "utf8");
      const imports = [...text.matchAll(/import\s+\{([^}]*)\}\s+from\s+"([^"]+)"/g)]
        .filter((m) => m[2] === pkg.name)
        .flatMap((m) => m[1].split(",").map((s) => s.trim().replace(/^type\s+/, "")));
      assert.ok(imports.includes(entry), `examples/${file} does not import ${entry} from "${pkg.name}"`);
    });
  }

  test("the README's Library section installs the package and shows examples/pull.ts as it is", () => {
    const section = librarySection();
    assert.ok(section.includes(`npm install ${pkg.name}`), `no "npm install ${pkg.name}" in the Library section`);
    const example = readFileSync(join(TOP, "examples", "pull.ts"), "utf8");
    assert.ok(section.includes(`\`\`\`ts\n${example}\`\`\``), "the Library section's example is not examples/pull.ts");
  });
});
