import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { hasBlobFiles, type Provider } from "../../src/content/content.ts";
import { writeBlob } from "../../src/content/helpers.ts";
import { LocalStore } from "../../src/content/local/store.ts";
import type { Descriptor } from "../../src/descriptor.ts";
import { FileSystemApplier } from "../../src/diff/filesystem.ts";
import { digestOf } from "../../src/digest.ts";
import { closeAllDatabases } from "../../src/metadata/db.ts";
import type { Mount } from "../../src/snapshots/snapshotter.ts";

const tmp = mkdtempSync(join(tmpdir(), "dist-diff-test-"));
after(() => {
  closeAllDatabases();
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

/** The local store, counting the streams it opens. */
async function storeWith(...blobs: { bytes: Buffer; desc: Descriptor }[]) {
  const store = new LocalStore({ root: mkdtempSync(join(tmp, "root-")) });
  for (const b of blobs)
    await writeBlob(store, `layer-${b.desc.digest}`, Readable.from([b.bytes]), { expected: b.desc.digest });
  let streams = 0;
  const openRead = store.openRead.bind(store);
  store.openRead = (...args) => {
    streams++;
    return openRead(...args);
  };
  return { store, streams: () => streams };
}

describe("FileSystemApplier", () => {
  it("applies a stored blob from its file when the store has blob files", async () => {
    const l = layer("a", "from the file");
    const { store, streams } = await storeWith(l);
    assert.ok(hasBlobFiles(store));
    const t = target("file");
    const r = await new FileSystemApplier(store).apply(l.desc, t.mounts);
    assert.equal(r.diffID, l.diffID);
    assert.equal(readFileSync(join(t.dir, "a.txt"), "utf8"), "from the file");
    assert.equal(streams(), 0, "the decompression worker read the file itself");
  });

  it("streams the blob from a provider without blob files", async () => {
    const l = layer("b", "from a stream");
    const { store, streams } = await storeWith(l);
    const provider: Provider = {
      info: (d) => store.info(d),
      openRead: (d, o) => store.openRead(d, o),
      readAt: (d, b, p) => store.readAt(d, b, p),
    };
    assert.ok(!hasBlobFiles(provider));
    const t = target("stream");
    const r = await new FileSystemApplier(provider).apply(l.desc, t.mounts);
    assert.equal(r.diffID, l.diffID);
    assert.equal(readFileSync(join(t.dir, "b.txt"), "utf8"), "from a stream");
    assert.equal(streams(), 1);
  });

  it("applies a download teed in instead of the stored blob", async () => {
    const l = layer("c", "from the download");
    const { store } = await storeWith();
    const t = target("teed");
    const r = await new FileSystemApplier(store).apply(l.desc, t.mounts, { stream: Readable.from([l.bytes]) });
    assert.equal(r.diffID, l.diffID);
    assert.equal(readFileSync(join(t.dir, "c.txt"), "utf8"), "from the download");
  });

  it("refuses a descriptor whose size is not the blob's, and a missing blob", async () => {
    const l = layer("d", "sized");
    const { store } = await storeWith(l);
    const t = target("sizes");
    await assert.rejects(new FileSystemApplier(store).apply({ ...l.desc, size: l.desc.size + 1 }, t.mounts), {
      code: "InvalidArgument",
      message: `apply: ${l.desc.digest} is ${l.desc.size} bytes, the descriptor says ${l.desc.size + 1}`,
    });
    await assert.rejects(new FileSystemApplier(store).apply(layer("e", "absent").desc, t.mounts), { code: "NotFound" });
  });

  it("refuses mounts it cannot apply to", async () => {
    const l = layer("f", "x");
    const { store } = await storeWith(l);
    const ro: Mount[] = [{ type: "bind", source: target("ro").dir, options: ["ro", "rbind"] }];
    await assert.rejects(new FileSystemApplier(store).apply(l.desc, ro), /mounted read-only/);
    await assert.rejects(new FileSystemApplier(store).apply(l.desc, []), /exactly one mount/);
  });
});
