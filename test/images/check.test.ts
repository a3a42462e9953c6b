import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { check, imagePlatforms, imageSize, imageSizes } from "../../src/images/check.ts";
import { childrenHandler, filterPlatforms } from "../../src/images/children.ts";
import { MediaType } from "../../src/images/mediatypes.ts";
import { allPlatforms, only } from "../../src/images/platforms.ts";
import { addImage, addIndex, MemoryProvider } from "./memory.ts";

const signal = new AbortController().signal;

function multi() {
  const p = new MemoryProvider();
  const amd = addImage(p, { os: "linux", architecture: "amd64" }, ["amd-layer-1", "shared"]);
  const arm = addImage(p, { os: "linux", architecture: "arm64" }, ["arm-layer-1-longer", "shared"]);
  const armv7 = addImage(p, { os: "linux", architecture: "arm", variant: "v7" }, ["armv7"]);
  const attLayer = p.add("{}", MediaType.InToto);
  const attConfig = p.addJson({}, MediaType.OciConfig);
  const att = p.addJson(
    { schemaVersion: 2, mediaType: MediaType.OciManifest, config: attConfig, layers: [attLayer] },
    MediaType.OciManifest,
  );
  const manifests = [
    { ...amd.manifest, platform: { os: "linux", architecture: "amd64" } },
    { ...arm.manifest, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
    { ...armv7.manifest, platform: { os: "linux", architecture: "arm", variant: "v7" } },
    {
      ...att,
      platform: { os: "unknown", architecture: "unknown" },
      annotations: {
        "vnd.docker.reference.type": "attestation-manifest",
        "vnd.docker.reference.digest": amd.manifest.digest,
      },
    },
  ];
  const index = addIndex(p, manifests);
  return { p, amd, arm, armv7, att, index, manifests };
}

describe("filterPlatforms", () => {
  it("keeps the best manifest per platform and notes attestations", async () => {
    const { p, index, manifests } = multi();
    const notes: string[] = [];
    const h = filterPlatforms(childrenHandler(p), [only({ os: "linux", architecture: "arm64" })], (_d, m) =>
      notes.push(m),
    );
    const kids = await h(index, signal);
    assert.deepEqual(kids, [manifests[1]]);
    assert.equal(notes.length, 1);
    assert.match(notes[0], /skipped attestation manifest/);
  });

  it("keeps one per requested platform, and everything with allPlatforms", async () => {
    const { p, index, manifests } = multi();
    const two = filterPlatforms(childrenHandler(p), [
      only({ os: "linux", architecture: "amd64" }),
      only({ os: "linux", architecture: "arm", variant: "v7" }),
    ]);
    assert.deepEqual(await two(index, signal), [manifests[0], manifests[2]]);
    assert.deepEqual(await filterPlatforms(childrenHandler(p), [allPlatforms()])(index, signal), manifests);
  });

  it("fails naming the platforms on offer when none matches", async () => {
    const { p, index } = multi();
    const h = filterPlatforms(childrenHandler(p), [only({ os: "windows", architecture: "amd64" })]);
    await assert.rejects(h(index, signal), (err: Error) => {
      assert.match(err.message, /no manifest for platform windows\/amd64/);
      assert.match(err.message, /linux\/amd64, linux\/arm64, linux\/arm\/v7/);
      assert.equal((err as { code?: string }).code, "NotFound");
      return true;
    });
  });
});

describe("check and size", () => {
  it("reports present, missing and sizes for one platform", async () => {
    const { p, index, amd } = multi();
    const amd64 = only({ os: "linux", architecture: "amd64" });
    let r = await check(p, index, amd64);
    assert.equal(r.complete, true);
    assert.equal(r.required.length, 5); // index, manifest, config, 2 layers
    const want = index.size + amd.manifest.size + amd.config.size + amd.layers[0].size + amd.layers[1].size;
    assert.equal(r.requiredSize, want);
    assert.equal(await imageSize(p, index, amd64), want);

    p.blobs.delete(amd.layers[0].digest);
    r = await check(p, index, amd64);
    assert.equal(r.complete, false);
    assert.equal(r.known, true);
    assert.deepEqual(r.missing, [amd.layers[0]]);
    assert.equal(r.presentSize, want - amd.layers[0].size);

    p.blobs.delete(amd.manifest.digest);
    r = await check(p, index, amd64);
    assert.equal(r.known, false);
    assert.equal(r.complete, false);
  });

  it("sizes for a platform, else what is present", async () => {
    const { p, index, amd } = multi();
    const amd64 = only({ os: "linux", architecture: "amd64" });
    const all = await check(p, index, allPlatforms());
    const one = await imageSizes(p, index, amd64);
    assert.deepEqual(one, { size: await imageSize(p, index, amd64), presentSize: all.presentSize });
    const none = await imageSizes(p, index, only({ os: "windows", architecture: "amd64" }));
    assert.deepEqual(none, { size: all.presentSize, presentSize: all.presentSize }, "a platform it does not offer");
    p.blobs.delete(amd.manifest.digest);
    const present = (await check(p, index, allPlatforms())).presentSize;
    assert.ok(present < all.presentSize);
    const gone = await imageSizes(p, index, amd64);
    assert.deepEqual(gone, { size: present, presentSize: present }, "its manifest was never fetched");
  });

  it("counts a blob shared between platforms once for all platforms", async () => {
    const { p, index, amd, arm, armv7, att } = multi();
    const all = await imageSize(p, index, allPlatforms());
    const attSize = [...p.blobs.values()].reduce((n, b) => n + b.length, 0);
    assert.equal(all, attSize); // every blob in the provider, the shared layer once
    assert.ok(all > amd.manifest.size + arm.manifest.size + armv7.manifest.size + att.size);
  });

  it("lists platforms from the index (attestations left out) or from the config", async () => {
    const { p, index, amd } = multi();
    assert.deepEqual(
      (await imagePlatforms(p, index)).map((x) => `${x.os}/${x.architecture}${x.variant ? `/${x.variant}` : ""}`),
      ["linux/amd64", "linux/arm/v7", "linux/arm64/v8"],
    );
    assert.deepEqual(await imagePlatforms(p, amd.manifest), [{ os: "linux", architecture: "amd64" }]);
  });
});
