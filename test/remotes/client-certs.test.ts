// hosts.toml `client`: containerd's forms, the [cert, key] list users write, and clear refusals.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { clientKeyPairs } from "../../src/remotes/docker/client-certs.ts";
import { registryHosts } from "../../src/remotes/docker/hosts.ts";

const dir = mkdtempSync(join(tmpdir(), "dist-client-certs-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A self-signed EC certificate and its key, in `name.crt` and `name.key`. */
function selfSigned(name: string): void {
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "2",
      "-subj",
      `/CN=${name}`,
      "-keyout",
      join(dir, `${name}.key`),
      "-out",
      join(dir, `${name}.crt`),
    ],
    { stdio: "ignore" },
  );
}

const read = (f: string) => readFileSync(join(dir, f), "utf8");

before(() => {
  selfSigned("a");
  selfSigned("b");
  writeFileSync(join(dir, "a.pem"), read("a.crt") + read("a.key"));
  writeFileSync(join(dir, "b.pem"), read("b.key") + read("b.crt"));
});

describe("client certificates", () => {
  it("reads containerd's forms: one combined file, several, and [cert, key] pairs", async () => {
    const one = await clientKeyPairs("a.pem", dir, "hosts.toml");
    assert.equal(one.length, 1);
    assert.match(one[0].cert, /^-----BEGIN CERTIFICATE-----/);
    assert.match(one[0].key, /PRIVATE KEY-----\n$/);
    const two = await clientKeyPairs(["a.pem", join(dir, "b.pem")], dir, "hosts.toml");
    assert.equal(two.length, 2);
    assert.notEqual(two[0].key, two[1].key);
    const pairs = await clientKeyPairs(
      [
        ["a.crt", "a.key"],
        ["b.pem", ""],
      ],
      dir,
      "hosts.toml",
    );
    assert.deepEqual(
      pairs.map((p) => p.key),
      [read("a.key"), two[1].key],
    );
  });

  it("takes a certificate-only file followed by a key-only file as one pair", async () => {
    const pairs = await clientKeyPairs(["a.crt", "a.key"], dir, "hosts.toml");
    assert.equal(pairs.length, 1);
    assert.equal(pairs[0].cert.trim(), read("a.crt").trim());
  });

  it("refuses missing files, keys that do not match and wrong shapes, naming the file", async () => {
    await assert.rejects(
      clientKeyPairs("nope.pem", dir, "H"),
      /^InvalidArgumentError: H: cannot read client certificate file .*nope\.pem: ENOENT/,
    );
    await assert.rejects(
      clientKeyPairs([["a.crt", "b.key"]], dir, "H"),
      /H: the client certificate and key of .*a\.crt and .*b\.key do not match/,
    );
    await assert.rejects(clientKeyPairs("a.crt", dir, "H"), /H: no private key in .*a\.crt/);
    await assert.rejects(clientKeyPairs("a.key", dir, "H"), /H: no certificate in .*a\.key/);
    await assert.rejects(clientKeyPairs(42, dir, "H"), /H: client must be a file/);
    await assert.rejects(
      clientKeyPairs([["a.crt"]], dir, "H"),
      /H: client entry 1 must be a file or a \[cert, key\] pair/,
    );
  });

  it("hosts.toml carries them on the host they belong to", async () => {
    const hostsDir = join(dir, "hosts");
    const hostDir = join(hostsDir, "reg.example.com");
    execFileSync("mkdir", ["-p", hostDir]);
    writeFileSync(
      join(hostDir, "hosts.toml"),
      `server = "https://reg.example.com"\nclient = [["${join(dir, "a.crt")}", "${join(dir, "a.key")}"]]\n`,
    );
    const [h] = await registryHosts("reg.example.com", { hostsDir });
    assert.equal(h.client.length, 1);
    const [plain] = await registryHosts("other.example.com", { hostsDir });
    assert.deepEqual(plain.client, []);
  });
});
