// narrowIndex: an index listing only some of its manifests, the rest of it unchanged.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Descriptor } from "../../src/descriptor.ts";
import { digestOf } from "../../src/digest.ts";
import { narrowIndex } from "../../src/images/narrow.ts";

const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const m = (n: string, arch: string): Descriptor & { "x-extra"?: string } => ({
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  digest: digestOf(n),
  size: n.length,
  platform: { os: "linux", architecture: arch },
});

describe("narrowIndex", () => {
  const amd = m("amd", "amd64");
  const arm = { ...m("arm", "arm64"), "x-extra": "kept" };
  const body = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [amd, arm], annotations: { a: "b" } }),
  );
  const index: Descriptor = { mediaType: OCI_INDEX, digest: digestOf(body), size: body.length };

  it("is the index itself when every manifest stays", () => {
    const r = narrowIndex(index, body, [arm, amd]);
    assert.equal(r.narrowed, false);
    assert.equal(r.desc, index);
    assert.equal(r.bytes, body);
  });

  it("lists the kept entries as they were, the index's other fields unchanged", () => {
    const r = narrowIndex(index, body, [arm]);
    assert.equal(r.narrowed, true);
    assert.equal(r.desc.digest, digestOf(r.bytes));
    assert.equal(r.desc.size, r.bytes.length);
    assert.deepEqual(JSON.parse(r.bytes.toString()), {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [arm],
      annotations: { a: "b" },
    });
  });

  it("refuses a manifest the index does not list", () => {
    assert.throws(() => narrowIndex(index, body, [m("other", "s390x")]), /does not list sha256:/);
  });
});
