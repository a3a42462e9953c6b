import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import bcrypt from "bcryptjs";
import { checkListen, Htpasswd, isLoopbackHost } from "../../src/registry/auth.ts";
import { isLocalAddress, rendezvous } from "../../src/registry/upstream.ts";
import type { RegistryHost } from "../../src/remotes/docker/hosts.ts";

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

describe("htpasswd", () => {
  test("bcrypt hashes of each prefix are checked; wrong users, passwords and headers fail", async () => {
    const users = new Map([
      ["alice", bcrypt.hashSync("secret", 4).replace(/^\$2[ab]\$/, "$2y$")],
      ["bob", bcrypt.hashSync("pw:with:colons", 4)],
    ]);
    const h = new Htpasswd(users);
    assert.equal(await h.check(basic("alice", "secret")), "alice");
    assert.equal(await h.check(basic("alice", "secret")), "alice", "remembered");
    assert.equal(await h.check(basic("bob", "pw:with:colons")), "bob");
    assert.equal(await h.check(basic("alice", "Secret")), undefined);
    assert.equal(await h.check(basic("carol", "secret")), undefined);
    assert.equal(await h.check("Bearer abc"), undefined);
    assert.equal(await h.check(undefined), undefined);
    assert.equal(await h.check("Basic !!!"), undefined);
  });

  test("load reads htpasswd -B output and refuses other hash kinds with the line", () => {
    const dir = mkdtempSync(join(tmpdir(), "dist-htpasswd-"));
    try {
      const file = join(dir, "htpasswd");
      const r = spawnSync("htpasswd", ["-nbB", "alice", "secret"], { encoding: "utf8" });
      if (r.status === 0) {
        writeFileSync(file, `# users\n${r.stdout}\n`);
        Htpasswd.load(file);
      }
      writeFileSync(file, "alice:$apr1$abc$def\n");
      assert.throws(() => Htpasswd.load(file), /htpasswd:1: expected user:bcrypt-hash/);
      writeFileSync(file, "\n");
      assert.throws(() => Htpasswd.load(file), /no users/);
      assert.throws(() => Htpasswd.load(join(dir, "missing")), /cannot read the htpasswd file .*ENOENT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("listen rules", () => {
  test("loopback hosts", () => {
    for (const h of ["127.0.0.1", "127.3.4.5", "::1", "[::1]", "localhost"]) assert.ok(isLoopbackHost(h), h);
    for (const h of ["0.0.0.0", "::", "10.0.0.1", "example.com", "128.0.0.1"]) assert.ok(!isLoopbackHost(h), h);
  });

  test("off loopback: auth and TLS, or --insecure-listen", () => {
    checkListen("127.0.0.1", { auth: false, tls: false, insecureListen: false });
    checkListen("0.0.0.0", { auth: true, tls: true, insecureListen: false });
    checkListen("0.0.0.0", { auth: false, tls: false, insecureListen: true });
    assert.throws(
      () => checkListen("0.0.0.0", { auth: false, tls: true, insecureListen: false }),
      /without authentication/,
    );
    assert.throws(() => checkListen("0.0.0.0", { auth: true, tls: false, insecureListen: false }), /clear text/);
  });
});

describe("peers", () => {
  const host = (h: string): RegistryHost => ({
    host: h,
    scheme: "http",
    path: "/v2",
    capabilities: ["pull", "resolve"],
    ca: [],
    client: [],
    skipVerify: false,
    header: {},
    isServer: false,
  });

  test("rendezvous order depends on the key, not on the order of the list", () => {
    const hosts = ["10.0.0.1:5000", "10.0.0.2:5000", "10.0.0.3:5000", "10.0.0.4:5000"].map(host);
    const firsts = new Set<string>();
    for (let i = 0; i < 40; i++) {
      const key = `sha256:${i}`;
      const a = rendezvous(hosts, key).map((h) => h.host);
      const b = rendezvous([...hosts].reverse(), key).map((h) => h.host);
      assert.deepEqual(a, b);
      firsts.add(a[0]);
    }
    assert.equal(firsts.size, 4, "the keys spread over every peer");
  });

  test("a server knows its own address among the mirrors", () => {
    assert.ok(isLocalAddress("127.0.0.1:5000", 5000));
    assert.ok(isLocalAddress("[::1]:5000", 5000));
    assert.ok(isLocalAddress("localhost:5000", 5000));
    assert.ok(!isLocalAddress("127.0.0.1:5001", 5000));
    assert.ok(!isLocalAddress("192.0.2.77:5000", 5000));
    assert.ok(!isLocalAddress("peer.example:5000", 5000));
  });
});
