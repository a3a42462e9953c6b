/**
 * The registry client's edges against real servers: the registry requiring TLS
 * client certificates (`http.tls.clientcas`), reached with hosts.toml `client`
 * in its three forms; and a real forward proxy (squid) that alone can resolve
 * the name the registries are reached by, so a request that succeeds went
 * through it (its access log shows each one: absolute-form for http, CONNECT
 * for https). dist never proxies loopback, as Go's clients (containerd, docker,
 * skopeo) do not, hence the name.
 */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { must } from "./fixtures/exec.ts";
import { assertOneLineError } from "./fixtures/store.ts";
import { type ImageInfo, type Registry, type Squid, type Testbed, testbed } from "./harness.ts";

let tb: Testbed;
let certs: string;
let mtls: Registry;
let squid: Squid;
const NAME = "registry.test";

/** No proxy settings from the environment the tests run in. */
const NO_ENV_PROXY = { HTTP_PROXY: "", http_proxy: "", HTTPS_PROXY: "", https_proxy: "", NO_PROXY: "", no_proxy: "" };

async function openssl(...args: string[]): Promise<void> {
  await must("openssl", args, { env: { ...process.env, RANDFILE: join(certs, ".rnd") } });
}

/** A CA, a server certificate for 127.0.0.1 and registry.test, a client certificate it signed, and a stranger's. */
async function makeCerts(): Promise<void> {
  const p = (f: string) => join(certs, f);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const selfSigned = (name: string, cn: string) =>
    openssl(
      "req",
      "-x509",
      ...ec,
      "-days",
      "2",
      "-subj",
      `/CN=${cn}`,
      "-keyout",
      p(`${name}.key`),
      "-out",
      p(`${name}.crt`),
    );
  await selfSigned("ca", "edges CA");
  await selfSigned("stranger", "stranger");
  for (const [name, ext] of [
    ["server", `subjectAltName=IP:127.0.0.1,DNS:${NAME}\nextendedKeyUsage=serverAuth\n`],
    ["client", "extendedKeyUsage=clientAuth\n"],
  ]) {
    await openssl("req", ...ec, "-subj", `/CN=${name}`, "-keyout", p(`${name}.key`), "-out", p(`${name}.csr`));
    writeFileSync(p(`${name}.ext`), ext);
    const ca = ["-CA", p("ca.crt"), "-CAkey", p("ca.key"), "-CAcreateserial", "-days", "2"];
    await openssl(
      "x509",
      "-req",
      "-in",
      p(`${name}.csr`),
      ...ca,
      "-extfile",
      p(`${name}.ext`),
      "-out",
      p(`${name}.crt`),
    );
  }
  writeFileSync(p("client.pem"), readFileSync(p("client.crt"), "utf8") + readFileSync(p("client.key"), "utf8"));
}

before(async () => {
  tb = await testbed();
  certs = tb.tempDir("edges-certs");
  await makeCerts();
  [mtls, squid] = await Promise.all([
    tb.registry({
      name: "mtls",
      storage: tb.storage,
      tls: { cert: join(certs, "server.crt"), key: join(certs, "server.key"), clientCas: [join(certs, "ca.crt")] },
    }),
    tb.squid({ [NAME]: "127.0.0.1" }),
  ]);
});
after(() => tb?.stop());

const img = (ref: string): ImageInfo => {
  const i = tb.images[ref];
  assert.ok(i, `the test bed has no image ${ref}`);
  return i;
};
const port = (addr: string) => addr.slice(addr.lastIndexOf(":") + 1);

/** A hosts directory whose `host` entry reaches the mTLS registry with `client` (TOML). */
function hostsDir(host: string, client: string | undefined): string {
  const dir = tb.tempDir("hosts");
  mkdirSync(join(dir, host));
  const lines = [`server = "https://${host}"`, `ca = "${join(certs, "ca.crt")}"`];
  if (client !== undefined) lines.push(`client = ${client}`);
  writeFileSync(join(dir, host, "hosts.toml"), `${lines.join("\n")}\n`);
  return dir;
}

async function fetchObject(ref: string, args: string[], env: Record<string, string> = NO_ENV_PROXY) {
  return tb.dist(["fetch-object", ...args, ref], { env });
}

describe("TLS client certificates (hosts.toml client)", () => {
  const info = () => img("tiny/busybox:oci");

  it("are required by the registry: without one, a one-line error says so", async () => {
    const r = await fetchObject(`${mtls.addr}/${info().ref}`, ["--hosts-dir", hostsDir(mtls.addr, undefined)]);
    assertOneLineError(r, mtls.addr, /client certificate/);
  });

  it("are offered in each of containerd's forms and the [cert, key] list", async () => {
    const c = (f: string) => JSON.stringify(join(certs, f));
    for (const form of [
      `[${c("client.crt")}, ${c("client.key")}]`,
      `[[${c("client.crt")}, ${c("client.key")}]]`,
      c("client.pem"),
      `[[${c("client.pem")}, ""]]`,
    ]) {
      const r = await fetchObject(`${mtls.addr}/${info().ref}`, ["--hosts-dir", hostsDir(mtls.addr, form)]);
      assert.equal(r.code, 0, `client = ${form}: ${r.stderr}`);
      assert.equal(JSON.parse(r.stdout).config.digest, info().config?.digest);
    }
  });

  it("a certificate the registry does not trust is refused in one line", async () => {
    const c = (f: string) => JSON.stringify(join(certs, f));
    const r = await fetchObject(`${mtls.addr}/${info().ref}`, [
      "--hosts-dir",
      hostsDir(mtls.addr, `[${c("stranger.crt")}, ${c("stranger.key")}]`),
    ]);
    assertOneLineError(r, mtls.addr, /client certificate/);
  });

  it("pull and push work over mutual TLS", async () => {
    const hosts = hostsDir(
      mtls.addr,
      `[[${JSON.stringify(join(certs, "client.crt"))}, ${JSON.stringify(join(certs, "client.key"))}]]`,
    );
    const root = tb.newRoot();
    const src = `${mtls.addr}/${info().ref}`;
    const f = await tb.dist(["fetch", "--hosts-dir", hosts, src], { root, env: NO_ENV_PROXY });
    assert.equal(f.code, 0, f.stderr);
    const p = await tb.dist(["push", "--hosts-dir", hosts, `${mtls.addr}/scratch/mtls-${process.pid}:1`, src], {
      root,
      env: NO_ENV_PROXY,
    });
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, new RegExp(`digest: ${info().digest}`));
  });
});

describe("forward proxies (HTTP_PROXY, HTTPS_PROXY, NO_PROXY)", () => {
  const info = () => img("tiny/busybox:oci");
  const proxyUrl = () => `http://${squid.addr}`;
  const plainByName = () => `${NAME}:${port(tb.plain)}`;

  it("http goes through the proxy as absolute-form requests (the name resolves only there)", async () => {
    const direct = await fetchObject(`${plainByName()}/${info().ref}`, ["--plain-http"]);
    assertOneLineError(direct, /unknown host|cannot reach/);
    const before = squid.lines().length;
    const r = await fetchObject(`${plainByName()}/${info().ref}`, ["--plain-http"], {
      ...NO_ENV_PROXY,
      HTTP_PROXY: proxyUrl(),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).config.digest, info().config?.digest);
    const seen = squid.lines().slice(before).join("\n");
    assert.match(seen, new RegExp(`(HEAD|GET) http://${NAME}:${port(tb.plain)}/v2/tiny/busybox/manifests/oci `));
  });

  it("https goes through a CONNECT tunnel (lower-case https_proxy), client certificate inside it", async () => {
    const host = `${NAME}:${port(mtls.addr)}`;
    const hosts = hostsDir(
      host,
      `[${JSON.stringify(join(certs, "client.crt"))}, ${JSON.stringify(join(certs, "client.key"))}]`,
    );
    const before = squid.lines().length;
    const r = await fetchObject(`${host}/${info().ref}`, ["--hosts-dir", hosts], {
      ...NO_ENV_PROXY,
      https_proxy: proxyUrl(),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(squid.lines().slice(before).join("\n"), new RegExp(`CONNECT ${host.replace(/\./g, "\\.")} `));
  });

  it("pushes through the proxy too", async () => {
    const root = tb.newRoot();
    const env = { ...NO_ENV_PROXY, HTTP_PROXY: proxyUrl() };
    const f = await tb.dist(["fetch", "--plain-http", `${tb.plain}/${info().ref}`], { root, env });
    assert.equal(f.code, 0, f.stderr);
    const before = squid.lines().length;
    const dest = `${plainByName()}/scratch/proxied-${process.pid}:1`;
    const p = await tb.dist(["push", "--plain-http", dest, `${tb.plain}/${info().ref}`], { root, env });
    assert.equal(p.code, 0, p.stderr);
    const seen = squid.lines().slice(before).join("\n");
    assert.match(seen, /PUT http:\/\/registry\.test:\d+\/v2\/scratch\/proxied-\d+\/manifests\/1/);
  });

  it("NO_PROXY by name and port; loopback is never proxied; a dead proxy is named in the error", async () => {
    const ref = `${plainByName()}/${info().ref}`;
    const env = { ...NO_ENV_PROXY, HTTP_PROXY: proxyUrl() };
    assertOneLineError(
      await fetchObject(ref, ["--plain-http"], { ...env, NO_PROXY: `localhost,.example.com,${NAME}` }),
      /unknown host|cannot reach/,
    );
    assertOneLineError(
      await fetchObject(ref, ["--plain-http"], { ...env, no_proxy: `${NAME}:${port(tb.plain)}` }),
      /unknown host|cannot reach/,
    );
    const otherPort = await fetchObject(ref, ["--plain-http"], { ...env, NO_PROXY: `${NAME}:1,10.0.0.0/8` });
    assert.equal(otherPort.code, 0, otherPort.stderr);
    const dead = `http://${await tb.deadAddr()}`;
    const loopback = await fetchObject(`${tb.plain}/${info().ref}`, ["--plain-http"], {
      ...NO_ENV_PROXY,
      HTTP_PROXY: dead,
    });
    assert.equal(loopback.code, 0, loopback.stderr);
    const viaDead = await fetchObject(ref, ["--plain-http"], { ...NO_ENV_PROXY, HTTP_PROXY: dead });
    assertOneLineError(viaDead, `through proxy ${dead}`, /connection refused/);
  });
});
