// The system's hosts directories (dist's, containerd's, docker's certs.d) and docker's certificate layout.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { findHostDirectory, readCertsDir, systemHostsDirs } from "../../src/remotes/docker/certsd.ts";
import { registryHosts } from "../../src/remotes/docker/hosts.ts";

const top = mkdtempSync(join(tmpdir(), "dist-certsd-"));
after(() => rmSync(top, { recursive: true, force: true }));

const pem = (what: string) =>
  `-----BEGIN ${what}-----\n${Buffer.from(what).toString("base64")}\n-----END ${what}-----\n`;

/** A self-signed EC client certificate and its key (PEM), as openssl makes them. */
function keyPair(name: string): { cert: string; key: string } {
  const [cert, key] = [join(top, `${name}.cert`), join(top, `${name}.key`)];
  execFileSync(
    "openssl",
    [
      ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"],
      ...["-subj", `/CN=${name}`, "-keyout", key, "-out", cert],
    ],
    { stdio: "ignore" },
  );
  return { cert: readFileSync(cert, "utf8"), key: readFileSync(key, "utf8") };
}

let client: { cert: string; key: string };
let other: { cert: string; key: string };
before(() => {
  client = keyPair("client");
  other = keyPair("other");
});

function files(dir: string, contents: Record<string, string>): string {
  mkdirSync(dir, { recursive: true });
  for (const [f, c] of Object.entries(contents)) writeFileSync(join(dir, f), c);
  return dir;
}

describe("system hosts directories", () => {
  it("are dist's, containerd's and docker's certs.d, a user's own first", () => {
    assert.deepEqual(systemHostsDirs({ root: "/r", uid: 0 }), [
      "/r/etc/dist/certs.d",
      "/r/etc/containerd/certs.d",
      "/r/etc/docker/certs.d",
    ]);
    assert.deepEqual(systemHostsDirs({ root: "/", uid: 1000, configHome: "/home/u/.config" }), [
      "/home/u/.config/dist/certs.d",
      "/home/u/.config/containerd/certs.d",
      "/home/u/.config/docker/certs.d",
      "/etc/dist/certs.d",
      "/etc/containerd/certs.d",
      "/etc/docker/certs.d",
    ]);
  });

  it("the first directory with one for the host wins, its _default before a later directory's host", async () => {
    const root = join(top, "find");
    const [dist, containerd, docker] = systemHostsDirs({ root, uid: 0 });
    files(join(containerd, "reg.example.com:5000"), {});
    files(join(docker, "reg.example.com:5000"), {});
    files(join(docker, "other.example.com"), {});
    const dirs = [dist, containerd, docker];
    assert.equal(await findHostDirectory(dirs, "reg.example.com:5000"), join(containerd, "reg.example.com:5000"));
    assert.equal(await findHostDirectory(dirs, "other.example.com"), join(docker, "other.example.com"));
    assert.equal(await findHostDirectory(dirs, "nowhere.example.com"), undefined);
    files(join(dist, "_default"), {});
    assert.equal(await findHostDirectory(dirs, "other.example.com"), join(dist, "_default"));
    assert.equal(await findHostDirectory(dirs, "../etc"), undefined);
    assert.equal(await findHostDirectory(dirs, ".."), undefined);
  });
});

describe("docker's certificate layout", () => {
  it("reads every *.crt as a CA and each *.cert with its *.key as a client certificate", async () => {
    const dir = files(join(top, "layout"), {
      "ca.crt": pem("CA1"),
      "extra.crt": pem("CA2"),
      "client.cert": client.cert,
      "client.key": client.key,
      "hosts.toml.bak": "ignored",
    });
    assert.deepEqual(await readCertsDir(dir), {
      ca: [pem("CA1"), pem("CA2")],
      client: [client],
    });
  });

  it("refuses a client certificate whose key is another's, naming both files", async () => {
    const dir = files(join(top, "mismatch"), { "client.cert": client.cert, "client.key": other.key });
    await assert.rejects(
      readCertsDir(dir),
      /mismatch: the client certificate and key of .*mismatch\/client\.cert and .*mismatch\/client\.key do not match/,
    );
  });

  it("refuses a client certificate without its key; a key alone is left alone", async () => {
    const noKey = files(join(top, "nokey"), { "client.cert": client.cert });
    await assert.rejects(readCertsDir(noKey), /nokey\/client\.cert: client certificate without its key client\.key/);
    const noCert = files(join(top, "nocert"), { "client.key": client.key });
    assert.deepEqual(await readCertsDir(noCert), { ca: [], client: [] });
  });

  it("gives the server of the namespace the CA and client certificate, with and without hosts.toml", async () => {
    const root = join(top, "hosts");
    const [, containerd, docker] = systemHostsDirs({ root, uid: 0 });
    files(join(docker, "secure.example.com"), {
      "ca.crt": pem("CA"),
      "client.cert": client.cert,
      "client.key": client.key,
    });
    const debug: string[] = [];
    const [server] = await registryHosts("secure.example.com", {
      hostsDir: systemHostsDirs({ root, uid: 0 }),
      onDebug: (m) => debug.push(m),
    });
    assert.equal(server.host, "secure.example.com");
    assert.deepEqual(server.ca, [pem("CA")]);
    assert.deepEqual(server.client, [client]);
    assert.deepEqual(debug, [
      `secure.example.com: host configuration from ${join(docker, "secure.example.com")} (1 CA and 1 client certificates, no hosts.toml)`,
    ]);

    files(join(containerd, "mirrored.example.com"), {
      "hosts.toml": 'server = "https://mirrored.example.com"\n[host."https://mirror.example.com"]\n',
      "client.cert": client.cert,
      "client.key": client.key,
    });
    debug.length = 0;
    const hosts = await registryHosts("mirrored.example.com", {
      hostsDir: systemHostsDirs({ root, uid: 0 }),
      onDebug: (m) => debug.push(m),
    });
    assert.deepEqual(
      hosts.map((h) => [h.host, h.client.length]),
      [
        ["mirror.example.com", 0],
        ["mirrored.example.com", 1],
      ],
    );
    assert.match(
      debug[0],
      /mirrored\.example\.com: host configuration from .*containerd\/certs\.d\/mirrored\.example\.com\/hosts\.toml/,
    );

    debug.length = 0;
    await registryHosts("plain.example.com", {
      hostsDir: systemHostsDirs({ root, uid: 0 }),
      onDebug: (m) => debug.push(m),
    });
    assert.match(
      debug[0],
      /^plain\.example\.com: no host configuration in .*dist\/certs\.d, .*containerd\/certs\.d, .*docker\/certs\.d$/,
    );
  });
});
