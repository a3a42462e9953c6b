import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { mergeScopes, parseChallenges, repositoryScope, splitScopes } from "../../src/remotes/docker/challenge.ts";

describe("parseChallenges", () => {
  it("reads a Bearer challenge with realm, service and scope", () => {
    const c = parseChallenges(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/redis:pull"',
    );
    assert.deepEqual(c, [
      {
        scheme: "bearer",
        params: {
          realm: "https://auth.docker.io/token",
          service: "registry.docker.io",
          scope: "repository:library/redis:pull",
        },
      },
    ]);
  });
  it("keeps commas inside quoted values and reads escapes", () => {
    const [c] = parseChallenges('Bearer realm="http://h/t",scope="repository:a/b:pull,push",error="x \\"y\\""');
    assert.equal(c.params.scope, "repository:a/b:pull,push");
    assert.equal(c.params.error, 'x "y"');
  });
  it("reads several challenges in one header, Basic included, and tokens without quotes", () => {
    const c = parseChallenges('Basic realm="reg", Bearer realm="http://t/token", service=svc , scope="a b"');
    assert.equal(c.length, 2);
    assert.deepEqual(c[0], { scheme: "basic", params: { realm: "reg" } });
    assert.deepEqual(c[1].params, { realm: "http://t/token", service: "svc", scope: "a b" });
  });
  it("reads several header values and lowercases schemes and parameter names", () => {
    const c = parseChallenges(['BASIC Realm="x"', 'bearer REALM="http://r"']);
    assert.deepEqual(
      c.map((x) => [x.scheme, x.params.realm]),
      [
        ["basic", "x"],
        ["bearer", "http://r"],
      ],
    );
  });
  it("joins repeated scope parameters", () => {
    const [c] = parseChallenges('Bearer realm="r",scope="repository:a:pull",scope="repository:b:pull"');
    assert.deepEqual(splitScopes(c.params.scope), ["repository:a:pull", "repository:b:pull"]);
  });
  it("survives garbage", () => {
    assert.deepEqual(parseChallenges(undefined), []);
    assert.deepEqual(parseChallenges(""), []);
    assert.deepEqual(parseChallenges(",,,"), []);
    const c = parseChallenges('Bearer realm="unterminated');
    assert.equal(c[0].params.realm, "unterminated");
    assert.equal(parseChallenges("Negotiate abc==")[0].scheme, "negotiate");
  });
});

describe("scopes", () => {
  it("repositoryScope", () => {
    assert.equal(repositoryScope("library/redis"), "repository:library/redis:pull");
    assert.equal(repositoryScope("a/b", true), "repository:a/b:pull,push");
  });
  it("mergeScopes joins actions per resource, removes duplicates and sorts", () => {
    assert.deepEqual(
      mergeScopes([
        "repository:b:pull",
        "repository:a:push",
        "repository:a:pull",
        "repository:b:pull",
        "registry:catalog:*",
      ]),
      ["registry:catalog:*", "repository:a:pull,push", "repository:b:pull"],
    );
    // a repository name may contain ':'? no, but a port in a resource type must not confuse it
    assert.deepEqual(mergeScopes(["repository:x/y:pull", "repository:x/y:pull"]), ["repository:x/y:pull"]);
  });
});
