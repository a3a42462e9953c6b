import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MAX_MANIFEST_SIZE, readBlob } from "../../src/content/helpers.ts";
import { digestOf } from "../../src/digest.ts";
import { childrenHandler } from "../../src/images/children.ts";
import { MediaType, refKey } from "../../src/images/mediatypes.ts";
import { addImage, addIndex, MemoryProvider } from "./memory.ts";

const signal = new AbortController().signal;
const good = { mediaType: MediaType.OciLayerGzip, digest: digestOf("x"), size: 1 };

describe("childrenHandler", () => {
  for (const docker of [false, true]) {
    const family = docker ? "Docker" : "OCI";
    it(`${family} manifest → config then layers`, async () => {
      const p = new MemoryProvider();
      const img = addImage(p, { os: "linux", architecture: "amd64" }, ["l1", "l2"], { docker });
      const kids = await childrenHandler(p)(img.manifest, signal);
      assert.deepEqual(kids, [img.config, ...img.layers]);
    });
    it(`${family} index → its manifests with platforms`, async () => {
      const p = new MemoryProvider();
      const a = addImage(p, { os: "linux", architecture: "amd64" }, ["a"], { docker });
      const b = addImage(p, { os: "linux", architecture: "arm64" }, ["b"], { docker });
      const ms = [
        { ...a.manifest, platform: { os: "linux", architecture: "amd64" } },
        { ...b.manifest, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
      ];
      const idx = addIndex(p, ms, { docker });
      assert.deepEqual(await childrenHandler(p)(idx, signal), ms);
    });
  }

  it("layers and configs have no children and are not read", async () => {
    const p = new MemoryProvider();
    assert.deepEqual(await childrenHandler(p)(good, signal), []);
    assert.deepEqual(await childrenHandler(p)({ ...good, mediaType: "application/x-unknown" }, signal), []);
  });

  it("refuses schema 1", async () => {
    const p = new MemoryProvider();
    await assert.rejects(
      childrenHandler(p)({ ...good, mediaType: MediaType.DockerSchema1SignedManifest }, signal),
      /schema 1/,
    );
  });

  const hostile: Array<[string, unknown, RegExp]> = [
    ["a bad layer digest", { layers: [{ ...good, digest: "sha256:XYZ" }] }, /layers\[0\]\.digest/],
    ["an unknown digest algorithm", { layers: [{ ...good, digest: `md5:${"0".repeat(32)}` }] }, /layers\[0\]\.digest/],
    ["a negative size", { layers: [{ ...good, size: -1 }] }, /layers\[0\]\.size/],
    ["a fractional size", { layers: [{ ...good, size: 1.5 }] }, /layers\[0\]\.size/],
    ["an unsafe size", { layers: [{ ...good, size: 2 ** 60 }] }, /layers\[0\]\.size/],
    ["a string size", { layers: [{ ...good, size: "1" }] }, /layers\[0\]\.size/],
    ["a missing config", { config: undefined }, /config/],
    ["layers not an array", { layers: {} }, /layers/],
    ["a non-string annotation", { layers: [{ ...good, annotations: { a: 1 } }] }, /annotations/],
    ["a bad platform", { layers: [{ ...good, platform: { os: 1 } }] }, /platform/],
    ["a manifests field", { manifests: [] }, /manifests/],
    ["schemaVersion 1", { schemaVersion: 1 }, /schemaVersion/],
  ];
  for (const [what, patch, re] of hostile) {
    it(`rejects a manifest with ${what}, naming it`, async () => {
      const p = new MemoryProvider();
      const body = {
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        config: good,
        layers: [good],
        ...(patch as object),
      };
      const m = p.addJson(body, MediaType.OciManifest);
      await assert.rejects(childrenHandler(p)(m, signal), (err: Error) => {
        assert.match(err.message, re);
        assert.match(err.message, new RegExp(`invalid manifest ${m.digest}`));
        assert.equal((err as { code?: string }).code, "InvalidArgument");
        return true;
      });
    });
  }

  it("rejects an index with a bad manifest digest and one with layers", async () => {
    const p = new MemoryProvider();
    const bad = p.addJson(
      { schemaVersion: 2, manifests: [{ mediaType: MediaType.OciManifest, digest: "sha256:00", size: 1 }] },
      MediaType.OciIndex,
    );
    await assert.rejects(childrenHandler(p)(bad, signal), /invalid index .*manifests\[0\]\.digest/);
    const confused = p.addJson({ schemaVersion: 2, manifests: [], layers: [] }, MediaType.OciIndex);
    await assert.rejects(childrenHandler(p)(confused, signal), /must not have layers/);
  });

  it("rejects malformed JSON and a body whose media type differs from its descriptor", async () => {
    const p = new MemoryProvider();
    const broken = p.add("{not json", MediaType.OciManifest);
    await assert.rejects(childrenHandler(p)(broken, signal), /malformed JSON/);
    const arr = p.add("[]", MediaType.OciManifest);
    await assert.rejects(childrenHandler(p)(arr, signal), /JSON object/);
    const mixed = p.addJson({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] }, MediaType.OciManifest);
    await assert.rejects(childrenHandler(p)(mixed, signal), /body says media type/);
  });

  it("refuses an oversized manifest before reading it, and a short or altered one", async () => {
    const p = new MemoryProvider();
    const m = p.addJson({ schemaVersion: 2, config: good, layers: [] }, MediaType.OciManifest);
    await assert.rejects(
      childrenHandler(p)({ ...m, size: MAX_MANIFEST_SIZE + 1 }, signal),
      /exceeds the 4194304-byte limit/,
    );
    await assert.rejects(readBlob(p, { ...m, size: m.size + 1 }), /expected/);
    await assert.rejects(readBlob(p, { ...m, size: m.size - 1 }), /expected/);
    p.blobs.set(
      m.digest,
      Buffer.from(JSON.stringify({ schemaVersion: 2, config: good, layers: [good] }).slice(0, m.size)),
    );
    await assert.rejects(readBlob(p, m), /digest/);
  });
});

describe("refKey", () => {
  it("prefixes by kind", () => {
    const d = digestOf("k");
    assert.equal(refKey({ mediaType: MediaType.DockerManifest, digest: d, size: 1 }), `manifest-${d}`);
    assert.equal(refKey({ mediaType: MediaType.OciIndex, digest: d, size: 1 }), `index-${d}`);
    assert.equal(refKey({ mediaType: MediaType.DockerManifestList, digest: d, size: 1 }), `index-${d}`);
    assert.equal(refKey({ mediaType: MediaType.OciConfig, digest: d, size: 1 }), `config-${d}`);
    assert.equal(refKey({ mediaType: MediaType.OciLayerZstd, digest: d, size: 1 }), `layer-${d}`);
    assert.equal(refKey({ mediaType: MediaType.DockerLayer, digest: d, size: 1 }), `layer-${d}`);
    assert.equal(refKey({ mediaType: MediaType.InToto, digest: d, size: 1 }), `attestation-${d}`);
    assert.equal(
      refKey({
        mediaType: MediaType.OciManifest,
        digest: d,
        size: 1,
        annotations: { "vnd.docker.reference.type": "attestation-manifest" },
      }),
      `attestation-${d}`,
    );
    assert.equal(
      refKey({ mediaType: "application/vnd.cncf.helm.chart.content.v1.tar+gzip", digest: d, size: 1 }),
      `unknown-${d}`,
    );
  });
});
