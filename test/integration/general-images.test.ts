/**
 * The general case (fixtures/general.ts): valid images the specifications allow that
 * the other test images do not cover, held to what containerd 1.6 makes of them (its
 * chain IDs) and to umoci's trees, on both snapshotters: a layer per tar dialect GNU tar
 * writes (PAX sparse files, uncompressed `+tar`), empty layers, one layer twice, a manifest
 * with a `subject`, an index with an `artifactType` holding an artifact, a non-distributable
 * layer; and two that containerd 1.6 refuses and dist reads as GNU tar does: a sparse file
 * in GNU's old format and a layer of no bytes.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { chainID } from "../../src/unpack/chainid.ts";
import { type Containerd, startContainerd } from "./fixtures/containerd.ts";
import { must } from "./fixtures/exec.ts";
import { readJson, sha256 } from "./fixtures/layout.ts";
import { GENERAL, type Testbed, testbed } from "./harness.ts";
import { compare, type Entry, pullImage, scan, umociScan, viewOf } from "./trees.ts";

const isRoot = process.getuid?.() === 0;
const CHAIN = /image chain ID: (sha256:[0-9a-f]{64})/;

let tb: Testbed;
let containerd: Containerd;
before(async () => {
  tb = await testbed();
  if (isRoot) containerd = await startContainerd(mkdtempSync(join(tmpdir(), "dist-containerd-")));
});
after(async () => {
  await containerd?.stop();
  await tb?.stop();
});

async function ctrPull(ref: string): Promise<string | undefined> {
  const r = await containerd.ctr(["images", "pull", "--plain-http", "--print-chainid", `${tb.plain}/${ref}`]);
  assert.equal(r.code, 0, `containerd: ${r.stderr}`);
  return CHAIN.exec(r.stdout)?.[1];
}

/** The single-manifest images both containerd and umoci unpack, and paths whose time no tool can reproduce. */
const SINGLE = [
  { ref: GENERAL.dialects, tag: "general-dialects", implicit: ["gnu", "pax", "ustar", "v7"] },
  { ref: GENERAL.twice, tag: "general-twice", implicit: [] },
  { ref: GENERAL.subject, tag: "general-subject", implicit: [] },
  { ref: GENERAL.nondist, tag: "general-nondist", implicit: [] },
];

/** dist pull on both snapshotters: the chain ID, and the differences of its tree from `want`. */
async function distPulls(ref: string, want: Map<string, Entry>, implicit: string[] = []) {
  const out: { snapshotter: string; chainID: string; diffs: string[]; tree: Map<string, Entry> }[] = [];
  for (const snapshotter of ["overlay", "native"]) {
    const p = await pullImage(tb, ref, snapshotter);
    const v = await viewOf(tb, p, snapshotter);
    try {
      const tree = scan(v.dir);
      // the root directory is not in any layer: its mode and time are the snapshotter's
      const diffs = compare(tree, want, implicit).filter((d) => !d.startsWith(".: "));
      out.push({ snapshotter, chainID: p.chainID, diffs, tree });
    } finally {
      await v.done();
    }
  }
  return out;
}

describe("valid images of the general case against containerd and umoci", {
  skip: !isRoot && "containerd needs root",
}, () => {
  for (const img of SINGLE) {
    test(`${img.ref}: containerd's chain ID and umoci's tree, on both snapshotters`, async () => {
      const chain = await ctrPull(img.ref);
      for (const r of await distPulls(img.ref, await umociScan(tb, img.tag), img.implicit)) {
        assert.equal(r.chainID, chain, r.snapshotter);
        assert.deepEqual(r.diffs, [], r.snapshotter);
      }
    });
  }

  test(`${GENERAL.empty}: Docker's empty layer, zstd of the end blocks, a tar without end blocks`, async () => {
    // umoci reads no zstd: the tree is busybox's and the one file
    const chain = await ctrPull(GENERAL.empty);
    for (const r of await distPulls(GENERAL.empty, await umociScan(tb, "busybox"))) {
      assert.equal(r.chainID, chain, r.snapshotter);
      assert.deepEqual(r.diffs, ["only in dist: noend.txt"], r.snapshotter);
      assert.equal(r.tree.get("noend.txt")?.size, 5);
    }
  });

  test(`${GENERAL.zero}: a layer of no bytes, which containerd refuses to fetch, is an empty layer`, async () => {
    const c = await containerd.ctr(["images", "pull", "--plain-http", `${tb.plain}/${GENERAL.zero}`]);
    assert.notEqual(c.code, 0);
    assert.match(c.stderr, /reports content size of zero/);
    const busybox = await umociScan(tb, "busybox");
    const diffIDs = readJson(tb.layout, tb.images[GENERAL.zero].config?.digest ?? "").rootfs.diff_ids;
    assert.equal(diffIDs[1], sha256(Buffer.alloc(0)));
    for (const r of await distPulls(GENERAL.zero, busybox)) {
      assert.equal(r.chainID, chainID(diffIDs), r.snapshotter);
      assert.deepEqual(r.diffs, [], r.snapshotter);
    }
  });

  test(`${GENERAL.gnuSparse}: GNU's old sparse format, which containerd and umoci refuse, has GNU tar's bytes`, async () => {
    const c = await containerd.ctr(["images", "pull", "--plain-http", `${tb.plain}/${GENERAL.gnuSparse}`]);
    assert.notEqual(c.code, 0);
    assert.match(c.stderr, /unhandled tar header type 83/);
    // GNU tar's extraction of the sparse layer, on top of umoci's busybox
    const layer = tb.images[GENERAL.gnuSparse].layers?.at(-1);
    const dir = tb.tempDir("gnu-sparse");
    const blobs = await tb.skopeoPull(`${tb.plain}/${GENERAL.gnuSparse}`, [], "dir");
    await must("tar", ["-xzf", join(blobs, layer?.digest.slice(7) ?? ""), "-C", dir]);
    const want = new Map([...(await umociScan(tb, "busybox"))]);
    for (const [k, v] of scan(dir)) if (k !== ".") want.set(k, v);
    for (const r of await distPulls(GENERAL.gnuSparse, want)) {
      assert.deepEqual(r.diffs, [], r.snapshotter);
      assert.equal(r.tree.get("gnu-sparse/sparse-gnu.bin")?.size, (30 * 7 + 3) << 16);
    }
  });

  test("an index with an artifactType: the artifact is left out, linux/amd64 chosen as containerd does", async () => {
    const chain = await ctrPull(GENERAL.artifacts);
    const info = tb.images[GENERAL.artifacts];
    const amd64 = info.manifests?.find((m) => m.platform?.architecture === "amd64");
    assert.equal(chain, readJson(tb.layout, amd64?.config.digest ?? "").rootfs.diff_ids[0]);
    const root = tb.newRoot();
    const r = await tb.dist(["pull", "--plain-http", "--print-chainid", `${tb.plain}/${GENERAL.artifacts}`], { root });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(CHAIN.exec(r.stdout)?.[1], chain);
    assert.match(r.stderr, /skipped artifact sha256:[0-9a-f]{64} \(application\/vnd\.dist\.testbed\.sbom\+json\)/);
    const artifact = info.manifests?.find((m) => !m.platform);
    const ls = await tb.dist(["ls", "-q"], { root });
    assert.ok(artifact && !ls.stdout.includes(artifact.digest), "the artifact is not fetched");
    const u = await tb.dist(["rootfs", "unpack", "--snapshotter", "native", info.digest], { root });
    assert.equal(u.code, 0, u.stderr);
    assert.equal(u.stdout.trim(), chain);
  });
});
