/**
 * `dist serve --upstream`: pull-through from the real registry (behind a
 * counting proxy). Concurrent requests for one blob share one upstream
 * download and all get the right bytes; a tag is resolved upstream and
 * recorded; two mirrors that list each other in hosts.toml never bounce a
 * request (the loop guard); ctr pulls through dist serve as a hosts.toml
 * mirror (with ?ns=) and falls back to the registry for what it lacks.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type Containerd, startContainerd } from "./fixtures/containerd.ts";
import { run } from "./fixtures/exec.ts";
import { type Proxy as CountingProxy, startProxy } from "./fixtures/proxy.ts";
import { type ServeProcess, startServe } from "./fixtures/serve.ts";
import { type Testbed, testbed } from "./harness.ts";

let tb: Testbed;
const stops: (() => Promise<unknown>)[] = [];

const sha256 = (b: Buffer | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

async function serve(root: string, args: string[]): Promise<ServeProcess> {
  const s = await startServe({ root, args: ["--access-log", ...args] });
  stops.push(() => s.stop());
  return s;
}

async function proxy(mode: "passthrough" | "slow"): Promise<CountingProxy> {
  const p = await startProxy(tb.plain, mode);
  stops.push(() => p.close());
  return p;
}

/** The blob GETs a proxy forwarded for a digest. */
const blobGets = (p: CountingProxy, digest: string) =>
  p.requests.filter((r) => r.startsWith("GET ") && r.includes(`/blobs/${digest}`));

before(async () => {
  tb = await testbed();
});

after(async () => {
  for (const stop of stops.reverse()) await stop().catch(() => {});
  await tb?.stop();
});

describe("dist serve --upstream", () => {
  test("eight clients at once, one upstream download, the right bytes for each (a Range too)", async () => {
    const up = await proxy("slow");
    const root = tb.newRoot();
    const s = await serve(root, ["--upstream", up.addr, "--plain-http"]);
    const manifest = JSON.parse((await get(`${s.url}/v2/tiny/busybox/manifests/oci`)).body.toString());
    const layer = manifest.layers[0];
    const base = `${s.url}/v2/tiny/busybox/blobs/${layer.digest}`;
    const whole = [...Array(8)].map(() => get(base));
    await sleep(100);
    const ranged = get(base, { range: "bytes=1000-" });
    for (const r of await Promise.all(whole)) {
      assert.equal(r.status, 200);
      assert.equal(sha256(r.body), layer.digest);
    }
    const part = await ranged;
    assert.equal(part.status, 206);
    assert.equal(part.body.length, layer.size - 1000);
    assert.equal(blobGets(up, layer.digest).length, 1, up.requests.join("\n"));
    // stored and recorded like a pull: the next request never reaches the upstream
    const again = await get(base);
    assert.equal(sha256(again.body), layer.digest);
    assert.equal(blobGets(up, layer.digest).length, 1);
    const images = await tb.dist(["images", "ls", "-q"], { root });
    assert.match(images.stdout, new RegExp(`${up.addr.replace(/\./g, "\\.")}/tiny/busybox:oci`));
  });

  test("dist pulls through it: the same ChainID as from the registry", async () => {
    const up = await proxy("passthrough");
    const s = await serve(tb.newRoot(), ["--upstream", up.addr, "--plain-http"]);
    const chain = async (ref: string) => {
      const r = await tb.dist(["pull", "--plain-http", "--snapshotter", "native", "--print-chainid", ref], {
        root: tb.newRoot(),
      });
      assert.equal(r.code, 0, r.stderr);
      return /image chain ID: (\S+)/.exec(r.stdout)?.[1];
    };
    const a = await chain(`${s.addr}/multi/busybox:oci`);
    assert.ok(a);
    assert.equal(a, await chain(`${tb.plain}/multi/busybox:oci`));
  });

  test("two mirrors listing each other: the loop guard sends each request on to the server, once", async () => {
    const up = await proxy("passthrough");
    const dir = tb.tempDir("loop");
    // each mirror's hosts.toml lists the other before the upstream; ports are known only once they listen
    const a = await serve(tb.newRoot(), ["--upstream", up.addr, "--plain-http", "--hosts-dir", join(dir, "a")]);
    const b = await serve(tb.newRoot(), ["--upstream", up.addr, "--plain-http", "--hosts-dir", join(dir, "b")]);
    for (const [name, peer] of [
      ["a", b],
      ["b", a],
    ] as const) {
      mkdirSync(join(dir, name, up.addr), { recursive: true });
      writeFileSync(
        join(dir, name, up.addr, "hosts.toml"),
        `server = "http://${up.addr}"\n[host."${peer.url}"]\n  capabilities = ["pull", "resolve"]\n`,
      );
    }
    const manifest = JSON.parse((await get(`${a.url}/v2/tiny/busybox/manifests/oci`)).body.toString());
    const layer = manifest.layers[0];
    const r = await get(`${a.url}/v2/tiny/busybox/blobs/${layer.digest}`);
    assert.equal(sha256(r.body), layer.digest);
    assert.equal(blobGets(up, layer.digest).length, 1, "one download from the upstream");
    assert.match(b.logs(), new RegExp(`/blobs/${layer.digest}\\?ns=`), "a asked its peer b first");
    assert.doesNotMatch(
      a.logs().split("\n").slice(1).join("\n"),
      new RegExp(`"url":"[^"]*/blobs/${layer.digest}\\?ns=`),
      "b did not ask a back",
    );
  });
});

describe("ctr pulls from dist serve", { skip: process.getuid?.() !== 0 && "containerd needs root" }, () => {
  let containerd: Containerd;

  before(async () => {
    containerd = await startContainerd(tb.tempDir("containerd"));
  });

  after(async () => {
    await containerd?.stop();
  });

  const ctr = async (args: string[]) => {
    const r = await run("ctr", ["--address", containerd.sock, ...args], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, `ctr ${args.join(" ")}: ${r.stderr}`);
    return r.stdout.toString();
  };

  test("ctr images pull from it directly and through hosts.toml as a mirror with ?ns=", async () => {
    const root = tb.newRoot();
    const f = await tb.dist(["fetch", "--plain-http", `${tb.plain}/tiny/busybox:oci`], { root });
    assert.equal(f.code, 0, f.stderr);
    const s = await serve(root, []);
    await ctr(["images", "pull", "--plain-http", `${s.addr}/tiny/busybox:oci`]);
    const direct = await ctr(["images", "ls"]);
    assert.match(direct, new RegExp(tb.images["tiny/busybox:oci"].digest));

    const hosts = tb.tempDir("hosts");
    mkdirSync(join(hosts, tb.plain));
    writeFileSync(
      join(hosts, tb.plain, "hosts.toml"),
      `server = "http://${tb.plain}"\n[host."http://${s.addr}"]\n  capabilities = ["pull", "resolve"]\n`,
    );
    await ctr(["images", "pull", "--hosts-dir", hosts, `${tb.plain}/tiny/busybox:oci`]);
    assert.match(
      s.logs(),
      new RegExp(
        `/v2/tiny/busybox/manifests/oci\\?ns=${encodeURIComponent(tb.plain).replace(/\./g, "\\.")}","status":200`,
      ),
    );
    // what the mirror lacks: a 404 there, and ctr falls back to the registry
    await ctr(["images", "pull", "--hosts-dir", hosts, `${tb.plain}/edge/whiteouts:oci`]);
    assert.match(s.logs(), /\/v2\/edge\/whiteouts\/manifests\/oci\?ns=[^"]*","status":404/);
    assert.match(await ctr(["images", "ls", "-q"]), /edge\/whiteouts:oci/);
  });
});
