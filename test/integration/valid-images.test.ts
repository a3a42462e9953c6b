/**
 * Valid but unusual images (fixtures/unusual.ts) against containerd 1.6, the oracle run
 * here: zstd layers of several frames with skippable frames before, between and after
 * them (pzstd, zstd run on pieces and concatenated, frames written by hand), skopeo's
 * zstd:chunked (one valid image, and one whose diff_ids skopeo 1.9 got wrong), and an
 * index inside an index. dist must do what containerd does on every path: pull on both
 * snapshotters, apply, the Diff service of its daemon (ctr pulling through it), rootfs
 * unpack, bundle and run; `zstd -dc` and umoci say what the layers hold.
 *
 * The dist assertions here fail until the zstd decoder follows RFC 8878 for whole
 * streams and one platform selection recurses into nested indexes (issue 17); the
 * assertions on the fixtures themselves and on containerd pass already.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type DaemonProcess, startDaemonProcess } from "../services/fixture.ts";
import { type Containerd, startContainerd } from "./fixtures/containerd.ts";
import { must, run, which } from "./fixtures/exec.ts";
import { readJson } from "./fixtures/layout.ts";
import { type Testbed, testbed, UNUSUAL } from "./harness.ts";
import { compare, pullImage, scan, umociScan, viewOf } from "./trees.ts";

const isRoot = process.getuid?.() === 0;
const sha256 = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const CHAIN = /image chain ID: (sha256:[0-9a-f]{64})/;

/** The zstd images: each layer decodes to busybox's tar; the zstd frames (at least) and skippable frames in it. */
const MULTI_FRAME = [
  { ref: UNUSUAL.pzstd, what: "pzstd -1: frames each behind a skippable frame", frames: 2, skips: 2 },
  { ref: UNUSUAL.zstdConcat, what: "zstd on three pieces and an empty file, concatenated", frames: 4, skips: 0 },
  { ref: UNUSUAL.zstdSkippable, what: "frames with skippable frames before, between, after", frames: 3, skips: 4 },
  {
    ref: UNUSUAL.chunked,
    what: "skopeo zstd:chunked: a frame per chunk, its TOC in skippable frames",
    frames: 20,
    skips: 2,
  },
] as const;

let tb: Testbed;
let containerd: Containerd;
/** busybox's chain (one layer: its diff_id), what every zstd image and the nested index unpack to. */
let busyboxChain: string;

before(async () => {
  tb = await testbed();
  busyboxChain = readJson(tb.layout, tb.images["tiny/busybox:oci"].config?.digest ?? "").rootfs.diff_ids[0];
  if (isRoot) containerd = await startContainerd(mkdtempSync(join(tmpdir(), "dist-containerd-")));
});
after(async () => {
  await containerd?.stop();
  await tb?.stop();
});

/** The image's blobs as the registry serves them, by hex digest (skopeo dir: transport). */
const blobDirs = new Map<string, Promise<string>>();
function blobsOf(ref: string): Promise<string> {
  let p = blobDirs.get(ref);
  if (!p) {
    p = tb.skopeoPull(`${tb.plain}/${ref}`, [], "dir");
    blobDirs.set(ref, p);
  }
  return p;
}
const blobFile = (dir: string, digest: string) => join(dir, digest.slice("sha256:".length));

/** What the zstd tool decodes the whole blob to, as a digest. */
async function zstdDigest(file: string): Promise<string> {
  const r = await run("zstd", ["-dc", file]);
  assert.equal(r.code, 0, `zstd -dc ${file}: ${r.stderr}`);
  return sha256(r.stdout);
}

/** containerd's pull (its overlayfs snapshotter): exit code, output, and the chain ID it printed. */
async function ctrPull(ref: string) {
  const r = await containerd.ctr(["images", "pull", "--plain-http", "--print-chainid", `${tb.plain}/${ref}`]);
  return { ...r, chainID: CHAIN.exec(r.stdout)?.[1] };
}

function layersOf(ref: string) {
  const info = tb.images[ref];
  assert.ok(info.layers && info.config, `${ref} is a single manifest`);
  return { layers: info.layers, diffIDs: readJson(tb.layout, info.config.digest).rootfs.diff_ids as string[] };
}

describe("zstd layers of several frames", { skip: !isRoot && "containerd needs root" }, () => {
  for (const img of MULTI_FRAME) {
    test(`${img.ref} (${img.what}): the fixture holds what it says and zstd -dc gives the diff_id`, async () => {
      const { layers, diffIDs } = layersOf(img.ref);
      assert.equal(layers[0].mediaType, "application/vnd.oci.image.layer.v1.tar+zstd");
      const file = blobFile(await blobsOf(img.ref), layers[0].digest);
      const list = (await must("zstd", ["-l", file])).trim().split("\n")[1].trim().split(/\s+/);
      // zstd -l: "Frames  Skips  Compressed ...", Frames counting the skippable ones
      const [total, skips] = [Number(list[0]), Number(list[1])];
      assert.equal(skips, img.skips, "skippable frames");
      assert.ok(total - skips >= img.frames, `${total - skips} zstd frames, expected ${img.frames} or more`);
      assert.equal(await zstdDigest(file), diffIDs[0]);
      assert.equal(diffIDs[0], busyboxChain, "the same tar as busybox's layer");
    });

    test(`${img.ref}: containerd unpacks it; dist pull gives its chain ID and busybox's tree on both snapshotters`, async () => {
      const c = await ctrPull(img.ref);
      assert.equal(c.code, 0, `containerd: ${c.stderr}`);
      assert.equal(c.chainID, busyboxChain);
      for (const snapshotter of ["overlay", "native"]) {
        const p = await pullImage(tb, img.ref, snapshotter);
        assert.equal(p.chainID, c.chainID, snapshotter);
        const v = await viewOf(tb, p, snapshotter);
        try {
          assert.deepEqual(compare(scan(v.dir), await umociScan(tb, "busybox")), [], snapshotter);
        } finally {
          await v.done();
        }
      }
    });

    test(`${img.ref}: dist apply of the layer prints the diffID zstd -dc gives`, async () => {
      const { layers, diffIDs } = layersOf(img.ref);
      const dir = tb.tempDir("apply");
      const r = await tb.dist(["apply", "--print-diffid", dir], {
        input: readFileSync(blobFile(await blobsOf(img.ref), layers[0].digest)),
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), diffIDs[0]);
      // the directory applied onto is the test's own: its mode and owner are not the layer's
      const diffs = compare(scan(dir), await umociScan(tb, "busybox")).filter((d) => !d.startsWith(".: "));
      assert.deepEqual(diffs, []);
    });
  }

  test("ctr pulling through dist daemon (its Diff service) unpacks every one of them as containerd does", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dist-valid-daemon-"));
    let d: DaemonProcess | undefined;
    try {
      d = await startDaemonProcess(join(dir, "root"), join(dir, "dist.sock"));
      for (const img of MULTI_FRAME) {
        const r = await run("ctr", [
          "-a",
          d.sock,
          "-n",
          "valid",
          "images",
          "pull",
          "--plain-http",
          "--snapshotter",
          "native",
          "--print-chainid",
          `${tb.plain}/${img.ref}`,
        ]);
        assert.equal(r.code, 0, `${img.ref} through dist daemon: ${r.stderr.toString()}`);
        assert.equal(CHAIN.exec(r.stdout.toString())?.[1], busyboxChain, img.ref);
      }
    } finally {
      await d?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("zstd:chunked with wrong diff_ids (skopeo 1.9)", { skip: !isRoot && "containerd needs root" }, () => {
  const ref = UNUSUAL.chunkedBadDiffID;

  test("the fixture really is bad: zstd -dc of the first layer gives its diff_id, of the second not", async () => {
    const { layers, diffIDs } = layersOf(ref);
    const dir = await blobsOf(ref);
    assert.equal(await zstdDigest(blobFile(dir, layers[0].digest)), diffIDs[0]);
    assert.notEqual(await zstdDigest(blobFile(dir, layers[1].digest)), diffIDs[1]);
  });

  test("containerd refuses it: wrong diff id", async () => {
    const c = await ctrPull(ref);
    assert.notEqual(c.code, 0);
    assert.match(c.stderr, /wrong diff id/);
  });

  for (const snapshotter of ["overlay", "native"]) {
    test(`dist pull (${snapshotter}) refuses it naming the layer, its diff_id and what it holds; only layer 1 committed`, async () => {
      const { layers, diffIDs } = layersOf(ref);
      const actual = await zstdDigest(blobFile(await blobsOf(ref), layers[1].digest));
      const root = tb.newRoot();
      const r = await tb.dist(["pull", "--plain-http", "--snapshotter", snapshotter, `${tb.plain}/${ref}`], { root });
      assert.equal(r.code, 1, r.stdout);
      const line = r.stderr.trim().split("\n").at(-1) ?? "";
      assert.ok(line.includes(layers[1].digest), `names the layer: ${line}`);
      assert.ok(line.includes(diffIDs[1]), `names the config's diff_id: ${line}`);
      assert.ok(line.includes(actual), `names the digest of what the layer holds: ${line}`);
      const ls = await tb.dist(["snapshots", "--snapshotter", snapshotter, "ls", "--output", "json"], { root });
      const snaps = JSON.parse(ls.stdout) as { name: string; kind: string }[];
      assert.deepEqual(
        snaps.map((s) => [s.name, s.kind]),
        [[diffIDs[0], "committed"]],
      );
    });
  }
});

describe("an index inside an index", { skip: !isRoot && "containerd needs root" }, () => {
  const ref = UNUSUAL.nested;

  test("the fixture: linux/amd64 only in the inner index, which has no platform", () => {
    const info = tb.images[ref];
    assert.equal(info.indexes?.length, 1);
    assert.equal(info.indexes?.[0].platform, undefined);
    const amd64 = info.manifests?.filter((m) => m.platform?.architecture === "amd64") ?? [];
    assert.equal(amd64.length, 1);
    assert.equal(amd64[0].index, info.indexes?.[0].digest);
  });

  test("containerd pulls linux/amd64 through the nesting; so does dist pull, to the same chain", async () => {
    const c = await ctrPull(ref);
    assert.equal(c.code, 0, c.stderr);
    assert.equal(c.chainID, busyboxChain);
    for (const snapshotter of ["overlay", "native"]) {
      assert.equal((await pullImage(tb, ref, snapshotter)).chainID, c.chainID, snapshotter);
    }
  });

  test("dist pull's progress: both indexes, the amd64 manifest and its blobs, each ending done; nothing of arm64", async () => {
    const r = await tb.dist(["pull", "--plain-http", `${tb.plain}/${ref}`], { root: tb.newRoot() });
    assert.equal(r.code, 0, r.stderr);
    const last = new Map<string, string>();
    for (const m of r.stdout.matchAll(/^(\w+-sha256:[0-9a-f]{64}): (\w+)/gm)) last.set(m[1], m[2]);
    const info = tb.images[ref];
    const amd64 = info.manifests?.find((m) => m.platform?.architecture === "amd64");
    const arm64 = info.manifests?.find((m) => m.platform?.architecture === "arm64");
    assert.equal(last.get(`index-${info.digest}`), "done");
    assert.equal(last.get(`index-${info.indexes?.[0].digest}`), "done");
    assert.equal(last.get(`manifest-${amd64?.digest}`), "done");
    assert.equal(last.get(`manifest-${arm64?.digest}`), undefined);
    assert.deepEqual(
      [...last].filter(([, state]) => state !== "done"),
      [],
    );
  });

  test("dist rootfs unpack of the outer index selects linux/amd64 through the nesting", async () => {
    const root = tb.newRoot();
    const f = await tb.dist(["fetch", "--plain-http", `${tb.plain}/${ref}`], { root });
    assert.equal(f.code, 0, f.stderr);
    const r = await tb.dist(["rootfs", "unpack", "--snapshotter", "native", tb.images[ref].digest], { root });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), busyboxChain);
  });

  test("dist bundle and dist run use linux/amd64 through the nesting", {
    skip: !which("runc") && "needs runc",
  }, async () => {
    const root = tb.newRoot();
    const p = await tb.dist(["pull", "--plain-http", `${tb.plain}/${ref}`], { root });
    assert.equal(p.code, 0, p.stderr);
    const dir = join(tb.tempDir("nested-bundle"), "b");
    const b = await tb.dist(["bundle", `${tb.plain}/${ref}`, dir], { root });
    assert.equal(b.code, 0, b.stderr);
    const amd64 = tb.images[ref].manifests?.find((m) => m.platform?.architecture === "amd64");
    assert.equal(JSON.parse(readFileSync(join(dir, "dist-bundle.json"), "utf8")).manifest, amd64?.digest);
    assert.equal((await tb.dist(["bundle", "--remove", dir], { root })).code, 0);
    const r = await tb.dist(["run", "--rm", `${tb.plain}/${ref}`, "uname", "-m"], { root });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), "x86_64");
  });
});
