import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Descriptor } from "../../src/descriptor.ts";
import { NotFoundError } from "../../src/errors.ts";
import type { Image, ImageStore } from "../../src/images/image.ts";
import { MediaType } from "../../src/images/mediatypes.ts";
import { StoreView } from "../../src/registry/view.ts";
import { addImage, addIndex, MemoryProvider } from "../images/memory.ts";

/** An image store in memory that counts its listings. */
class Images implements ImageStore {
  readonly map = new Map<string, Image>();
  lists = 0;
  set(name: string, target: Descriptor): void {
    const t = new Date();
    this.map.set(name, { name, target, labels: {}, createdAt: t, updatedAt: t });
  }
  async get(name: string): Promise<Image> {
    const i = this.map.get(name);
    if (!i) throw new NotFoundError(name);
    return i;
  }
  async list(): Promise<Image[]> {
    this.lists++;
    return [...this.map.values()];
  }
  async create(i: Omit<Image, "createdAt" | "updatedAt">): Promise<Image> {
    this.set(i.name, i.target);
    return this.get(i.name);
  }
  update = this.create;
  put = this.create;
  async delete(name: string): Promise<void> {
    this.map.delete(name);
  }
}

describe("StoreView", () => {
  test("tags from image names, per registry; a clash without a registry is reported, not guessed", async () => {
    const p = new MemoryProvider();
    const a = addImage(p, { os: "linux", architecture: "amd64" }, ["a"]);
    const b = addImage(p, { os: "linux", architecture: "amd64" }, ["b"]);
    const images = new Images();
    images.set("127.0.0.1:5000/debian/bookworm:minbase", a.manifest);
    images.set("127.0.0.1:5000/debian/bookworm:other", a.manifest);
    images.set("docker.io/library/busybox:latest", b.manifest);
    images.set("registry.example/library/busybox:latest", a.manifest);
    images.set("not a reference", b.manifest);
    let version = 1;
    const view = new StoreView({ content: p, images, changes: () => version });
    assert.deepEqual(
      (await view.tagged("debian/bookworm", "minbase")).map((t) => t.image.target.digest),
      [a.manifest.digest],
    );
    assert.equal((await view.tagged("library/busybox", "latest")).length, 2);
    assert.equal(
      (await view.tagged("library/busybox", "latest", "docker.io"))[0].image.target.digest,
      b.manifest.digest,
    );
    assert.deepEqual(await view.tagged("debian/bookworm", "minbase", "docker.io"), []);
    assert.deepEqual(await view.tags("debian/bookworm"), ["minbase", "other"]);
    assert.deepEqual(await view.repositories(), ["debian/bookworm", "library/busybox"]);
    assert.deepEqual(await view.repositories("docker.io"), ["library/busybox"]);
    // the records are listed once while the change token stays
    const lists = images.lists;
    await view.tags("debian/bookworm");
    assert.equal(images.lists, lists);
    images.map.delete("127.0.0.1:5000/debian/bookworm:other");
    version++;
    assert.deepEqual(await view.tags("debian/bookworm"), ["minbase"]);
  });

  test("reachable: everything under the namespace's images, and nothing else; a deleted image takes its blobs", async () => {
    const p = new MemoryProvider();
    const amd = addImage(p, { os: "linux", architecture: "amd64" }, ["l1", "l2"]);
    const arm = addImage(p, { os: "linux", architecture: "arm64" }, ["l3"]);
    const idx = addIndex(p, [
      { ...amd.manifest, platform: { os: "linux", architecture: "amd64" } },
      { ...arm.manifest, platform: { os: "linux", architecture: "arm64" } },
    ]);
    const stray = p.add("stray", MediaType.OciLayerGzip);
    const images = new Images();
    images.set("r.example/multi:1", idx);
    let version = 1;
    const view = new StoreView({ content: p, images, changes: () => version });
    for (const d of [idx, amd.manifest, amd.config, ...amd.layers, arm.manifest, ...arm.layers]) {
      assert.equal((await view.reachable(d.digest))?.digest, d.digest);
    }
    assert.equal((await view.reachable(amd.manifest.digest))?.mediaType, MediaType.OciManifest);
    assert.equal(await view.reachable(stray.digest), undefined);
    images.map.clear();
    version++;
    assert.equal(await view.reachable(amd.layers[0].digest), undefined);
  });

  test("a child missing from the store is walked once it arrives (after invalidate)", async () => {
    const p = new MemoryProvider();
    const amd = addImage(p, { os: "linux", architecture: "amd64" }, ["x"]);
    const idx = addIndex(p, [amd.manifest]);
    const bytes = p.blobs.get(amd.manifest.digest) as Buffer;
    p.blobs.delete(amd.manifest.digest);
    const images = new Images();
    images.set("r.example/m:1", idx);
    const view = new StoreView({ content: p, images, changes: () => 1 });
    assert.ok(await view.reachable(amd.manifest.digest), "the child itself is named by the index");
    assert.equal(await view.reachable(amd.layers[0].digest), undefined);
    p.blobs.set(amd.manifest.digest, bytes);
    view.invalidate();
    assert.ok(await view.reachable(amd.layers[0].digest));
  });

  test("referrers: manifests whose subject is the digest, with their artifact type", async () => {
    const p = new MemoryProvider();
    const img = addImage(p, { os: "linux", architecture: "amd64" }, ["y"]);
    const empty = p.add("{}", MediaType.OciEmpty);
    const sig = p.addJson(
      {
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        artifactType: "application/vnd.example.sig",
        config: empty,
        layers: [],
        subject: img.manifest,
        annotations: { "org.example": "yes" },
      },
      MediaType.OciManifest,
    );
    const images = new Images();
    images.set("r.example/app:1", img.manifest);
    images.set(`r.example/app@${sig.digest}`, sig);
    const view = new StoreView({ content: p, images, changes: () => 1 });
    const refs = await view.referrers(img.manifest.digest);
    assert.equal(refs.length, 1);
    assert.equal(refs[0].digest, sig.digest);
    assert.equal(refs[0].artifactType, "application/vnd.example.sig");
    assert.deepEqual(refs[0].annotations, { "org.example": "yes" });
    assert.deepEqual(await view.referrers(sig.digest), []);
  });
});
