/**
 * exportImages from a real store: the layout a tar stream, a tar file and a
 * directory hold (names, manifest.json, blobs), platforms, refusals, and the
 * round trip through importImages.
 */
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, before, describe, it } from "node:test";
import { readTar } from "../../src/archive/tar/index.ts";
import { allPlatforms, only } from "../../src/images/platforms.ts";
import { closeAllDatabases } from "../../src/metadata/db.ts";
import { type ExportOptions, exportImages } from "../../src/transfer/export.ts";
import { importImages } from "../../src/transfer/import.ts";
import {
  attestationManifest,
  HOST,
  newRoot,
  OTHER,
  type Root,
  storeBlobs,
  type TestImage,
  tempDir,
  testImage,
  testIndex,
} from "./fixtures.ts";

let tmp: string;
before(() => {
  tmp = tempDir();
});
after(() => {
  closeAllDatabases();
  rmSync(tmp, { recursive: true, force: true });
});

async function withImage(r: Root, name: string, img: TestImage): Promise<void> {
  await storeBlobs(r.content, img.blobs);
  await r.images.put({ name, target: img.manifest.desc, labels: {} });
}

/** Exports into a tar stream; the archive's files by name. */
async function exportTar(r: Root, opts: Partial<ExportOptions> & { names: string[] }) {
  const out = new PassThrough();
  const notes: string[] = [];
  const files = new Map<string, Buffer>();
  const reading = (async () => {
    for await (const { header, body } of readTar(out)) {
      const chunks: Buffer[] = [];
      for await (const c of body) chunks.push(Buffer.from(c));
      files.set(header.name, Buffer.concat(chunks));
    }
  })();
  await exportImages({
    content: r.content,
    images: r.images,
    output: { tar: out },
    onNote: (_d, m) => notes.push(m),
    ...opts,
  });
  out.end();
  await reading;
  return { files, notes };
}

const blobName = (d: string) => `blobs/${d.replace(":", "/")}`;

describe("exportImages", () => {
  it("writes oci-layout, index.json with containerd's name annotations, manifest.json and the blobs", async () => {
    const r = newRoot(tmp);
    const img = await testImage(HOST, ["a", "b"]);
    await withImage(r, "example.com/app:1", img);
    const { files } = await exportTar(r, { names: ["example.com/app:1"] });
    assert.deepEqual(JSON.parse(files.get("oci-layout")?.toString() ?? ""), { imageLayoutVersion: "1.0.0" });
    const index = JSON.parse(files.get("index.json")?.toString() ?? "");
    assert.equal(index.manifests.length, 1);
    assert.equal(index.manifests[0].digest, img.manifest.desc.digest);
    assert.deepEqual(index.manifests[0].annotations, {
      "io.containerd.image.name": "example.com/app:1",
      "org.opencontainers.image.ref.name": "1",
    });
    assert.deepEqual(JSON.parse(files.get("manifest.json")?.toString() ?? ""), [
      {
        Config: blobName(img.config.desc.digest),
        RepoTags: ["example.com/app:1"],
        Layers: img.layers.map((l) => blobName(l.desc.digest)),
      },
    ]);
    for (const b of img.blobs) assert.deepEqual(files.get(blobName(b.desc.digest)), b.bytes);
    assert.ok(files.has("blobs/") && files.has("blobs/sha256/"));
  });

  it("finds a name as typed; RepoTags are Docker's short names", async () => {
    const r = newRoot(tmp);
    await withImage(r, "docker.io/library/busybox:latest", await testImage());
    const { files } = await exportTar(r, { names: ["busybox"] });
    assert.deepEqual(JSON.parse(files.get("manifest.json")?.toString() ?? "")[0].RepoTags, ["busybox:latest"]);
    const { files: without } = await exportTar(r, { names: ["busybox"], dockerManifest: false });
    assert.ok(!without.has("manifest.json"));
  });

  it("an index: whole, with the host's platform by default, every platform on request", async () => {
    const r = newRoot(tmp);
    const host = await testImage(HOST, ["h"]);
    const other = await testImage(OTHER, ["o"]);
    const att = attestationManifest();
    const idx = testIndex(
      [
        { image: host, platform: HOST },
        { image: other, platform: OTHER },
      ],
      att.manifest,
    );
    await storeBlobs(r.content, [idx, ...host.blobs]);
    await r.images.put({ name: "example.com/multi:1", target: idx.desc, labels: {} });
    const { files } = await exportTar(r, { names: ["example.com/multi:1"] });
    const blobs = [...files.keys()].filter((k) => /^blobs\/sha256\/./.test(k)).sort();
    assert.deepEqual(blobs, [idx, ...host.blobs].map((b) => blobName(b.desc.digest)).sort());
    assert.equal(JSON.parse(files.get("manifest.json")?.toString() ?? "")[0].Config, blobName(host.config.desc.digest));

    await assert.rejects(
      exportTar(r, { names: ["example.com/multi:1"], platforms: [allPlatforms()] }),
      new RegExp(`manifest ${other.manifest.desc.digest} is not in the content store \\(fetch that platform`),
    );
    // every platform present: the missing attestation is left out with a note
    await storeBlobs(r.content, other.blobs);
    const all = await exportTar(r, { names: ["example.com/multi:1"], platforms: [allPlatforms()] });
    assert.ok(all.files.has(blobName(other.layers[0].desc.digest)));
    assert.match(
      all.notes.join("\n"),
      new RegExp(`attestation ${att.manifest.desc.digest} is not in the content store`),
    );
    // manifest.json lists the first platform asked for
    const arm = await exportTar(r, { names: ["example.com/multi:1"], platforms: [only(OTHER)] });
    assert.equal(
      JSON.parse(arm.files.get("manifest.json")?.toString() ?? "")[0].Config,
      blobName(other.config.desc.digest),
    );
  });

  it("a blob that no longer matches its digest fails the export and leaves no file", async () => {
    const r = newRoot(tmp);
    const img = await testImage(HOST, ["intact"]);
    await withImage(r, "example.com/bad:1", img);
    const layer = join(r.dir, "content", "blobs", "sha256", img.layers[0].desc.digest.slice(7));
    chmodSync(layer, 0o644);
    const bytes = readFileSync(layer);
    bytes[bytes.length - 1] ^= 0xff;
    writeFileSync(layer, bytes);
    const dir = join(tmp, `out-${Date.now()}`);
    mkdirSync(dir);
    await assert.rejects(
      exportImages({
        content: r.content,
        images: r.images,
        names: ["example.com/bad:1"],
        output: { file: join(dir, "x.tar") },
      }),
      /digest mismatch/,
    );
    assert.deepEqual(readdirSync(dir), [], "no partial file left");
  });

  it("a missing image, or a target that is not an image, is refused", async () => {
    const r = newRoot(tmp);
    await assert.rejects(exportTar(r, { names: ["nothing:here"] }), /not found/);
    const img = await testImage();
    await storeBlobs(r.content, img.blobs);
    await r.images.put({ name: "example.com/layer:1", target: img.layers[0].desc, labels: {} });
    await assert.rejects(exportTar(r, { names: ["example.com/layer:1"] }), /only images .* can be exported/);
  });

  it("a directory: written whole, added to when it is a layout, refused when it holds something else", async () => {
    const r = newRoot(tmp);
    const a = await testImage(HOST, ["a"]);
    const b = await testImage(HOST, ["b"]);
    await withImage(r, "example.com/a:1", a);
    await withImage(r, "example.com/b:1", b);
    const dir = join(tmp, `layout-${Date.now()}`);
    const write = (names: string[]) =>
      exportImages({ content: r.content, images: r.images, names, output: { directory: dir } });
    await write(["example.com/a:1"]);
    await write(["example.com/b:1", "example.com/a:1"]);
    const index = JSON.parse(readFileSync(join(dir, "index.json"), "utf8"));
    assert.deepEqual(
      index.manifests.map((m: { annotations: Record<string, string> }) => m.annotations["io.containerd.image.name"]),
      ["example.com/b:1", "example.com/a:1"],
    );
    const docker = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
    assert.deepEqual(docker.flatMap((e: { RepoTags: string[] }) => e.RepoTags).sort(), [
      "example.com/a:1",
      "example.com/b:1",
    ]);
    for (const x of [...a.blobs, ...b.blobs]) assert.ok(existsSync(join(dir, blobName(x.desc.digest))));
    assert.deepEqual(
      readdirSync(join(dir, "blobs", "sha256")).filter((n) => n.startsWith(".")),
      [],
      "no temporary file left",
    );

    const other = join(tmp, `other-${Date.now()}`);
    mkdirSync(other);
    writeFileSync(join(other, "notes.txt"), "mine");
    await assert.rejects(
      exportImages({ content: r.content, images: r.images, names: ["example.com/a:1"], output: { directory: other } }),
      /neither empty nor an OCI layout/,
    );
  });

  it("round trip: what export writes, import reads back to the same images and blobs", async () => {
    const r = newRoot(tmp);
    const img = await testImage(HOST, ["x", "y"]);
    await withImage(r, "example.com/rt:1", img);
    const file = join(tmp, `rt-${Date.now()}.tar`);
    await exportImages({ content: r.content, images: r.images, names: ["example.com/rt:1"], output: { file } });
    const r2 = newRoot(tmp);
    const res = await importImages({ content: r2.content, images: r2.images, source: file });
    assert.deepEqual(
      res.images.map((i) => [i.name, i.target.digest]),
      [["example.com/rt:1", img.manifest.desc.digest]],
    );
    assert.equal(res.removed, 0);
  });
});
