/** `dist images` ls/check/tag/rm and `dist rmi` over a store seeded without a registry. */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { writeBlob } from "../../src/content/helpers.ts";
import { hostPlatform } from "../../src/images/platforms.ts";
import { closeAllDatabases } from "../../src/metadata/db.ts";
import { namespacedContentStore, openSqliteImageStore } from "../../src/metadata/metadata.ts";
import { addImage, addIndex, MemoryProvider } from "./memory.ts";

const DIST = join(import.meta.dirname, "..", "..", "bin", "dist");
const root = mkdtempSync(join(tmpdir(), "dist-images-cli-"));

async function dist(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await promisify(execFile)(DIST, ["--root", root, ...args], { env: { ...process.env, CI: "true" } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

let missingLayer = "";
let hostSize = 0;

before(async () => {
  const p = new MemoryProvider();
  const host = hostPlatform();
  const other =
    host.architecture === "s390x" ? { os: "linux", architecture: "ppc64le" } : { os: "linux", architecture: "s390x" };
  const mine = addImage(p, host, ["host layer one", "host layer two"]);
  const theirs = addImage(p, other, ["other layer"]);
  const index = addIndex(p, [
    { ...mine.manifest, platform: host },
    { ...theirs.manifest, platform: other },
  ]);
  const single = addImage(p, host, ["lonely layer"], { docker: true });
  const store = namespacedContentStore(root);
  for (const [digest, bytes] of p.blobs) {
    if (digest === single.layers[0].digest) continue; // left out: `check` reports it missing
    await writeBlob(store, `seed-${digest}`, Readable.from([bytes]), {
      size: bytes.length,
      expected: digest as `${string}:${string}`,
    });
  }
  missingLayer = single.layers[0].digest;
  hostSize = index.size + mine.manifest.size + mine.config.size + mine.layers[0].size + mine.layers[1].size;
  const images = openSqliteImageStore(root, "default");
  await images.put({ name: "example.com/multi:1", target: index, labels: {} });
  await images.put({ name: "docker.io/library/single:latest", target: single.manifest, labels: {} });
  closeAllDatabases();
});

after(() => rmSync(root, { recursive: true, force: true }));

describe("dist images", () => {
  it("lists REF TYPE DIGEST PLATFORMS SIZE, the size for the host platform", async () => {
    const r = await dist("images", "ls", "--output", "json");
    assert.equal(r.code, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as Array<{ name: string; size: number; platforms: string[] }>;
    assert.deepEqual(
      rows.map((x) => x.name),
      ["docker.io/library/single:latest", "example.com/multi:1"],
    );
    assert.equal(rows[1].size, hostSize);
    assert.equal(rows[1].platforms.length, 2);
    const table = await dist("images");
    assert.match(table.stdout, /^REF\s+TYPE\s+DIGEST\s+PLATFORMS\s+SIZE\n/);
    const q = await dist("images", "-q");
    assert.equal(q.stdout, "docker.io/library/single:latest\nexample.com/multi:1\n");
  });

  it("check says what is present and what is missing", async () => {
    const r = await dist("images", "check");
    assert.equal(r.code, 1, "an incomplete image makes the exit status 1");
    assert.match(r.stdout, /example\.com\/multi:1 .* complete \(5\/5\)/);
    assert.match(r.stdout, /single:latest .* incomplete \(2\/3\)/);
    assert.ok(r.stdout.includes(`docker.io/library/single:latest: missing layer-${missingLayer}`));
    const one = await dist("images", "check", "example.com/multi:1");
    assert.equal(one.code, 0, one.stderr);
  });

  it("tags, then removes with images rm and rmi (short names normalised)", async () => {
    const t = await dist("images", "tag", "single", "example.com/copy:2");
    assert.equal(t.code, 0, t.stderr);
    assert.equal(t.stdout, "example.com/copy:2\n");
    const again = await dist("images", "tag", "single", "example.com/copy:2");
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already exists/);
    const rm = await dist("images", "rm", "example.com/copy:2");
    assert.equal(rm.stdout, "example.com/copy:2\n");
    const rmi = await dist("rmi", "nope", "single");
    assert.equal(rmi.code, 1);
    assert.equal(rmi.stdout, "docker.io/library/single:latest\n");
    assert.match(rmi.stderr, /^dist: image "nope" not found/);
    assert.equal((await dist("images", "-q")).stdout, "example.com/multi:1\n");
  });
});
