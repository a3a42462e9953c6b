import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  describeErrorBody,
  httpError,
  isRetryableNetworkError,
  networkError,
  parseErrorBody,
} from "../../src/remotes/docker/errors.ts";

describe("registry error bodies", () => {
  it("decodes the distribution error format", () => {
    const body = JSON.stringify({
      errors: [{ code: "MANIFEST_UNKNOWN", message: "manifest unknown", detail: { Tag: "nope" } }],
    });
    assert.deepEqual(parseErrorBody(body)[0].code, "MANIFEST_UNKNOWN");
    assert.equal(describeErrorBody(body), "manifest unknown: manifest unknown (tag nope)");
    assert.equal(describeErrorBody(body, "HTTP 404"), "manifest unknown: manifest unknown (tag nope; HTTP 404)");
  });
  it("joins several errors and tolerates odd shapes", () => {
    const body = JSON.stringify({
      errors: [{ code: "DENIED", message: "requested access to the resource is denied" }, { code: 5 }, null, "x"],
    });
    assert.equal(describeErrorBody(body), "denied: requested access to the resource is denied; unknown");
  });
  it("keeps plain text, drops HTML, and makes one short line", () => {
    assert.equal(describeErrorBody("upstream\nconnect error"), "upstream connect error");
    assert.equal(describeErrorBody("<html><body>502</body></html>"), "");
    assert.ok(describeErrorBody("x".repeat(5000)).length < 400);
    assert.deepEqual(parseErrorBody("not json"), []);
    assert.deepEqual(parseErrorBody('{"errors":"no"}'), []);
  });
  it("maps statuses to typed errors naming the reference and the action", () => {
    const cases: [number, string][] = [
      [401, "Unauthenticated"],
      [403, "PermissionDenied"],
      [404, "NotFound"],
      [400, "InvalidArgument"],
      [429, "Unavailable"],
      [500, "Unavailable"],
      [503, "Unavailable"],
      [418, "InvalidArgument"],
    ];
    for (const [status, code] of cases) {
      const e = httpError({ ref: "r.io/a:b", what: "resolving", status });
      assert.equal(e.code, code, String(status));
      assert.ok(e.message.startsWith("r.io/a:b: resolving: "), e.message);
      assert.ok(e.message.includes(String(status)));
    }
    const e = httpError({
      ref: "127.0.0.1:5000/x:y",
      what: "resolving",
      status: 401,
      body: '{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
    });
    assert.equal(e.message, "127.0.0.1:5000/x:y: resolving: unauthorized: authentication required (HTTP 401)");
  });
  it("explains network failures in one line", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5999"), { code: "ECONNREFUSED" });
    assert.equal(
      networkError("127.0.0.1:5999/a:b", "127.0.0.1:5999", refused).message,
      "127.0.0.1:5999/a:b: cannot reach 127.0.0.1:5999: connection refused",
    );
    const wrapped = Object.assign(new Error("fetch failed"), {
      code: "UND_ERR_SOCKET",
      cause: Object.assign(new Error("getaddrinfo ENOTFOUND nowhere.invalid"), { code: "ENOTFOUND" }),
    });
    assert.match(networkError("r", "nowhere.invalid", wrapped).message, /cannot reach nowhere.invalid: unknown host/);
    const tls = Object.assign(new Error("unable to verify"), { code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" });
    const te = networkError("r", "h:1", tls);
    assert.equal(te.code, "InvalidArgument");
    assert.match(te.message, /--tlscacert/);
    assert.equal(isRetryableNetworkError(refused), true);
    assert.equal(isRetryableNetworkError(tls), false);
    assert.equal(isRetryableNetworkError(wrapped), false);
    assert.equal(isRetryableNetworkError(Object.assign(new Error("x"), { code: "UND_ERR_SOCKET" })), true);
    assert.equal(isRetryableNetworkError(new Error("plain")), false);
  });
});
