/**
 * `--progress` and several references at once, against the real registry:
 * JSON lines (the documented schema) from every command with progress, its
 * results in the summary and nothing else on stdout, one download of a blob two
 * images share, one reference failing among others, and the modes' names.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { startProxy } from "./fixtures/proxy.ts";
import { type Testbed, testbed } from "./harness.ts";

const DIGEST = /^sha256:[0-9a-f]{64}$/;
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const STATES = [
  ...["resolving", "resolved", "waiting", "downloading", "committing", "extracting", "uploading"],
  ...["importing", "exporting", "done", "exists", "mounted", "skipped"],
];

function jsonLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .trimEnd()
    .split("\n")
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return assert.fail(`not a JSON line: ${l}`);
      }
    });
}

/** Every line is an event of the README's schema, the last one the summary. */
function checkSchema(lines: Record<string, unknown>[]): Record<string, unknown> {
  const summary = lines[lines.length - 1];
  assert.equal(summary.type, "summary");
  for (const e of lines.slice(0, -1)) {
    assert.equal(e.type, "progress", JSON.stringify(e));
    assert.equal(typeof e.object, "string");
    assert.ok(STATES.includes(e.state as string), JSON.stringify(e));
    assert.ok(Number.isSafeInteger(e.offset) && Number.isSafeInteger(e.total));
    assert.match(e.time as string, TIME);
    if (e.started !== undefined) assert.match(e.started as string, TIME);
    if (e.kind === "reference") assert.equal(e.digest, undefined);
    else {
      assert.ok(["manifest", "index", "config", "layer"].includes(e.kind as string), JSON.stringify(e));
      assert.match(e.digest as string, DIGEST);
      assert.equal(e.object, `${e.kind}-${e.digest}`);
    }
  }
  assert.match(summary.time as string, TIME);
  assert.match(summary.started as string, TIME);
  assert.ok(Number.isSafeInteger(summary.elapsedMs) && Number.isSafeInteger(summary.transferred));
  return summary;
}

describe("--progress and several references", () => {
  let tb: Testbed;
  before(async () => {
    tb = await testbed();
  });
  after(() => tb.stop());

  test("pull --progress json: one event per line, every blob done, a summary naming the image and its snapshot", async () => {
    const ref = `${tb.plain}/tiny/busybox:oci`;
    const img = tb.images["tiny/busybox:oci"];
    const r = await tb.dist(["pull", "--progress", "json", "--plain-http", "--snapshotter", "native", ref], {
      root: tb.newRoot(),
    });
    assert.equal(r.code, 0, r.stderr);
    const lines = jsonLines(r.stdout);
    const summary = checkSchema(lines);
    assert.equal(summary.status, "ok");
    assert.deepEqual(summary.objects, { done: 3 });
    assert.equal(summary.transferred, sizeOf(img));
    const images = summary.images as Record<string, unknown>[];
    assert.equal(images.length, 1);
    assert.equal(images[0].name, ref);
    assert.equal(images[0].digest, img.digest);
    const unpacked = images[0].unpacked as Record<string, string>[];
    assert.equal(unpacked[0].platform, "linux/amd64");
    assert.match(unpacked[0].chainID, DIGEST);
    // each blob's last state is done, the reference's resolved
    const last = new Map(lines.slice(0, -1).map((e) => [e.object as string, e.state]));
    assert.equal(last.get(ref), "resolved");
    for (const d of img.blobs)
      assert.ok(
        [...last].some(([k, s]) => k.endsWith(d) && s === "done"),
        d,
      );
  });

  test("push, copy, export and import with --progress json: JSON lines only on stdout, their results in the summary", async () => {
    const src = `${tb.plain}/tiny/busybox:oci`;
    const img = tb.images["tiny/busybox:oci"];
    const root = tb.newRoot();
    const json = async (args: string[]) => {
      const r = await tb.dist(["--progress", "json", ...args], { root });
      assert.equal(r.code, 0, r.stderr);
      return checkSchema(jsonLines(r.stdout));
    };
    const fetched = await json(["fetch", "--plain-http", src]);
    assert.equal((fetched.images as Record<string, unknown>[])[0].digest, img.digest);

    const dst = await tb.registry();
    after(() => dst.stop());
    const pushedTo = `${dst.addr}/pushed/busybox:1`;
    const pushed = await json(["push", "--plain-http", pushedTo, src]);
    assert.equal(pushed.status, "ok");
    assert.deepEqual(pushed.pushed, { name: pushedTo, digest: img.digest, mediaType: img.mediaType, size: img.size });

    const copiedTo = `${dst.addr}/copied/busybox:1`;
    const copied = await json(["copy", "--plain-http", src, copiedTo]);
    assert.deepEqual(copied.copied, {
      src,
      dst: copiedTo,
      digest: img.digest,
      mediaType: img.mediaType,
      size: img.size,
      referrers: 0,
    });

    const tar = join(tb.tempDir("export"), "busybox.tar");
    const exported = await json(["export", tar, src]);
    const out = exported.exported as Record<string, unknown>;
    assert.equal(out.output, tar);
    assert.deepEqual(out.manifests, [{ digest: img.digest, mediaType: img.mediaType, size: img.size }]);
    assert.equal(out.blobs, 3);
    assert.equal(out.size, sizeOf(img));
    assert.ok(existsSync(tar));

    const importRoot = tb.newRoot();
    // --progress after the command's name works too (and shows in its --help)
    const r = await tb.dist(["import", "--progress", "json", "--unpack", "--snapshotter", "native", tar], {
      root: importRoot,
    });
    assert.equal(r.code, 0, r.stderr);
    const imported = checkSchema(jsonLines(r.stdout));
    assert.deepEqual(imported.imported, [{ name: src, digest: img.digest, mediaType: img.mediaType, size: img.size }]);
    const unpacked = imported.unpacked as Record<string, string>[];
    assert.equal(unpacked.length, 1);
    assert.equal(unpacked[0].manifest, img.digest);
    assert.match(unpacked[0].chainID, DIGEST);

    // the same commands without json print their result lines
    const plain = await tb.dist(["--progress", "plain", "push", "--plain-http", pushedTo, src], { root });
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, new RegExp(`^${pushedTo}: digest: ${img.digest} size: ${img.size}$`, "m"));
  });

  test("a failed push in json mode (the local image is not there): the summary's error names the reference", async () => {
    const root = tb.newRoot();
    const dead = await tb.deadAddr();
    const r = await tb.dist(["--progress", "json", "push", "--plain-http", `${dead}/x/y:1`, "no-such/image:1"], {
      root,
    });
    assert.equal(r.code, 1);
    const summary = checkSchema(jsonLines(r.stdout));
    assert.equal(summary.status, "error");
    assert.match(summary.error as string, new RegExp(`^${dead}/x/y:1: `));
    assert.equal(summary.pushed, undefined);
  });

  test("fetch of two images sharing a layer: one table, the shared layer downloaded once, both recorded", async () => {
    const proxy = await startProxy(tb.plain, "passthrough");
    after(() => proxy.close());
    const refs = [`${proxy.addr}/tiny/busybox:oci`, `${proxy.addr}/edge/whiteouts:oci`];
    const root = tb.newRoot();
    const r = await tb.dist(["fetch", "--plain-http", "--progress", "plain", ...refs], { root });
    assert.equal(r.code, 0, r.stderr);
    const shared = tb.images["tiny/busybox:oci"].layers?.[0].digest as string;
    assert.ok(tb.images["edge/whiteouts:oci"].layers?.some((l) => l.digest === shared));
    const got = proxy.requests.filter((q) => q.startsWith("GET") && q.includes(`/blobs/${shared}`));
    assert.equal(got.length, 1, got.join("\n"));
    assert.equal(r.stdout.match(new RegExp(`layer-${shared}: done`, "g"))?.length, 1, r.stdout);
    assert.equal(r.stdout.match(/^elapsed: /gm)?.length, 1, "one table");
    const ls = await tb.dist(["images", "ls", "-q"], { root });
    assert.deepEqual(ls.stdout.trim().split("\n").sort(), [...refs].sort());
  });

  test("a reference that fails does not stop the others: exit 1, the failure named, the JSON summary says so", async () => {
    const good = `${tb.plain}/tiny/busybox:oci`;
    const bad = `${tb.plain}/tiny/busybox:no-such-tag`;
    const root = tb.newRoot();
    const r = await tb.dist(["pull", "--plain-http", "--progress", "json", "--snapshotter", "native", bad, good], {
      root,
    });
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^dist: ${bad.replace(/[.]/g, "\\.")}: resolving: manifest unknown`, "m"));
    const summary = checkSchema(jsonLines(r.stdout));
    assert.equal(summary.status, "error");
    assert.equal(summary.error, "1 of 2 references failed");
    const images = summary.images as Record<string, unknown>[];
    assert.match(images[0].error as string, /manifest unknown/);
    assert.equal(images[1].digest, tb.images["tiny/busybox:oci"].digest);
    const ls = await tb.dist(["images", "ls", "-q"], { root });
    assert.equal(ls.stdout.trim(), good);
  });

  test("--progress tty draws the table even into a pipe; a bad mode is a usage error", async () => {
    const r = await tb.dist(["--progress", "tty", "fetch", "--plain-http", `${tb.plain}/tiny/busybox:oci`], {
      root: tb.newRoot(),
      env: { COLUMNS: "90" },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\r\x1b\[\d+A/);
    assert.match(r.stdout, /^(\x1b\[2K)?layer 09bc57836280 +done +\|/m);
    const bad = await tb.dist(["pull", "--progress", "fancy", `${tb.plain}/tiny/busybox:oci`]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /invalid --progress "fancy": expected auto, tty, plain, json/);
  });
});

function sizeOf(img: Testbed["images"][string]): number {
  return img.size + (img.config?.size ?? 0) + (img.layers ?? []).reduce((n, l) => n + l.size, 0);
}
