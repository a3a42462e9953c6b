import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  credentialsFromAuths,
  credentialsFromHelper,
  DOCKER_HUB_KEY,
  defaultDockerConfigPath,
  dockerCredentials,
  normalizeConfigKey,
} from "../../src/remotes/auth/dockerconfig.ts";

const dir = mkdtempSync(join(tmpdir(), "dist-dockercfg-"));
const bin = join(dir, "bin");
const oldPath = process.env.PATH;
const b64 = (s: string) => Buffer.from(s).toString("base64");

function config(name: string, v: unknown): string {
  const p = join(dir, `${name}.json`);
  writeFileSync(p, typeof v === "string" ? v : JSON.stringify(v));
  return p;
}

before(() => {
  mkdirSync(bin);
  // a fake credential helper: answers for two servers, logs what it was asked
  const script = `#!/bin/sh
[ "$1" = get ] || exit 3
read -r server
echo "$server" >> "${join(dir, "helper.log")}"
case "$server" in
  helper.example.com) echo '{"ServerURL":"helper.example.com","Username":"hu","Secret":"hs"}' ;;
  ${DOCKER_HUB_KEY}) echo '{"ServerURL":"x","Username":"<token>","Secret":"refresh-abc"}' ;;
  broken.example.com) echo 'garbage' ;;
  fail.example.com) echo 'boom' >&2; exit 2 ;;
  *) echo 'credentials not found in native keychain'; exit 1 ;;
esac
`;
  writeFileSync(join(bin, "docker-credential-test"), script);
  chmodSync(join(bin, "docker-credential-test"), 0o755);
  process.env.PATH = `${bin}${delimiter}${oldPath}`;
});
after(() => {
  process.env.PATH = oldPath;
  rmSync(dir, { recursive: true, force: true });
});

describe("docker config.json credentials", () => {
  it("normalises keys", () => {
    assert.equal(normalizeConfigKey("https://index.docker.io/v1/"), "index.docker.io");
    assert.equal(normalizeConfigKey("http://Reg.Example.com:5000"), "reg.example.com:5000");
    assert.equal(normalizeConfigKey("reg.example.com"), "reg.example.com");
  });

  it("reads auths: base64 auth, username/password, identitytoken, keys with or without scheme", () => {
    const cfg = {
      auths: {
        "https://reg.example.com": { auth: b64("alice:pa:ss") },
        "127.0.0.1:5001": { username: "bob", password: "pw" },
        [DOCKER_HUB_KEY]: { auth: b64("hub:hubpw") },
        "ghcr.io": { identitytoken: "idtok" },
      },
    };
    assert.deepEqual(credentialsFromAuths(cfg, "reg.example.com"), { username: "alice", secret: "pa:ss" });
    assert.deepEqual(credentialsFromAuths(cfg, "127.0.0.1:5001"), { username: "bob", secret: "pw" });
    assert.deepEqual(credentialsFromAuths(cfg, "registry-1.docker.io"), { username: "hub", secret: "hubpw" });
    assert.deepEqual(credentialsFromAuths(cfg, "docker.io"), { username: "hub", secret: "hubpw" });
    assert.deepEqual(credentialsFromAuths(cfg, "ghcr.io"), { username: "", secret: "idtok" });
    assert.equal(credentialsFromAuths(cfg, "other.io"), undefined);
    assert.equal(
      credentialsFromAuths({ auths: { "docker.io": { auth: b64("x:y") } } }, "registry-1.docker.io")?.username,
      "x",
    );
  });

  it("rejects a malformed auth without echoing it", () => {
    assert.throws(
      () => credentialsFromAuths({ auths: { "r.io": { auth: b64("nocolon-secret") } } }, "r.io"),
      (err: Error) => !err.message.includes("nocolon-secret") && /not base64 of user:password/.test(err.message),
    );
  });

  it("asks credHelpers per registry, then credsStore, then auths", async () => {
    const p = config("helpers", {
      credHelpers: { "helper.example.com": "test", "fail.example.com": "test", "broken.example.com": "test" },
      credsStore: "test",
      auths: { "auths-only.example.com": { auth: b64("a:b") } },
    });
    assert.deepEqual(await dockerCredentials("helper.example.com", p), { username: "hu", secret: "hs" });
    // credsStore answers for Docker Hub with an identity token
    assert.deepEqual(await dockerCredentials("registry-1.docker.io", p), { username: "", secret: "refresh-abc" });
    // credsStore knows nothing: auths
    assert.deepEqual(await dockerCredentials("auths-only.example.com", p), { username: "a", secret: "b" });
    assert.equal(await dockerCredentials("nothing.example.com", p), undefined);
    await assert.rejects(
      dockerCredentials("fail.example.com", p),
      /docker-credential-test failed for fail.example.com/,
    );
    await assert.rejects(dockerCredentials("broken.example.com", p), /invalid JSON/);
  });

  it("reports a helper that is not installed, and a bad helper name", async () => {
    await assert.rejects(
      credentialsFromHelper("nonexistent-xyz", "r.io"),
      /docker-credential-nonexistent-xyz not found/,
    );
    await assert.rejects(credentialsFromHelper("../evil", "r.io"), /invalid credential helper name/);
  });

  it("a missing file means no credentials; bad JSON is an error naming the file", async () => {
    assert.equal(await dockerCredentials("r.io", join(dir, "absent.json")), undefined);
    const bad = config("bad", "{nope");
    await assert.rejects(dockerCredentials("r.io", bad), (err: Error) => err.message.includes(bad));
  });

  it("finds the default path through DOCKER_CONFIG", () => {
    const old = process.env.DOCKER_CONFIG;
    process.env.DOCKER_CONFIG = "/x/y";
    try {
      assert.equal(defaultDockerConfigPath(), "/x/y/config.json");
    } finally {
      if (old === undefined) delete process.env.DOCKER_CONFIG;
      else process.env.DOCKER_CONFIG = old;
    }
  });
});
