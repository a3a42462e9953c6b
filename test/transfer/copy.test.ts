// copyImage with --referrers through the OCI 1.1 referrers API, on in-process registries
// (distribution 2.8, the real registry of the integration tests, has only the tag schema).
import assert from "node:assert/strict";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import type { Descriptor } from "../../src/descriptor.ts";
import { digestOf } from "../../src/digest.ts";
import { createResolver, type DockerResolver } from "../../src/remotes/docker/index.ts";
import { copyImage } from "../../src/transfer/copy.ts";
import { OCI_MANIFEST, UploadRegistry } from "../remotes/upload-registry.ts";

const src = new UploadRegistry();
const dst = new UploadRegistry();
let resolver: DockerResolver;
before(async () => {
  await Promise.all([src.start(), dst.start()]);
  resolver = createResolver({
    plainHttp: true,
    retries: 1,
    backoffBaseMs: 1,
    dockerConfigPath: join(tmpdir(), "dist-no-such-config.json"),
    proxy: {},
  });
});
after(async () => {
  await resolver.close();
  await Promise.all([src.close(), dst.close()]);
});

function blob(r: UploadRegistry, bytes: string, mediaType: string): Descriptor {
  const b = Buffer.from(bytes);
  const d = digestOf(b);
  r.blobs.set(d, b);
  return { mediaType, digest: d, size: b.length };
}

function manifest(r: UploadRegistry, body: object, tag?: string): Descriptor {
  const b = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, ...body }));
  const d = digestOf(b);
  r.manifests.set(d, { type: OCI_MANIFEST, body: b });
  if (tag) r.manifests.set(tag, { type: OCI_MANIFEST, body: b });
  return { mediaType: OCI_MANIFEST, digest: d, size: b.length };
}

let image: Descriptor;
let sig: Descriptor;
let sbom: Descriptor;
beforeEach(() => {
  src.reset();
  dst.reset();
  const config = blob(
    src,
    '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}',
    "application/vnd.oci.image.config.v1+json",
  );
  const layer = blob(src, "layer bytes", "application/vnd.oci.image.layer.v1.tar");
  image = manifest(src, { config, layers: [layer] }, "v1");
  const empty = blob(src, "{}", "application/vnd.oci.empty.v1+json");
  const payload = blob(src, "signature", "application/vnd.dev.cosign.simplesigning.v1+json");
  sig = manifest(src, {
    artifactType: "application/vnd.dev.cosign.artifact.sig.v1+json",
    config: empty,
    layers: [payload],
    subject: image,
  });
  const doc = blob(src, '{"spdxVersion":"SPDX-2.3"}', "application/spdx+json");
  // an SBOM of the signature: a referrer of a referrer
  sbom = manifest(src, { artifactType: "application/spdx+json", config: empty, layers: [doc], subject: sig });
});

describe("copyImage --referrers through the referrers API", () => {
  it("copies referrers and theirs; a destination with the API needs no tag", async () => {
    const r = await copyImage({ resolver, src: `${src.addr}/app:v1`, dst: `${dst.addr}/app:v1`, referrers: true });
    assert.equal(r.desc.digest, image.digest);
    assert.equal(r.referrers, 2);
    for (const d of [image, sig, sbom]) assert.ok(dst.manifests.has(d.digest), d.digest);
    assert.ok(src.log.some((l) => l.startsWith(`GET /v2/app/referrers/${image.digest}`)));
    assert.ok(!dst.log.some((l) => /PUT \/v2\/app\/manifests\/sha256-/.test(l)), dst.log.join("\n"));
  });

  it("lists them in the destination's tag schema when it lacks the API", async () => {
    dst.referrersApi = false;
    const r = await copyImage({ resolver, src: `${src.addr}/app:v1`, dst: `${dst.addr}/app:v1`, referrers: true });
    assert.equal(r.referrers, 2);
    const tagged = (subject: Descriptor) => {
      const t = dst.manifests.get(`sha256-${subject.digest.slice(7)}`);
      assert.ok(t, `no referrers tag for ${subject.digest}`);
      return (JSON.parse(t.body.toString()) as { manifests: Descriptor[] }).manifests.map((d) => [
        d.digest,
        d.artifactType,
      ]);
    };
    assert.deepEqual(tagged(image), [[sig.digest, "application/vnd.dev.cosign.artifact.sig.v1+json"]]);
    assert.deepEqual(tagged(sig), [[sbom.digest, "application/spdx+json"]]);
  });

  it("copies no referrers unless asked", async () => {
    const r = await copyImage({ resolver, src: `${src.addr}/app:v1`, dst: `${dst.addr}/app:v1` });
    assert.equal(r.referrers, 0);
    assert.ok(!dst.manifests.has(sig.digest));
    assert.ok(!src.log.some((l) => l.includes("/referrers/")));
  });
});
