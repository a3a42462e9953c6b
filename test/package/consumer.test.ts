/**
 * The package as a consumer gets it: `npm pack` of this checkout (its prepack builds it),
 * installed by npm into a scratch project that cannot see the checkout, where
 * (a) TypeScript type-checks a consumer's file and the examples against the shipped
 *     declarations (strict, without skipLibCheck);
 * (b) a JavaScript file pulls an image from the test registry through the library and
 *     unpacks it (fetchImage and an Unpacker, as pull composes them), and so do the
 *     examples (pull itself), run by Node from the scratch project;
 * (c) the installed `dist` (node_modules/.bin, npx, `npm install -g`) prints its version and
 *     pulls, and tells an older Node.js what it needs.
 * The scratch project is a fresh directory under the system's temp directory with no
 * package.json or node_modules above it; its commands run with an environment that names
 * nothing of the checkout (PATH without its node_modules/.bin, no DIST_* or NODE_* variables).
 * npm talks only to the npm registry, for the dependencies (--prefer-offline: its cache first).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { Digest } from "../../src/digest.ts";
import { chainID } from "../../src/unpack/chainid.ts";
import { must, type RunResult, run, which } from "../integration/fixtures/exec.ts";
import { type Testbed, TOP, testbed } from "../integration/harness.ts";

const pkg = JSON.parse(readFileSync(join(TOP, "package.json"), "utf8")) as {
  name: string;
  version: string;
  devDependencies: Record<string, string>;
};
const HERE = join(TOP, "test", "package");
const REF = "tiny/busybox:oci";

let tb: Testbed;
let scratch: string;
let env: NodeJS.ProcessEnv;
/** The test registry's image: its name, and what the config says it unpacks to. */
let ref: string;
let expectedChain: Digest;
let firstLayer: { digest: string; diffID: string };

/** Runs a command in the scratch project with its environment; throws unless it exits 0. */
const inScratch = (cmd: string, args: readonly string[]) => must(cmd, args, { cwd: scratch, env });
const runInScratch = (cmd: string, args: readonly string[]): Promise<RunResult> =>
  run(cmd, args, { cwd: scratch, env });
const bin = (name: string) => join(scratch, "node_modules", ".bin", name);

/**
 * This process's environment without the checkout: no variable whose value names it (PATH
 * loses its node_modules/.bin), none of dist's own (DIST_*), no NODE_OPTIONS or NODE_PATH;
 * Node.js 24 first on PATH. What the machine needs to reach the npm registry (proxies,
 * NODE_EXTRA_CA_CERTS) stays.
 */
function consumerEnv(): NodeJS.ProcessEnv {
  const outside = (p: string) => relative(TOP, p).startsWith("..");
  const e: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k.startsWith("DIST_") || k === "NODE_OPTIONS" || k === "NODE_PATH") continue;
    if (k !== "PATH" && v.includes(TOP)) continue;
    e[k] = v;
  }
  const path = (process.env.PATH ?? "").split(":").filter((d) => d !== "" && outside(d));
  e.PATH = [dirname(process.execPath), ...path].join(":");
  e.DOCKER_CONFIG = join(scratch, "docker-config"); // no credentials of this machine's user
  return e;
}

/** A directory whose ancestors hold neither a package.json nor a node_modules. */
function assertIsolated(dir: string): void {
  assert.ok(relative(TOP, dir).startsWith(".."), `${dir} is inside the checkout`);
  for (let d = dirname(dir); ; d = dirname(d)) {
    for (const name of ["package.json", "node_modules"]) {
      assert.ok(!existsSync(join(d, name)), `${join(d, name)} would be visible from the scratch project`);
    }
    if (d === dirname(d)) break;
  }
}

before(async () => {
  tb = await testbed();
  ref = `${tb.plain}/${REF}`;
  const image = tb.images[REF];
  assert.ok(image.config && image.layers, `${REF} is a single manifest`);
  const config = JSON.parse(readFileSync(join(tb.layout, "blobs", ...image.config.digest.split(":")), "utf8"));
  const diffIDs = config.rootfs.diff_ids as Digest[];
  expectedChain = chainID(diffIDs) as Digest;
  firstLayer = { digest: image.layers[0].digest, diffID: diffIDs[0] };

  scratch = tb.tempDir("consumer-");
  assertIsolated(scratch);
  env = consumerEnv();
  mkdirSync(env.DOCKER_CONFIG as string);
  const npm = which("npm");
  assert.ok(npm, "npm is on PATH");
  const packed = JSON.parse(await must(npm, ["pack", "--json", "--pack-destination", scratch], { cwd: TOP, env }));
  const tarball = join(scratch, packed[0].filename);
  writeFileSync(join(scratch, "pack.json"), JSON.stringify(packed[0]));
  writeFileSync(join(scratch, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
  // the project's install and a global one (into a prefix of its own), at once: npm mostly waits
  const flags = ["--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"];
  await Promise.all([
    inScratch(npm, [
      ...["install", ...flags, tarball],
      `typescript@${pkg.devDependencies.typescript}`,
      `@types/node@${pkg.devDependencies["@types/node"]}`,
    ]),
    inScratch(npm, ["install", "--global", "--prefix", join(scratch, "global"), ...flags, tarball]),
  ]);
});
after(async () => {
  await tb?.stop();
});

describe("the packed package", () => {
  test("holds only what a consumer needs", () => {
    const packed = JSON.parse(readFileSync(join(scratch, "pack.json"), "utf8")) as { files: { path: string }[] };
    const paths = packed.files.map((f) => f.path);
    const stray = paths.filter(
      (p) =>
        !["package.json", "README.md", "LICENSE"].includes(p) &&
        !/^build\/.+\.(?:js|d\.ts|js\.map)$/.test(p) &&
        !/^build\/services\/protos\/.+\.proto$/.test(p),
    );
    assert.deepEqual(stray, []);
    for (const p of ["build/index.js", "build/index.d.ts", "build/cli/bin.js", "build/archive/inflate-worker.js"]) {
      assert.ok(paths.includes(p), `${p} is packed`);
    }
    assert.ok(paths.includes("build/services/protos/containerd/services/content/v1/content.proto"));
  });

  test("resolves inside the scratch project", async () => {
    const where = await inScratch(process.execPath, [
      "--input-type=module",
      "-e",
      `for (const m of ["${pkg.name}", "typescript"]) console.log(import.meta.resolve(m));`,
    ]);
    for (const url of where.trim().split("\n")) assert.ok(url.startsWith(`file://${scratch}/node_modules/`), url);
  });
});

describe("(a) TypeScript", () => {
  test("a consumer's file and the examples type-check against the shipped declarations", async () => {
    cpSync(join(HERE, "fixtures", "consumer.ts"), join(scratch, "consumer.ts"));
    cpSync(join(TOP, "examples"), join(scratch, "examples"), { recursive: true });
    const tsconfig = {
      compilerOptions: {
        target: "es2024",
        module: "nodenext",
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: ["node"],
      },
      include: ["consumer.ts", "examples"],
    };
    writeFileSync(join(scratch, "tsconfig.json"), JSON.stringify(tsconfig));
    const r = await runInScratch(bin("tsc"), ["-p", "."]);
    assert.equal(r.code, 0, `tsc: ${r.stdout}${r.stderr}`);
  });
});

describe("(b) JavaScript", () => {
  test("pulls an image from the registry through the library (fetch and unpacker) and unpacks it", async () => {
    cpSync(join(HERE, "fixtures", "consumer.mjs"), join(scratch, "consumer.mjs"));
    const out = await inScratch(process.execPath, ["consumer.mjs", ref, join(scratch, "root-b")]);
    const report = JSON.parse(out);
    assert.equal(report.name, ref);
    assert.equal(report.chainID, expectedChain);
    assert.equal(report.recorded, tb.images[REF].digest);
    assert.equal(report.busybox, true, "the unpacked snapshot holds bin/busybox");
    assert.ok(report.states.includes("done"), `progress states: ${report.states}`);
    assert.equal(report.loadedFrom, `file://${scratch}/node_modules/${pkg.name}/build/index.js`);
    assert.equal(report.internal, "ERR_PACKAGE_PATH_NOT_EXPORTED");
  });

  test("the examples run against the installed package", async () => {
    const root = join(scratch, "root-examples");
    const example = (name: string, ...args: string[]) =>
      inScratch(process.execPath, [join("examples", `${name}.ts`), ...args]);

    assert.match(await example("pull", "--plain-http", ref, root), new RegExp(`^${ref} ${expectedChain}$`, "m"));
    assert.match(await example("fetch", "--plain-http", ref, join(scratch, "root-fetch")), / complete$/m);
    assert.match(await example("resolver", "--plain-http", ref), new RegExp(`layer ${firstLayer.digest}`));
    assert.match(await example("content-store", join(scratch, "root-content")), /^deleted$/m);
    assert.match(await example("snapshots", join(scratch, "root-snapshots")), /^hello world$/m);
    const layer = join(root, "content", "blobs", ...firstLayer.digest.split(":"));
    const dir = join(scratch, "applied");
    assert.match(await example("apply", layer, dir), new RegExp(`^${firstLayer.diffID} `, "m"));
    assert.ok(existsSync(join(dir, "bin", "busybox")), "apply.ts unpacked the layer");
  });
});

describe("(c) the dist command", () => {
  const version = `dist ${pkg.name} ${pkg.version}\n`;

  test("node_modules/.bin/dist, npx and a global install print the package's version", async () => {
    assert.equal(await inScratch(bin("dist"), ["--version"]), version);
    assert.equal(await inScratch("npx", ["--no", "--", "dist", "--version"]), version);
    assert.equal(await inScratch("npx", ["--no", "--", pkg.name, "--version"]), version);
    assert.equal(await inScratch(join(scratch, "global", "bin", "dist"), ["--version"]), version);
  });

  test("dist pull from node_modules/.bin pulls and unpacks", async () => {
    const root = join(scratch, "root-c");
    const out = await inScratch(bin("dist"), [
      ...["--root", root, "pull", "--plain-http", "--snapshotter", "native", "--print-chainid", ref],
    ]);
    assert.match(out, new RegExp(`^image chain ID: ${expectedChain}$`, "m"));
    assert.equal(await inScratch(bin("dist"), ["--root", root, "images", "ls", "-q"]), `${ref}\n`);
  });

  test("dist daemon serves the store, its protos found in the installed package", async () => {
    const root = join(scratch, "root-c"); // the previous test's pull
    const sock = join(scratch, "dist.sock");
    const child = spawn(bin("dist"), ["--root", root, "daemon", "--address", sock], {
      cwd: scratch,
      env,
      stdio: ["ignore", "ignore", "pipe"],
    });
    let log = "";
    child.stderr?.on("data", (b: Buffer) => {
      log += b.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    try {
      for (let i = 0; !existsSync(sock); i++) {
        assert.ok(i < 300 && child.exitCode === null, `the daemon did not start: ${log}`);
        await sleep(100);
      }
      assert.equal(await inScratch(bin("dist"), ["--address", sock, "images", "ls", "-q"]), `${ref}\n`);
    } finally {
      child.kill("SIGTERM"); // the same process as bin.js: it replaced itself with main.js
      assert.equal(await exited, 0, log);
    }
  });

  test("an older Node.js is told what dist needs", async () => {
    // the installed command under Node.js 24 made to report version 20, as an old one would
    const pretend = `data:text/javascript,Object.defineProperty(process.versions,"node",{value:"20.0.0"})`;
    const r = await runInScratch(process.execPath, ["--import", pretend, bin("dist"), "--version"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr.toString(), /^dist: needs Node\.js 24 or newer; .* is Node\.js 20\.0\.0\n$/);
    // and a real one, when this machine has one (Debian's node, as npm's interpreter, often is)
    const system = which("node");
    if (system && system !== process.execPath) {
      const major = Number((await must(system, ["-p", "process.versions.node"])).split(".")[0]);
      if (major < 24) {
        const old = await runInScratch(system, [bin("dist"), "--version"]);
        assert.equal(old.code, 1);
        assert.match(old.stderr.toString(), /^dist: needs Node\.js 24 or newer; /);
      }
    }
  });
});
