import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Digester, digestOf, isDigest, parseDigest } from "../src/digest.ts";

describe("digest", () => {
  it("accepts sha256 and sha512 of the right length", () => {
    assert.equal(parseDigest(`sha256:${"a".repeat(64)}`).algorithm, "sha256");
    assert.equal(parseDigest(`sha512:${"0".repeat(128)}`).algorithm, "sha512");
  });
  for (const bad of [
    "",
    "sha256",
    ":abc",
    `sha256:${"a".repeat(63)}`,
    `sha256:${"A".repeat(64)}`,
    `sha256:${"g".repeat(64)}`,
    `md5:${"a".repeat(32)}`,
    `sha512:${"a".repeat(64)}`,
  ]) {
    it(`rejects ${JSON.stringify(bad)} as InvalidArgument`, () => {
      assert.throws(
        () => parseDigest(bad),
        (e: Error & { code?: string }) => e.code === "InvalidArgument",
      );
      assert.equal(isDigest(bad), false);
    });
  }
  it("computes digests incrementally", () => {
    const d = new Digester();
    d.update(Buffer.from("hello "));
    d.update(Buffer.from("world\n"));
    assert.equal(d.digest(), digestOf("hello world\n"));
    assert.equal(d.digest(), "sha256:a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447");
  });
});
