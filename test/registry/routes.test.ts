import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { RegistryError } from "../../src/registry/errors.ts";
import { parseRange } from "../../src/registry/range.ts";
import { parseRoute, splitTarget } from "../../src/registry/routes.ts";

const D = `sha256:${"a".repeat(64)}`;

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof RegistryError, String(err));
    return `${err.status} ${err.code}`;
  }
  return "ok";
}

describe("parseRoute", () => {
  test("every endpoint of the API", () => {
    assert.deepEqual(parseRoute("/v2/"), { kind: "base" });
    assert.deepEqual(parseRoute("/v2"), { kind: "base" });
    assert.deepEqual(parseRoute("/v2/_catalog"), { kind: "catalog" });
    assert.deepEqual(parseRoute("/v2/a/b/c/tags/list"), { kind: "tags", name: "a/b/c" });
    assert.deepEqual(parseRoute("/v2/library/busybox/manifests/latest"), {
      kind: "manifest",
      name: "library/busybox",
      reference: "latest",
    });
    assert.deepEqual(parseRoute(`/v2/x/manifests/${D}`), { kind: "manifest", name: "x", reference: D, digest: D });
    assert.deepEqual(parseRoute(`/v2/x/y/blobs/${D}`), { kind: "blob", name: "x/y", digest: D });
    assert.deepEqual(parseRoute(`/v2/x/referrers/${D}`), { kind: "referrers", name: "x", digest: D });
    assert.deepEqual(parseRoute("/v2/x/blobs/uploads/"), { kind: "upload-start", name: "x" });
    assert.deepEqual(parseRoute("/v2/x/blobs/uploads"), { kind: "upload-start", name: "x" });
    const id = "0f8fad5b-d9cb-469f-a165-70867728950e";
    assert.deepEqual(parseRoute(`/v2/x/blobs/uploads/${id}`), { kind: "upload", name: "x", id });
    // a repository may be named like an endpoint's words
    assert.deepEqual(parseRoute("/v2/blobs/manifests/tags"), { kind: "manifest", name: "blobs", reference: "tags" });
    // a colon encoded by a client is decoded once
    assert.deepEqual(parseRoute(`/v2/x/blobs/${D.replace(":", "%3A")}`), { kind: "blob", name: "x", digest: D });
  });

  test("what cannot be a name or digest is refused before anything else", () => {
    const cases: [string, string][] = [
      ["/v2/../x/blobs/" + D, "400 NAME_INVALID"],
      ["/v2/x/%2e%2e/blobs/" + D, "400 NAME_INVALID"],
      ["/v2/x%2fy/tags/list", "400 NAME_INVALID"],
      ["/v2/x%5cy/tags/list", "400 NAME_INVALID"],
      ["/v2/x/%252e%252e/tags/list", "400 NAME_INVALID"],
      ["/v2/x%/tags/list", "400 NAME_INVALID"],
      ["/v2/X/tags/list", "400 NAME_INVALID"],
      ["/v2//x/tags/list", "400 NAME_INVALID"],
      [`/v2/${"a/".repeat(130)}x/tags/list`, "400 NAME_INVALID"],
      ["/v2/x/blobs/sha256:abc", "400 DIGEST_INVALID"],
      [`/v2/x/blobs/md5:${"0".repeat(32)}`, "400 DIGEST_INVALID"],
      [`/v2/x/blobs/sha256:${"A".repeat(64)}`, "400 DIGEST_INVALID"],
      ["/v2/x/manifests/-tag", "400 MANIFEST_INVALID"],
      ["/v2/x/blobs/uploads/not-a-uuid", "404 BLOB_UPLOAD_UNKNOWN"],
      ["/v2/x/nothing", "404 NAME_UNKNOWN"],
      ["/etc/passwd", "404 NAME_UNKNOWN"],
    ];
    for (const [path, want] of cases)
      assert.equal(
        code(() => parseRoute(path)),
        want,
        path,
      );
  });

  test("splitTarget keeps the path undecoded and reads absolute-form targets", () => {
    assert.equal(splitTarget("/v2/a%2fb?ns=docker.io").path, "/v2/a%2fb");
    assert.equal(splitTarget("/v2/a?ns=docker.io").query.get("ns"), "docker.io");
    assert.equal(splitTarget("http://evil.example/v2/x/tags/list?n=1").path, "/v2/x/tags/list");
  });
});

describe("parseRange", () => {
  test("one range: from, from-to (clipped to the end), a suffix", () => {
    assert.equal(parseRange(undefined, 10), undefined);
    assert.deepEqual(parseRange("bytes=2-", 10), { start: 2, end: 9 });
    assert.deepEqual(parseRange("bytes=2-4", 10), { start: 2, end: 4 });
    assert.deepEqual(parseRange("bytes=2-400", 10), { start: 2, end: 9 });
    assert.deepEqual(parseRange("bytes=-3", 10), { start: 7, end: 9 });
    assert.deepEqual(parseRange("bytes=-30", 10), { start: 0, end: 9 });
  });

  test("several ranges, other units, past the end or backwards: 416 with the size", () => {
    for (const h of [
      "bytes=0-1,3-4",
      "items=0-1",
      "bytes=10-",
      "bytes=5-2",
      "bytes=-0",
      "bytes=x-y",
      "bytes=-",
      "bytes=99999999999999999999-",
    ]) {
      try {
        parseRange(h, 10);
        assert.fail(h);
      } catch (err) {
        assert.ok(err instanceof RegistryError, h);
        assert.equal(err.status, 416, h);
        assert.equal(err.headers["content-range"], "bytes */10");
      }
    }
  });
});
