import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, describe, test } from "node:test";
import type { Info } from "../../src/content/content.ts";
import type { Descriptor } from "../../src/descriptor.ts";
import type { AppliedDiff, Applier } from "../../src/diff/applier.ts";
import { applyTarget } from "../../src/diff/mounts.ts";
import { type Digest, digestOf } from "../../src/digest.ts";
import { NotFoundError } from "../../src/errors.ts";
import { dispatch, type Handler, SKIP } from "../../src/images/handlers.ts";
import { closeAllDatabases } from "../../src/metadata/db.ts";
import { openSnapshotterAt } from "../../src/metadata/metadata.ts";
import { chainID, chainIDs } from "../../src/unpack/chainid.ts";
import { type UnpackContent, Unpacker } from "../../src/unpack/unpacker.ts";

const tmp = mkdtempSync(join(tmpdir(), "dist-unpack-test-"));
after(() => {
  closeAllDatabases();
  rmSync(tmp, { recursive: true, force: true });
});

describe("ChainID", () => {
  // vectors from the OCI image-spec identity package and containerd's tests
  const a = "sha256:a9561eb1b190625c9adb5a9513e72c4dedafc1cb2d4c5236c9a6957ec7dfd5a9" as Digest;
  const b = "sha256:b9561eb1b190625c9adb5a9513e72c4dedafc1cb2d4c5236c9a6957ec7dfd5a9" as Digest;
  test("one layer: the diffID itself", () => {
    assert.equal(chainID([a]), a);
  });
  test("two and three layers", () => {
    // frozen values, computed with coreutils: printf '%s %s' A B | sha256sum
    const ab = "sha256:9c5e71fd14a1b2c39c88c1ca07a583d9eac47511f2e626b4f215ba16fc6c8eea";
    const aba = "sha256:48c7ab06bbd56303bde52a15553037144d46fe1d054cb896bf678cc70480c201";
    assert.equal(chainID([a, b]), ab);
    assert.deepEqual(chainIDs([a, b, a]), [a, ab, aba]);
  });
  test("empty and invalid", () => {
    assert.equal(chainID([]), undefined);
    assert.throws(() => chainIDs(["sha256:xyz"]), { code: "InvalidArgument" });
  });
});

/** A tar of the given files (GNU tar, uncompressed), and its digest. */
function makeTar(name: string, files: Record<string, string>): { bytes: Buffer; desc: Descriptor; diffID: Digest } {
  const dir = join(tmp, "src", name);
  mkdirSync(dir, { recursive: true });
  for (const [p, c] of Object.entries(files)) {
    mkdirSync(join(dir, p, ".."), { recursive: true });
    writeFileSync(join(dir, p), c);
  }
  const r = spawnSync(
    "tar",
    ["-C", dir, "--sort=name", "--mtime=@1700000000", "--owner=0", "--group=0", "-cf", "-", "."],
    { maxBuffer: 64 << 20 },
  );
  assert.equal(r.status, 0, String(r.stderr));
  const bytes = r.stdout;
  const d = digestOf(bytes);
  return {
    bytes,
    desc: { mediaType: "application/vnd.oci.image.layer.v1.tar", digest: d, size: bytes.length },
    diffID: d,
  };
}

/** In-memory content with labels; counts the reads of each blob. */
function memoryContent(blobs: Buffer[]): UnpackContent & {
  labels: Map<string, Record<string, string>>;
  reads(d: Digest): number;
  add(b: Buffer, mediaType: string): Descriptor;
} {
  const byDigest = new Map(blobs.map((b) => [digestOf(b), b]));
  const labels = new Map<string, Record<string, string>>();
  const reads = new Map<string, number>();
  const c = {
    labels,
    reads: (d: Digest) => reads.get(d) ?? 0,
    add(b: Buffer, mediaType: string): Descriptor {
      const digest = digestOf(b);
      byDigest.set(digest, b);
      return { mediaType, digest, size: b.length };
    },
    async info(d: Digest): Promise<Info> {
      const b = byDigest.get(d);
      if (!b) throw new NotFoundError(`blob ${d} not found`);
      return { digest: d, size: b.length, createdAt: new Date(), updatedAt: new Date(), labels: labels.get(d) ?? {} };
    },
    async openRead(d: Digest): Promise<Readable> {
      const b = byDigest.get(d);
      if (!b) throw new NotFoundError(`blob ${d} not found`);
      reads.set(d, (reads.get(d) ?? 0) + 1);
      return Readable.from([b]);
    },
    async readAt(): Promise<number> {
      return 0;
    },
    async update(d: Digest, l: Record<string, string>): Promise<Info> {
      labels.set(d, { ...labels.get(d), ...l });
      return c.info(d);
    },
  };
  return c;
}

/** A stand-in applier (GNU tar -x) so these tests do not depend on src/archive. */
let applied = 0;
function tarApply(root: string, stream: Readable): Promise<AppliedDiff> {
  return new Promise((resolve, reject) => {
    applied++;
    const h = createHash("sha256");
    let size = 0;
    const child = spawn("tar", ["-x", "-C", root], { stdio: ["pipe", "ignore", "inherit"] });
    stream.on("data", (b: Buffer) => {
      h.update(b);
      size += b.length;
    });
    stream.on("error", reject);
    stream.pipe(child.stdin);
    child.on("close", (code) => {
      if (code === 0) resolve({ diffID: `sha256:${h.digest("hex")}`, size });
      else reject(new Error(`tar exited ${code}`));
    });
  });
}
function tarApplier(content: UnpackContent): Applier {
  return {
    async apply(desc, mounts, config = {}) {
      return tarApply(applyTarget(mounts).dir, config.stream ?? (await content.openRead(desc.digest)));
    },
  };
}

/**
 * Walks an image through the unpacker's handler wrapper, as a pull does: the
 * manifest, then its config and layers, each "fetched" by `fetch` (default: it
 * is in the store already). Adds the config (with these diffIDs) to `content`.
 */
async function unpackImage(
  u: Unpacker,
  content: ReturnType<typeof memoryContent>,
  layers: Descriptor[],
  diffIDs: Digest[],
  fetch: (desc: Descriptor) => Promise<void> = async () => {},
): Promise<Digest> {
  const cfg = Buffer.from(
    JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: diffIDs } }),
  );
  const config = content.add(cfg, "application/vnd.oci.image.config.v1+json");
  const manifest: Descriptor = {
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: digestOf(JSON.stringify([config, ...layers])),
    size: 1,
  };
  const fetchHandler: Handler = async (d) => {
    if (d.digest === manifest.digest) return [config, ...layers];
    await fetch(d);
    return [];
  };
  // as pull does: a failed walk has stopped the unpacker, which reports the first failure once cleaned up
  let walkFailure: { err: unknown } | undefined;
  await dispatch(u.unpack(fetchHandler), [manifest]).catch((err: unknown) => {
    walkFailure = { err };
  });
  const [r] = await u.wait();
  if (walkFailure) throw walkFailure.err;
  return r.chainID;
}

describe("Unpacker (native)", () => {
  const l1 = makeTar("l1", { "a.txt": "one", "dir/b.txt": "two" });
  const l2 = makeTar("l2", { "c.txt": "three" });
  const content = memoryContent([l1.bytes, l2.bytes]);
  const sn = openSnapshotterAt(join(tmp, "root"), "native");

  test("unpacks layers by ChainID and labels the blobs", async () => {
    const u = new Unpacker({ snapshotter: sn, content, applier: tarApplier(content) });
    const top = await unpackImage(u, content, [l1.desc, l2.desc], [l1.diffID, l2.diffID]);
    assert.equal(top, chainID([l1.diffID, l2.diffID]));
    const names: string[] = [];
    await sn.walk((i) => {
      names.push(`${i.name} ${i.kind}`);
    });
    assert.deepEqual(names.sort(), [`${l1.diffID} committed`, `${top} committed`].sort());
    const info = await sn.stat(top);
    assert.equal(info.parent, l1.diffID);
    assert.deepEqual(content.labels.get(l1.desc.digest), { "containerd.io/uncompressed": l1.diffID });
    const m = await sn.view("look", top);
    assert.equal(readFileSync(join(m[0].source, "dir/b.txt"), "utf8"), "two");
    assert.equal(readFileSync(join(m[0].source, "c.txt"), "utf8"), "three");
    await sn.remove("look");
  });

  test("an existing chain is never extracted again", async () => {
    const before = applied;
    const events: string[] = [];
    const u = new Unpacker({
      snapshotter: sn,
      content,
      applier: tarApplier(content),
      onEvent: (e) => {
        if (e.status !== "waiting") events.push(`${e.index}:${e.status}`);
      },
    });
    await unpackImage(u, content, [l1.desc, l2.desc], [l1.diffID, l2.diffID]);
    assert.equal(applied, before);
    assert.deepEqual(events, ["0:exists", "1:exists"]);
  });

  test("a diffID that does not match the config: error, nothing committed, temp snapshot removed", async () => {
    const l3 = makeTar("l3", { "d.txt": "four" });
    const c = memoryContent([l1.bytes, l3.bytes]);
    const wrong = digestOf("not the layer");
    const u = new Unpacker({ snapshotter: sn, content: c, applier: tarApplier(c) });
    await assert.rejects(
      unpackImage(u, c, [l1.desc, l3.desc], [l1.diffID, wrong]),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, "DataLoss");
        assert.match(err.message, /does not match the config's diff_id/);
        assert.ok(err.message.includes(l3.desc.digest));
        return true;
      },
    );
    const names: string[] = [];
    await sn.walk((i) => {
      names.push(i.name);
    });
    assert.ok(!names.includes(chainID([l1.diffID, wrong])!));
    assert.ok(!names.some((n) => n.startsWith("extract-")), names.join(","));
  });

  test("bytes teed from a download are applied without reading the store", async () => {
    const sn2 = openSnapshotterAt(join(tmp, "root2"), "native");
    const c = memoryContent([l1.bytes]);
    const u = new Unpacker({ snapshotter: sn2, content: c, applier: tarApplier(c) });
    const top = await unpackImage(u, c, [l1.desc], [l1.diffID], async (d) => {
      if (d.digest !== l1.desc.digest) return;
      assert.equal(u.tee(l2.desc), undefined, "a layer it does not unpack is not teed");
      const tap = u.tee(l1.desc);
      assert.ok(tap, "the layer the loop is at is teed");
      tap.end(l1.bytes);
    });
    assert.equal(top, l1.diffID);
    assert.equal(c.reads(l1.desc.digest), 0);
  });

  test("a teed download whose applier failed still finishes, and the layer is retried from the store", async () => {
    const sn5 = openSnapshotterAt(join(tmp, "root5"), "native");
    // more than the pipes in between buffer, so the download waits for its reader
    const big = makeTar("big5", { "big.bin": "x".repeat(6 << 20) });
    const c = memoryContent([big.bytes]);
    let calls = 0;
    const failOnce: Applier = {
      async apply(desc, mounts, config = {}) {
        if (++calls > 1) return tarApplier(c).apply(desc, mounts, config);
        // as the real applier does on a failure: it stops reading and destroys its input
        const stream = config.stream;
        assert.ok(stream, "the first attempt applies the download");
        await new Promise((r) => stream.once("readable", r));
        stream.destroy();
        throw new Error("applier broke");
      },
    };
    const u = new Unpacker({ snapshotter: sn5, content: c, applier: failOnce });
    const top = await unpackImage(u, c, [big.desc], [big.diffID], async (d) => {
      if (d.digest !== big.desc.digest) return;
      const tap = u.tee(big.desc);
      assert.ok(tap);
      // the download, as the copy into the store tees: a full tee is waited for, a closed one skipped
      for (let off = 0; off < big.bytes.length; off += 64 << 10) {
        if (tap.destroyed) continue;
        if (!tap.write(big.bytes.subarray(off, off + (64 << 10)))) {
          await new Promise((r) => {
            tap.once("drain", r);
            tap.once("close", r);
          });
        }
      }
      tap.end();
    });
    assert.equal(top, big.diffID);
    assert.equal(calls, 2);
    assert.equal(c.reads(big.desc.digest), 1, "the retry reads the blob from the store");
  });

  test("a layer whose fetch fails stops the unpacking: its error, nothing committed, no temporary snapshot", async () => {
    const sn6 = openSnapshotterAt(join(tmp, "root6"), "native");
    const l3 = makeTar("l3f", { "e.txt": "five" });
    const c = memoryContent([l1.bytes, l3.bytes]);
    const u = new Unpacker({ snapshotter: sn6, content: c, applier: tarApplier(c) });
    const lost = new Error(`layer-${l3.desc.digest}: connection lost`);
    await assert.rejects(
      unpackImage(u, c, [l1.desc, l3.desc], [l1.diffID, l3.diffID], async (d) => {
        if (d.digest === l3.desc.digest) throw lost;
      }),
      (err) => err === lost,
    );
    const names: string[] = [];
    await sn6.walk((i) => {
      names.push(i.name);
    });
    assert.ok(!names.includes(chainID([l1.diffID, l3.diffID])!), names.join(","));
    assert.ok(!names.some((n) => n.startsWith("extract-")), names.join(","));
  });

  test("a layer the fetch skips (non-distributable) fails the unpacking naming it", async () => {
    const sn7 = openSnapshotterAt(join(tmp, "root7"), "native");
    const c = memoryContent([l1.bytes, l2.bytes]);
    const u = new Unpacker({ snapshotter: sn7, content: c, applier: tarApplier(c) });
    await assert.rejects(
      unpackImage(u, c, [l1.desc, l2.desc], [l1.diffID, l2.diffID], async (d) => {
        if (d.digest === l2.desc.digest) throw SKIP;
      }),
      new RegExp(`layer ${l2.desc.digest} was not fetched \\(non-distributable\\)`),
    );
  });

  test("the caller's abort stops the unpacking and is what wait() reports", async () => {
    const sn8 = openSnapshotterAt(join(tmp, "root8"), "native");
    const c = memoryContent([l1.bytes]);
    const ctrl = new AbortController();
    const u = new Unpacker({ snapshotter: sn8, content: c, applier: tarApplier(c), signal: ctrl.signal });
    const why = new Error("interrupted");
    await assert.rejects(
      unpackImage(u, c, [l1.desc], [l1.diffID], async () => {
        ctrl.abort(why);
        await new Promise((r) => setTimeout(r, 10));
      }),
      (err) => err === why,
    );
    const names: string[] = [];
    await sn8.walk((i) => {
      names.push(i.name);
    });
    assert.deepEqual(names, []);
  });

  test("config/manifest layer count mismatch is refused", async () => {
    const u = new Unpacker({ snapshotter: sn, content, applier: tarApplier(content) });
    await assert.rejects(unpackImage(u, content, [l1.desc, l2.desc], [l1.diffID]), { code: "InvalidArgument" });
  });

  test("two unpackers of the same chain at once extract it once", async () => {
    const sn3 = openSnapshotterAt(join(tmp, "root3"), "native");
    const before = applied;
    const mk = () =>
      unpackImage(
        new Unpacker({ snapshotter: sn3, content, applier: tarApplier(content) }),
        content,
        [l1.desc],
        [l1.diffID],
      );
    const [a, b] = await Promise.all([mk(), mk()]);
    assert.equal(a, b);
    assert.equal(applied - before, 1);
    assert.equal(existsSync(join(tmp, "root3", "snapshots", "native", "locks")), true);
  });

  test("with the real applier, a native child sharing its parent's inodes never changes the parent", async () => {
    const sn4 = openSnapshotterAt(join(tmp, "root4"), "native");
    const base = makeTar("base4", { "f.txt": "parent", "dir/g.txt": "parent too", "h.txt": "linked" });
    const over = makeTar("over4", { "f.txt": "child", "dir/g.txt": "child too" });
    const c = memoryContent([base.bytes, over.bytes]);
    const u = new Unpacker({ snapshotter: sn4, content: c });
    const top = await unpackImage(u, c, [base.desc, over.desc], [base.diffID, over.diffID]);
    const pm = await sn4.view("p", base.diffID);
    const cm = await sn4.view("c", top);
    assert.equal(readFileSync(join(pm[0].source, "f.txt"), "utf8"), "parent");
    assert.equal(readFileSync(join(pm[0].source, "dir/g.txt"), "utf8"), "parent too");
    assert.equal(readFileSync(join(cm[0].source, "f.txt"), "utf8"), "child");
    assert.equal(readFileSync(join(cm[0].source, "h.txt"), "utf8"), "linked");
    // a snapshot for a container is a real copy: writing it leaves the chain alone
    const w = await sn4.prepare("work", top);
    writeFileSync(join(w[0].source, "h.txt"), "changed");
    assert.equal(readFileSync(join(cm[0].source, "h.txt"), "utf8"), "linked");
    assert.equal(readFileSync(join(pm[0].source, "h.txt"), "utf8"), "linked");
  });
});
