/**
 * The registry client (src/remotes/docker) against the real CNCF distribution
 * registry of the test bed: plain HTTP, htpasswd basic auth, TLS with the test CA,
 * Bearer tokens; Range reads; a truncating proxy; push and read back.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import type { Descriptor } from "../../src/descriptor.ts";
import { digestOf } from "../../src/digest.ts";
import { isErrorCode } from "../../src/errors.ts";
import { createResolver, type DockerResolver, type RegistryOptions } from "../../src/remotes/docker/index.ts";
import { type ImageInfo, type Testbed, testbed } from "./harness.ts";

let tb: Testbed;
const open: DockerResolver[] = [];
before(async () => {
  tb = await testbed();
});
after(async () => {
  await Promise.all(open.map((r) => r.close()));
  await tb?.stop();
});

function resolver(opts: RegistryOptions = {}): DockerResolver {
  // no docker config of the machine's user, short backoffs
  const r = createResolver({ dockerConfigPath: "/nonexistent/config.json", backoffBaseMs: 5, ...opts });
  open.push(r);
  return r;
}

const img = (ref: string): ImageInfo => {
  const i = tb.images[ref];
  assert.ok(i, `the test bed has no image ${ref}`);
  return i;
};

async function readAll(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Resolves `addr/ref`, fetches the manifest and every layer, and checks them against the inventory. */
async function pullAndCheck(r: DockerResolver, addr: string, ref: string): Promise<void> {
  const info = img(ref);
  const { name, desc } = await r.resolve(`${addr}/${ref}`);
  assert.equal(name, `${addr}/${ref}`);
  assert.deepEqual(desc, { mediaType: info.mediaType, digest: info.digest, size: info.size });
  const f = await r.fetcher(name);
  const manifest = JSON.parse((await readAll(await f.fetch(desc))).toString()) as {
    config: Descriptor;
    layers: Descriptor[];
  };
  assert.equal(manifest.config.digest, info.config?.digest);
  for (const d of [manifest.config, ...manifest.layers]) {
    const bytes = await readAll(await f.fetch(d));
    assert.equal(bytes.length, d.size);
    assert.equal(digestOf(bytes), d.digest);
  }
}

async function rejectsWith(p: Promise<unknown>, code: string, re: RegExp): Promise<void> {
  await assert.rejects(p, (err: Error) => {
    assert.ok(isErrorCode(err, code as never), `expected ${code}, got ${err.name}: ${err.message}`);
    assert.match(err.message, re);
    assert.ok(!err.message.includes("\n"), "one line");
    assert.ok(!err.message.includes(tb.password), "no password in messages");
    return true;
  });
}

describe("registry client against the real registry", () => {
  it("resolves and fetches over plain HTTP (OCI, Docker, index)", async () => {
    const r = resolver({ plainHttp: true });
    await pullAndCheck(r, tb.plain, "tiny/busybox:oci");
    await pullAndCheck(r, tb.plain, "tiny/busybox:docker");
    const idx = img("multi/busybox:oci");
    const got = await r.resolve(`${tb.plain}/multi/busybox:oci`);
    assert.equal(got.desc.digest, idx.digest);
    assert.equal(got.desc.mediaType, "application/vnd.oci.image.index.v1+json");
    // by digest, tag and digest together
    const byDigest = await r.resolve(`${tb.plain}/multi/busybox@${idx.digest}`);
    assert.equal(byDigest.name, `${tb.plain}/multi/busybox@${idx.digest}`);
    assert.equal(byDigest.desc.size, idx.size);
    const both = await r.resolve(`${tb.plain}/multi/busybox:oci@${idx.digest}`);
    assert.equal(both.desc.digest, idx.digest);
  });

  it("fetchByDigest: a manifest and a layer without a descriptor", async () => {
    const info = img("tiny/busybox:docker");
    const f = await resolver({ plainHttp: true }).fetcher(`${tb.plain}/tiny/busybox:docker`);
    const m = await f.fetchByDigest(info.digest as `sha256:${string}`);
    assert.deepEqual(m.desc, { mediaType: info.mediaType, digest: info.digest, size: info.size });
    assert.equal(digestOf(await readAll(m.stream)), info.digest);
    const layer = info.layers?.[0] as Descriptor;
    const l = await f.fetchByDigest(layer.digest, { mediaType: layer.mediaType });
    assert.deepEqual(l.desc, { mediaType: layer.mediaType, digest: layer.digest, size: layer.size });
    assert.equal(digestOf(await readAll(l.stream)), layer.digest);
    await rejectsWith(
      f.fetchByDigest(digestOf("nothing")),
      "NotFound",
      /looking up sha256:[0-9a-f]{64}: HTTP 404 not found$/,
    );
  });

  it("a missing tag or repository is NotFound naming the reference", async () => {
    const r = resolver({ plainHttp: true });
    await rejectsWith(
      r.resolve(`${tb.plain}/tiny/busybox:nope`),
      "NotFound",
      new RegExp(`^${tb.plain}/tiny/busybox:nope: resolving: manifest unknown: manifest unknown`),
    );
    await rejectsWith(r.resolve(`${tb.plain}/no/such/repo:v1`), "NotFound", /no\/such\/repo:v1: resolving: .*unknown/);
  });

  it("basic auth: right password, wrong password, no credentials", async () => {
    await pullAndCheck(resolver({ plainHttp: true, user: `${tb.user}:${tb.password}` }), tb.basic, "tiny/busybox:oci");
    await rejectsWith(
      resolver({ plainHttp: true, user: `${tb.user}:not-the-password` }).resolve(`${tb.basic}/tiny/busybox:oci`),
      "Unauthenticated",
      /tiny\/busybox:oci: resolving: 127.0.0.1:\d+ refused the credentials \(wrong username or password/,
    );
    await rejectsWith(
      resolver({ plainHttp: true }).resolve(`${tb.basic}/tiny/busybox:oci`),
      "Unauthenticated",
      /resolving: authentication required by 127.0.0.1:\d+/,
    );
  });

  it("token auth: anonymous pull, pull with a user, wrong password", async () => {
    const before = tb.tokenRequests.length;
    await pullAndCheck(resolver({ plainHttp: true }), tb.token, "tiny/busybox:oci");
    await pullAndCheck(
      resolver({ plainHttp: true, user: `${tb.user}:${tb.password}` }),
      tb.token,
      "tiny/busybox:docker",
    );
    // one token per resolver and scope, not one per request
    assert.ok(tb.tokenRequests.length - before <= 3, `token requests: ${tb.tokenRequests.length - before}`);
    await rejectsWith(
      resolver({ plainHttp: true, user: `${tb.user}:wrong` }).resolve(`${tb.token}/tiny/busybox:oci`),
      "Unauthenticated",
      /token server of 127.0.0.1:\d+ refused the credentials/,
    );
  });

  it("TLS: with the test CA, with skip-verify, and failing without either", async () => {
    await pullAndCheck(resolver({ tlsCaCert: [tb.caFile] }), tb.tls, "tiny/busybox:oci");
    await pullAndCheck(resolver({ skipVerify: true }), tb.tls, "tiny/busybox:oci");
    await rejectsWith(
      resolver().resolve(`${tb.tls}/tiny/busybox:oci`),
      "InvalidArgument",
      /cannot reach 127.0.0.1:\d+: TLS certificate not trusted .*--tlscacert/,
    );
    await rejectsWith(
      resolver({ retries: 0 }).resolve(`${tb.plain}/tiny/busybox:oci`),
      "Unavailable",
      /TLS handshake failed .*--plain-http/,
    );
  });

  it("connection refused names the host", async () => {
    const dead = await tb.deadAddr();
    await rejectsWith(
      resolver({ plainHttp: true, retries: 1 }).resolve(`${dead}/tiny/busybox:oci`),
      "Unavailable",
      new RegExp(`^${dead}/tiny/busybox:oci: cannot reach ${dead}: connection refused$`),
    );
  });

  it("Range: fetches a layer from an offset; a truncating proxy gives a clear error", async () => {
    const info = img("tiny/busybox:oci");
    const layer = info.layers?.[0] as Descriptor;
    const r = resolver({ plainHttp: true });
    const f = await r.fetcher(`${tb.plain}/tiny/busybox:oci`);
    const whole = await readAll(await f.fetch(layer));
    const tail = await readAll(await f.fetch(layer, { offset: 4242 }));
    assert.deepEqual(tail, whole.subarray(4242));

    const proxy = await tb.proxy(tb.plain, "truncate", { only: layer.digest });
    const pf = await resolver({ plainHttp: true, retries: 1 }).fetcher(`${proxy}/tiny/busybox:oci`);
    await rejectsWith(
      readAll(await pf.fetch(layer)),
      "Unavailable",
      new RegExp(
        `^${proxy}/tiny/busybox:oci: fetching blob ${layer.digest}: connection lost \\(.*\\) at byte \\d+ of ${layer.size} after 1 retries from ${proxy}$`,
      ),
    );
    const flip = await tb.proxy(tb.plain, "flip", { only: layer.digest });
    const ff = await resolver({ plainHttp: true }).fetcher(`${flip}/tiny/busybox:oci`);
    await rejectsWith(readAll(await ff.fetch(layer)), "DataLoss", /digest mismatch/);
  });

  it("an oversized or malformed manifest is refused", async () => {
    const big = await tb.proxy(tb.plain, "oversize");
    await rejectsWith(
      resolver({ plainHttp: true }).resolve(`${big}/tiny/busybox:oci`),
      "InvalidArgument",
      /resolving: manifest of \d+ bytes exceeds the 4194304-byte limit/,
    );
  });

  it("pushes a blob and a manifest to scratch/ and reads them back", async () => {
    const repo = `scratch/client-${process.pid}`;
    const ref = `${tb.plain}/${repo}:pushed`;
    const r = resolver({ plainHttp: true });
    const pusher = await r.pusher(ref);
    const layerBytes = randomBytes(3 << 20);
    const config = Buffer.from(
      JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }),
    );
    const layer: Descriptor = {
      mediaType: "application/vnd.oci.image.layer.v1.tar",
      digest: digestOf(layerBytes),
      size: layerBytes.length,
    };
    const cfg: Descriptor = {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: digestOf(config),
      size: config.length,
    };
    for (const [d, bytes] of [
      [layer, layerBytes],
      [cfg, config],
    ] as const) {
      const w = await pusher.push(d);
      for (let i = 0; i < bytes.length; i += 1 << 20) await w.write(bytes.subarray(i, i + (1 << 20)));
      assert.equal(w.status().offset, bytes.length);
      await w.commit(d.size, d.digest);
    }
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: cfg,
        layers: [layer],
      }),
    );
    const mdesc: Descriptor = {
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: digestOf(manifest),
      size: manifest.length,
    };
    const mw = await pusher.push(mdesc);
    await mw.write(manifest);
    await mw.commit();

    // read back
    const got = await r.resolve(ref);
    assert.deepEqual(got.desc, mdesc);
    const f = await r.fetcher(ref);
    assert.deepEqual(await readAll(await f.fetch(layer)), layerBytes);
    assert.deepEqual(await readAll(await f.fetch(mdesc)), manifest);

    // again: the registry has it
    await rejectsWith(pusher.push(layer), "AlreadyExists", /already exists/);
    // into another repository: mounted, not uploaded
    const other = await r.pusher(`${tb.plain}/scratch/client-${process.pid}-b:x`);
    await rejectsWith(other.push(layer, { mountFrom: repo }), "AlreadyExists", /mounted from scratch\/client-/);
    // a wrong digest is refused before anything is committed
    const bad = await other.push({ ...cfg, digest: digestOf("not this") });
    await bad.write(config);
    await rejectsWith(bad.commit(), "FailedPrecondition", /unexpected commit digest/);
  });

  it("token auth: anonymous push is refused, the user may push", async () => {
    const blob = randomBytes(1000);
    const d: Descriptor = { mediaType: "application/octet-stream", digest: digestOf(blob), size: blob.length };
    const ref = `${tb.token}/scratch/client-token-${process.pid}:x`;
    await rejectsWith(
      (async () => (await resolver({ plainHttp: true }).pusher(ref)).push(d))(),
      "Unauthenticated",
      /authentication required by/,
    );
    const w = await (await resolver({ plainHttp: true, user: `${tb.user}:${tb.password}` }).pusher(ref)).push(d);
    await w.write(blob);
    await w.commit();
    const f = await resolver({ plainHttp: true }).fetcher(ref);
    assert.deepEqual(await readAll(await f.fetch(d)), blob);
  });
});
