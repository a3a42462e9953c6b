import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { hostsWith, registryHosts } from "../../src/remotes/docker/hosts.ts";

const dir = mkdtempSync(join(tmpdir(), "dist-hosts-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

function hostDir(name: string, toml?: string, files: Record<string, string> = {}): void {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  if (toml !== undefined) writeFileSync(join(d, "hosts.toml"), toml);
  for (const [f, c] of Object.entries(files)) writeFileSync(join(d, f), c);
}

const brief = (hs: Awaited<ReturnType<typeof registryHosts>>) =>
  hs.map((h) => `${h.scheme}://${h.host}${h.path}${h.isServer ? "" : " (mirror)"} ${h.capabilities.join(",")}`);

describe("registry hosts", () => {
  it("defaults: https, /v2, docker.io at registry-1.docker.io", async () => {
    assert.deepEqual(brief(await registryHosts("docker.io")), ["https://registry-1.docker.io/v2 pull,resolve,push"]);
    assert.deepEqual(brief(await registryHosts("127.0.0.1:5000", { plainHttp: true })), [
      "http://127.0.0.1:5000/v2 pull,resolve,push",
    ]);
    const [h] = await registryHosts("[::1]:5000", { skipVerify: true });
    assert.equal(h.host, "[::1]:5000");
    assert.equal(h.skipVerify, true);
  });

  it("mirrors first, in file order, then the server, with their settings", async () => {
    hostDir(
      "docker.io",
      `server = "https://registry-1.docker.io"
[host."https://mirror-b.example.com"]
  capabilities = ["pull", "resolve"]
  ca = "mirror-ca.pem"
  skip_verify = false
[host."https://mirror-b.example.com".header]
  x-custom = "1"
  x-multi = ["a", "b"]
[host."http://mirror-a.example.com:5000/prefix"]
  capabilities = ["pull"]
  skip_verify = true
[host."https://mirror-c.example.com/v2/custom"]
  override_path = true
`,
      { "mirror-ca.pem": PEM },
    );
    const hosts = await registryHosts("docker.io", { hostsDir: dir });
    assert.deepEqual(brief(hosts), [
      "https://mirror-b.example.com/v2 (mirror) pull,resolve",
      "http://mirror-a.example.com:5000/prefix/v2 (mirror) pull",
      "https://mirror-c.example.com/v2/custom (mirror) pull,resolve,push",
      "https://registry-1.docker.io/v2 pull,resolve,push",
    ]);
    assert.deepEqual(hosts[0].ca, [PEM]);
    assert.deepEqual(hosts[0].header, { "x-custom": ["1"], "x-multi": ["a", "b"] });
    assert.equal(hosts[1].skipVerify, true);
    assert.deepEqual(brief(hostsWith(hosts, "resolve", "docker.io")), [
      "https://mirror-b.example.com/v2 (mirror) pull,resolve",
      "https://mirror-c.example.com/v2/custom (mirror) pull,resolve,push",
      "https://registry-1.docker.io/v2 pull,resolve,push",
    ]);
  });

  it("without server, only the listed hosts; _default is the fallback directory", async () => {
    hostDir("_default", `[host."http://127.0.0.1:9999"]\ncapabilities = ["pull", "resolve"]\n`);
    const hosts = await registryHosts("quay.io", { hostsDir: dir });
    assert.deepEqual(brief(hosts), ["http://127.0.0.1:9999/v2 (mirror) pull,resolve"]);
    assert.throws(() => hostsWith(hosts, "push", "quay.io"), /no configured host has the "push" capability/);
  });

  it("a server-only hosts.toml changes the upstream; *.crt files and flags add CAs", async () => {
    hostDir("reg.example.com:8443", `server = "https://reg-internal.example.com:9443"\nskip_verify = true\n`, {
      "extra.crt": PEM,
    });
    const ca = join(dir, "flag-ca.pem");
    writeFileSync(ca, "FLAG");
    const hosts = await registryHosts("reg.example.com:8443", { hostsDir: dir, tlsCaCert: [ca] });
    assert.deepEqual(brief(hosts), ["https://reg-internal.example.com:9443/v2 pull,resolve,push"]);
    assert.equal(hosts[0].skipVerify, true);
    assert.deepEqual(hosts[0].ca, [PEM, "FLAG"]);
    assert.equal(hosts[0].isServer, true);
  });

  it("a host directory with only certificates keeps the default server", async () => {
    hostDir("certs-only.example.com", undefined, { "ca.crt": PEM, "client.key": "KEY" });
    const hosts = await registryHosts("certs-only.example.com", { hostsDir: dir });
    assert.deepEqual(brief(hosts), ["https://certs-only.example.com/v2 pull,resolve,push"]);
    assert.deepEqual(hosts[0].ca, [PEM]);
  });

  it("reports bad files clearly", async () => {
    hostDir("bad-toml.example.com", "server = \n");
    await assert.rejects(registryHosts("bad-toml.example.com", { hostsDir: dir }), /bad-toml.example.com\/hosts.toml/);
    hostDir("bad-cap.example.com", `[host."https://m"]\ncapabilities = ["fly"]\n`);
    await assert.rejects(registryHosts("bad-cap.example.com", { hostsDir: dir }), /unknown capability "fly"/);
    hostDir("bad-ca.example.com", `server = "https://x"\nca = "missing.pem"\n`);
    await assert.rejects(registryHosts("bad-ca.example.com", { hostsDir: dir }), /cannot read CA file .*missing.pem/);
    hostDir("bad-url.example.com", `[host."ftp://m"]\n`);
    await assert.rejects(registryHosts("bad-url.example.com", { hostsDir: dir }), /must be http or https/);
    await assert.rejects(registryHosts("x.io", { tlsCaCert: [join(dir, "nope.pem")] }), /--tlscacert: cannot read/);
  });
});
