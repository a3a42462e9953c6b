// Table-driven tests over the distribution/reference grammar (vectors ported as data
// from Go's reference_test.go and normalize_test.go) and Docker's normalisation.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isErrorCode } from "../../src/errors.ts";
import {
  familiar,
  formatReference,
  normalize,
  objectOf,
  parseReference,
  parseStrict,
  repositoryName,
  withDigest,
  withTag,
} from "../../src/reference/index.ts";

const H64 = "f".repeat(64);
const H63 = "f".repeat(63);
const H128 = "f".repeat(128);

interface StrictCase {
  input: string;
  domain?: string;
  path?: string;
  tag?: string;
  digest?: string;
  err?: RegExp;
}

const strictCases: StrictCase[] = [
  { input: "test_com", domain: "", path: "test_com" },
  { input: "test.com:tag", domain: "", path: "test.com", tag: "tag" },
  { input: "test.com:5000", domain: "", path: "test.com", tag: "5000" },
  { input: "test.com/repo:tag", domain: "test.com", path: "repo", tag: "tag" },
  { input: "test:5000/repo", domain: "test:5000", path: "repo" },
  { input: "test:5000/repo:tag", domain: "test:5000", path: "repo", tag: "tag" },
  { input: `test:5000/repo@sha256:${H64}`, domain: "test:5000", path: "repo", digest: `sha256:${H64}` },
  {
    input: `test:5000/repo:tag@sha256:${H64}`,
    domain: "test:5000",
    path: "repo",
    tag: "tag",
    digest: `sha256:${H64}`,
  },
  { input: "", err: /empty reference/ },
  { input: ":justtag", err: /empty repository name|invalid/ },
  { input: `@sha256:${H64}`, err: /empty repository name/ },
  { input: `repo@sha256:${H63}`, err: /sha256 needs 64/ },
  { input: `validname@invaliddigest:${H64}`, err: /unsupported algorithm/ },
  { input: "Uppercase:tag", err: /must be lowercase/ },
  // the grammar reads an uppercase first component as a domain
  { input: "Uppercase/lowercase:tag", domain: "Uppercase", path: "lowercase", tag: "tag" },
  { input: "test:5000/Uppercase/lowercase:tag", err: /must be lowercase/ },
  { input: "lowercase:Uppercase", domain: "", path: "lowercase", tag: "Uppercase" },
  { input: `${"a/".repeat(128)}a:tag`, err: /not be more than 255/ },
  {
    input: `${"a/".repeat(127)}a:tag-puts-this-over-max`,
    domain: "a",
    path: `${"a/".repeat(126)}a`,
    tag: "tag-puts-this-over-max",
  },
  { input: "aa/asdf$$^/aa", err: /invalid path component "asdf\$\$\^"/ },
  { input: "sub-dom1.foo.com/bar/baz/quux", domain: "sub-dom1.foo.com", path: "bar/baz/quux" },
  {
    input: "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
    domain: "sub-dom1.foo.com",
    path: "bar/baz/quux",
    tag: "some-long-tag",
  },
  {
    input: "b.gcr.io/test.example.com/my-app:test.example.com",
    domain: "b.gcr.io",
    path: "test.example.com/my-app",
    tag: "test.example.com",
  },
  { input: "xn--n3h.com/myimage:xn--n3h.com", domain: "xn--n3h.com", path: "myimage", tag: "xn--n3h.com" },
  {
    input: `xn--7o8h.com/myimage:xn--7o8h.com@sha512:${H128}`,
    domain: "xn--7o8h.com",
    path: "myimage",
    tag: "xn--7o8h.com",
    digest: `sha512:${H128}`,
  },
  { input: "foo_bar.com:8080", domain: "", path: "foo_bar.com", tag: "8080" },
  { input: "foo/foo_bar.com:8080", domain: "foo", path: "foo_bar.com", tag: "8080" },
  { input: "192.168.1.1", domain: "", path: "192.168.1.1" },
  { input: "192.168.1.1:tag", domain: "", path: "192.168.1.1", tag: "tag" },
  { input: "192.168.1.1:5000", domain: "", path: "192.168.1.1", tag: "5000" },
  { input: "192.168.1.1/repo", domain: "192.168.1.1", path: "repo" },
  { input: "192.168.1.1:5000/repo", domain: "192.168.1.1:5000", path: "repo" },
  { input: "192.168.1.1:5000/repo:5050", domain: "192.168.1.1:5000", path: "repo", tag: "5050" },
  { input: "[2001:db8::1]", err: /invalid/ },
  { input: "[2001:db8::1]:5000", err: /invalid/ },
  { input: "[2001:db8::1]:tag", err: /invalid/ },
  { input: "[2001:db8::1]/repo", domain: "[2001:db8::1]", path: "repo" },
  { input: "[2001:db8:1:2:3:4:5:6]/repo:tag", domain: "[2001:db8:1:2:3:4:5:6]", path: "repo", tag: "tag" },
  { input: "[2001:db8::1]:5000/repo", domain: "[2001:db8::1]:5000", path: "repo" },
  { input: "[2001:db8::1]:5000/repo:tag", domain: "[2001:db8::1]:5000", path: "repo", tag: "tag" },
  {
    input: `[2001:db8::1]:5000/repo@sha256:${H64}`,
    domain: "[2001:db8::1]:5000",
    path: "repo",
    digest: `sha256:${H64}`,
  },
  {
    input: `[2001:db8::1]:5000/repo:tag@sha256:${H64}`,
    domain: "[2001:db8::1]:5000",
    path: "repo",
    tag: "tag",
    digest: `sha256:${H64}`,
  },
  { input: "[2001:db8::]:5000/repo", domain: "[2001:db8::]:5000", path: "repo" },
  { input: "[::1]:5000/repo", domain: "[::1]:5000", path: "repo" },
  { input: "[fe80::1%eth0]:5000/repo", err: /invalid domain/ },
  { input: "[fe80::1%@invalidzone]:5000/repo", err: /invalid/ },
  { input: `repo:${"a".repeat(128)}`, domain: "", path: "repo", tag: "a".repeat(128) },
  { input: `repo:${"a".repeat(129)}`, err: /tag is 129 characters long, at most 128/ },
  { input: "repo:-bad", err: /invalid tag "-bad"/ },
  { input: "repo:.bad", err: /invalid tag/ },
  { input: "a//b", err: /empty path component/ },
  { input: "a/b/", err: /empty path component/ },
  { input: "repo@sha256:xyz", err: /invalid digest/ },
  { input: "foo bar", err: /whitespace/ },
];

describe("parseStrict (the raw grammar)", () => {
  for (const c of strictCases) {
    it(c.input.length > 60 ? `${c.input.slice(0, 60)}…` : c.input || "(empty)", () => {
      if (c.err) {
        assert.throws(
          () => parseStrict(c.input),
          (err: unknown) => {
            assert.ok(isErrorCode(err, "InvalidArgument"), String(err));
            assert.match((err as Error).message, c.err as RegExp);
            return true;
          },
        );
        return;
      }
      const r = parseStrict(c.input);
      assert.equal(r.domain, c.domain);
      assert.equal(r.path, c.path);
      assert.equal(r.tag, c.tag);
      assert.equal(r.digest, c.digest);
      assert.equal(formatReference(r), c.input);
    });
  }
});

// input → normalised string (defaultTag on)
const normalizeCases: [string, string][] = [
  ["redis", "docker.io/library/redis:latest"],
  ["redis:7", "docker.io/library/redis:7"],
  [`redis@sha256:${H64}`, `docker.io/library/redis@sha256:${H64}`],
  [`redis:7@sha256:${H64}`, `docker.io/library/redis:7@sha256:${H64}`],
  ["docker/docker", "docker.io/docker/docker:latest"],
  ["library/debian", "docker.io/library/debian:latest"],
  ["debian", "docker.io/library/debian:latest"],
  ["docker.io/docker/docker", "docker.io/docker/docker:latest"],
  ["docker.io/library/debian", "docker.io/library/debian:latest"],
  ["docker.io/debian", "docker.io/library/debian:latest"],
  ["index.docker.io/docker/docker", "docker.io/docker/docker:latest"],
  ["index.docker.io/library/debian", "docker.io/library/debian:latest"],
  ["index.docker.io/debian", "docker.io/library/debian:latest"],
  ["127.0.0.1:5000/docker/docker", "127.0.0.1:5000/docker/docker:latest"],
  ["127.0.0.1:5000/library/debian", "127.0.0.1:5000/library/debian:latest"],
  ["127.0.0.1:5000/debian", "127.0.0.1:5000/debian:latest"],
  ["192.168.0.1", "docker.io/library/192.168.0.1:latest"],
  ["192.168.0.1:80", "docker.io/library/192.168.0.1:80"],
  ["192.168.0.1:8/debian", "192.168.0.1:8/debian:latest"],
  ["192.168.0.2:25000/debian", "192.168.0.2:25000/debian:latest"],
  [
    "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
    "docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest",
  ],
  ["[fc00::1]:5000/docker", "[fc00::1]:5000/docker:latest"],
  ["[fc00::1]:5000/docker/docker", "[fc00::1]:5000/docker/docker:latest"],
  ["[fc00:1:2:3:4:5:6:7]:5000/library/debian", "[fc00:1:2:3:4:5:6:7]:5000/library/debian:latest"],
  ["[::1]:5000/foo:bar", "[::1]:5000/foo:bar"],
  ["docker-rules/docker", "docker.io/docker-rules/docker:latest"],
  ["docker.io/docker-rules/docker", "docker.io/docker-rules/docker:latest"],
  ["localhost/foo", "localhost/foo:latest"],
  ["localhost:5000/foo/bar", "localhost:5000/foo/bar:latest"],
  ["foo.com:8080/bar", "foo.com:8080/bar:latest"],
  ["dotted.name/stuff", "dotted.name/stuff:latest"],
  ["foo--bar", "docker.io/library/foo--bar:latest"],
  ["foo-bar", "docker.io/library/foo-bar:latest"],
  ["ghcr.io/owner/repo/sub:v1.2.3", "ghcr.io/owner/repo/sub:v1.2.3"],
  ["my-registry.example.com:443/a/b/c", "my-registry.example.com:443/a/b/c:latest"],
];

const normalizeInvalid: [string, RegExp][] = [
  ["https://github.com/docker/docker", /no scheme/],
  ["docker/Docker", /must be lowercase/],
  ["-docker", /invalid path component "-docker"/],
  ["-docker/docker", /invalid path component/],
  ["-docker.io/docker/docker", /invalid domain "-docker.io"/],
  ["docker///docker", /empty path component/],
  ["docker.io/docker/Docker", /must be lowercase/],
  ["docker.io/docker///docker", /empty path component/],
  ["[fc00::1]", /invalid/],
  ["[fc00::1]:5000", /invalid/],
  ["fc00::1:5000/debian", /invalid domain/],
  ["[fe80::1%eth0]:5000/debian", /invalid domain/],
  ["[2001:db8:3:4::192.0.2.33]:5000/debian", /invalid domain/],
  ["1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a", /image ID/],
  ["", /empty reference/],
  [`redis:${"x".repeat(129)}`, /at most 128/],
  [`redis@sha256:${H63}`, /sha256 needs 64/],
  ["redis@md5:0123456789abcdef0123456789abcdef", /unsupported algorithm "md5"/],
  ["Redis", /must be lowercase/],
];

describe("parseReference (normalising)", () => {
  for (const [input, want] of normalizeCases) {
    it(`${input} → ${want}`, () => {
      assert.equal(normalize(input), want);
      // normalising twice changes nothing
      assert.equal(normalize(want), want);
    });
  }
  for (const [input, re] of normalizeInvalid) {
    it(`rejects ${input.length > 50 ? `${input.slice(0, 50)}…` : input || "(empty)"}`, () => {
      assert.throws(
        () => parseReference(input),
        (err: unknown) => {
          assert.ok(isErrorCode(err, "InvalidArgument"), String(err));
          const msg = (err as Error).message;
          assert.match(msg, re);
          assert.ok(msg.startsWith(`invalid reference "${input}"`), msg);
          assert.ok(!msg.includes("\n"));
          return true;
        },
      );
    });
  }
  it("keeps a digest-only reference without a tag", () => {
    const r = parseReference(`redis@sha256:${H64}`);
    assert.equal(r.tag, undefined);
    assert.equal(objectOf(r), `sha256:${H64}`);
  });
  it("defaultTag: false leaves the tag out", () => {
    const r = parseReference("redis", { defaultTag: false });
    assert.deepEqual(r, { domain: "docker.io", path: "library/redis" });
    assert.equal(objectOf(r), "latest");
  });
});

describe("familiar", () => {
  const cases: [string, string][] = [
    ["docker.io/library/redis:latest", "redis:latest"],
    ["redis", "redis"],
    ["fooo/bar", "fooo/bar"],
    ["library/ubuntu", "ubuntu"],
    ["docker.io/library/ubuntu-12.04-base", "ubuntu-12.04-base"],
    ["docker.io/library/foo/bar", "library/foo/bar"],
    ["store/foo/bar", "store/foo/bar"],
    ["127.0.0.1:8000/private/moonbase", "127.0.0.1:8000/private/moonbase"],
    ["127.0.0.1:8000/privatebase", "127.0.0.1:8000/privatebase"],
    ["example.com:8000/private/moonbase", "example.com:8000/private/moonbase"],
    ["index.docker.io/nonlibrary/ubuntu:1", "nonlibrary/ubuntu:1"],
    [`docker.io/library/foo@sha256:${H64}`, `foo@sha256:${H64}`],
  ];
  for (const [input, want] of cases) {
    it(`${input} → ${want}`, () => assert.equal(familiar(input), want));
  }
});

describe("helpers", () => {
  it("repositoryName, withTag, withDigest", () => {
    const r = parseReference("127.0.0.1:5000/tiny/busybox:oci");
    assert.equal(repositoryName(r), "127.0.0.1:5000/tiny/busybox");
    assert.equal(formatReference(withTag(r, "v2")), "127.0.0.1:5000/tiny/busybox:v2");
    assert.equal(formatReference(withDigest(r, `sha256:${H64}`)), `127.0.0.1:5000/tiny/busybox:oci@sha256:${H64}`);
    assert.throws(() => withTag(r, "-x"), /invalid tag/);
    assert.throws(() => withDigest(r, "sha256:abc"), /sha256 needs 64/);
  });
});
