import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createReadStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { type BlobFiles, hasBlobFiles, type Info, type Provider } from "../../src/content/content.ts";
import type { Descriptor } from "../../src/descriptor.ts";
import { FileSystemApplier } from "../../src/diff/filesystem.ts";
import { type Digest, digestOf } from "../../src/digest.ts";
import { NotFoundError } from "../../src/errors.ts";
import type { Mount } from "../../src/snapshots/snapshotter.ts";

const tmp = mkdtempSync(join(tmpdir(), "dist-diff-test-"));
after(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** A gzip layer of one file, its descriptor and diffID (GNU tar). */
function layer(name: string, content: string) {
  const dir = join(tmp, "src", name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.txt`), content);
  const r = spawnSync("tar", ["-C", dir, "--mtime=@1700000000", "--owner=0", "--group=0", "-cf", "-", "."]);
  assert.equal(r.status, 0, String(r.stderr));
  const bytes = gzipSync(r.stdout);
  const desc: Descriptor = {
    mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
    digest: digestOf(bytes),
    size: bytes.length,
  };
  return { bytes, desc, diffID: digestOf(r.stdout) };
}

function target(name: string): { dir: string; mounts: Mount[] } {
  const dir = join(tmp, "targets", name);
  mkdirSync(dir, { recursive: true });
  return { dir, mounts: [{ type: "bind", source: dir, options: ["rw", "rbind"] }] };
}

/**
 * Blobs in the files of a directory, counting the streams it opens; with
 * `files`, it declares the BlobFiles capability (as the local store does).
 */
function storeWith(files: boolean, ...blobs: { bytes: Buffer; desc: Descriptor }[]) {
  const dir = mkdtempSync(join(tmp, "blobs-"));
  const sizes = new Map<string, number>();
  for (const b of blobs) {
    writeFileSync(join(dir, b.desc.digest), b.bytes);
    sizes.set(b.desc.digest, b.bytes.length);
  }
  let streams = 0;
  const provider: Provider & Partial<BlobFiles> = {
    async info(d: Digest): Promise<Info> {
      const size = sizes.get(d);
      if (size === undefined) throw new NotFoundError(`blob ${d} not found`);
      return { digest: d, size, createdAt: new Date(), updatedAt: new Date(), labels: {} };
    },
    async openRead(d: Digest): Promise<Readable> {
      await provider.info(d);
      streams++;
      return createReadStream(join(dir, d));
    },
    async readAt(): Promise<number> {
      return 0;
    },
  };
  if (files) provider.blobPath = (d) => join(dir, d);
  return { store: provider, streams: () => streams };
}

describe("FileSystemApplier", () => {
  it("applies a stored blob from its file when the provider has blob files", async () => {
    const l = layer("a", "from the file");
    const { store, streams } = storeWith(true, l);
    assert.ok(hasBlobFiles(store));
    const t = target("file");
    const r = await new FileSystemApplier(store).apply(l.desc, t.mounts);
    assert.equal(r.diffID, l.diffID);
    assert.equal(readFileSync(join(t.dir, "a.txt"), "utf8"), "from the file");
    assert.equal(streams(), 0, "the decompression worker read the file itself");
  });

  it("streams the blob from a provider without blob files", async () => {
    const l = layer("b", "from a stream");
    const { store: provider, streams } = storeWith(false, l);
    assert.ok(!hasBlobFiles(provider));
    const t = target("stream");
    const r = await new FileSystemApplier(provider).apply(l.desc, t.mounts);
    assert.equal(r.diffID, l.diffID);
    assert.equal(readFileSync(join(t.dir, "b.txt"), "utf8"), "from a stream");
    assert.equal(streams(), 1);
  });

  it("applies a download teed in instead of the stored blob", async () => {
    const l = layer("c", "from the download");
    const { store } = storeWith(true);
    const t = target("teed");
    const r = await new FileSystemApplier(store).apply(l.desc, t.mounts, { stream: Readable.from([l.bytes]) });
    assert.equal(r.diffID, l.diffID);
    assert.equal(readFileSync(join(t.dir, "c.txt"), "utf8"), "from the download");
  });

  it("refuses a descriptor whose size is not the blob's, and a missing blob", async () => {
    const l = layer("d", "sized");
    const { store } = storeWith(true, l);
    const t = target("sizes");
    await assert.rejects(new FileSystemApplier(store).apply({ ...l.desc, size: l.desc.size + 1 }, t.mounts), {
      code: "InvalidArgument",
      message: `apply: ${l.desc.digest} is ${l.desc.size} bytes, the descriptor says ${l.desc.size + 1}`,
    });
    await assert.rejects(new FileSystemApplier(store).apply(layer("e", "absent").desc, t.mounts), { code: "NotFound" });
  });

  it("refuses mounts it cannot apply to", async () => {
    const l = layer("f", "x");
    const { store } = storeWith(true, l);
    const ro: Mount[] = [{ type: "bind", source: target("ro").dir, options: ["ro", "rbind"] }];
    await assert.rejects(new FileSystemApplier(store).apply(l.desc, ro), /mounted read-only/);
    await assert.rejects(new FileSystemApplier(store).apply(l.desc, []), /exactly one mount/);
  });
});
