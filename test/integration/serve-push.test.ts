/**
 * `dist serve --allow-push` and access: skopeo pushes into the store and pulls
 * back the same digests; the upload protocol by hand (monolithic, chunked,
 * resumed, mounted, cancelled; bad digests, size and idle bounds); basic auth
 * from an htpasswd file and TLS, with dist and skopeo as clients; the
 * loopback rule.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readdirSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { must } from "./fixtures/exec.ts";
import { fetchFrom, layoutBlobs, type ServeProcess, startServe } from "./fixtures/serve.ts";
import { type Testbed, testbed } from "./harness.ts";

let tb: Testbed;
let srv: ServeProcess;
let root: string;

const sha256 = (b: Buffer | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

const http = (path: string, init: RequestInit = {}, base = srv.url) => fetchFrom(base, path, init);

/** A request whose body is written chunk by chunk (or not at all), for the upload bounds. */
function send(method: string, path: string, chunks: Buffer[], headers: Record<string, string>) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const u = new URL(srv.url);
    const req = request({ host: u.hostname, port: u.port, path, method, headers }, (res) => {
      let body = "";
      res.on("data", (b: Buffer) => {
        body += b.toString();
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    for (const c of chunks) req.write(c);
    if (chunks.length > 0) req.end();
    else req.flushHeaders();
  });
}

before(async () => {
  tb = await testbed();
  root = tb.newRoot();
  srv = await startServe({
    root,
    args: ["--allow-push", "--max-upload-size", "8000000", "--upload-timeout", "2s"],
  });
});

after(async () => {
  await srv?.stop();
  await tb?.stop();
});

describe("dist serve --allow-push", () => {
  test("skopeo pushes an image and an index; pulls give back the same blobs; dist images lists them", async () => {
    for (const ref of ["tiny/busybox:oci", "multi/busybox:oci"]) {
      const pushed = `${srv.addr}/pushed/${ref.replace("/busybox", "")}`;
      await tb.skopeoCopy(`docker://${tb.plain}/${ref}`, `docker://${pushed}`, ["--all", "--preserve-digests"]);
      const back = await tb.skopeoPull(pushed, ["--all", "--preserve-digests"]);
      const orig = await tb.skopeoPull(`${tb.plain}/${ref}`, ["--all", "--preserve-digests"]);
      assert.deepEqual(layoutBlobs(back), layoutBlobs(orig), ref);
    }
    const ls = await tb.dist(["images", "ls", "-q"], { root });
    assert.match(ls.stdout, new RegExp(`${srv.addr.replace(/\./g, "\\.")}/pushed/tiny:oci`));
    const again = await http("/v2/pushed/tiny/manifests/oci", { method: "HEAD" });
    assert.equal(again.headers.get("docker-content-digest"), tb.images["tiny/busybox:oci"].digest);
  });

  test("chunked upload with a resume check, then a monolithic one and a cross-repository mount", async () => {
    const data = Buffer.from("chunk one|chunk two|the end\n");
    const digest = sha256(data);
    const start = await http("/v2/chunks/a/blobs/uploads/", { method: "POST" });
    assert.equal(start.status, 202);
    const loc = start.headers.get("location") as string;
    assert.match(loc, /^\/v2\/chunks\/a\/blobs\/uploads\/[0-9a-f-]{36}$/);
    const p1 = await http(loc, { method: "PATCH", body: data.subarray(0, 10), headers: { "content-range": "0-9" } });
    assert.equal(p1.status, 202);
    assert.equal(p1.headers.get("range"), "0-9");
    const wrong = await http(loc, { method: "PATCH", body: data.subarray(10), headers: { "content-range": "5-30" } });
    assert.equal(wrong.status, 416);
    assert.equal(wrong.headers.get("range"), "0-9");
    const status = await http(loc);
    assert.equal(status.status, 204);
    assert.equal(status.headers.get("range"), "0-9");
    await http(loc, { method: "PATCH", body: data.subarray(10, 20) });
    const bad = await http(`${loc}?digest=${sha256("something else")}`, { method: "PUT", body: data.subarray(20) });
    assert.equal(bad.status, 400);
    assert.equal(bad.json().errors[0].code, "DIGEST_INVALID");
    assert.equal((await http(`/v2/chunks/a/blobs/${sha256("something else")}`)).status, 404);
    // the failed upload is gone: start again, in one request
    const mono = await http(`/v2/chunks/a/blobs/uploads/?digest=${digest}`, { method: "POST", body: data });
    assert.equal(mono.status, 201);
    assert.equal(mono.headers.get("docker-content-digest"), digest);
    const get = await http(`/v2/chunks/a/blobs/${digest}`);
    assert.deepEqual(get.body, data);
    const mount = await http(`/v2/chunks/b/blobs/uploads/?mount=${digest}&from=chunks/a`, { method: "POST" });
    assert.equal(mount.status, 201);
    assert.equal(mount.headers.get("location"), `/v2/chunks/b/blobs/${digest}`);
    const unknown = await http(`/v2/chunks/b/blobs/uploads/?mount=${sha256("nope")}&from=chunks/a`, { method: "POST" });
    assert.equal(unknown.status, 202, "a blob it cannot mount is uploaded as usual");
    assert.equal((await http(unknown.headers.get("location") as string, { method: "DELETE" })).status, 204);
  });

  test("a manifest naming blobs the store lacks, or not JSON, is refused", async () => {
    const m = {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256("no config"), size: 9 },
      layers: [],
    };
    const put = await http("/v2/bad/m/manifests/t", {
      method: "PUT",
      body: JSON.stringify(m),
      headers: { "content-type": m.mediaType },
    });
    assert.equal(put.status, 400);
    assert.equal(put.json().errors[0].code, "MANIFEST_BLOB_UNKNOWN");
    const junk = await http("/v2/bad/m/manifests/t", {
      method: "PUT",
      body: "{not json",
      headers: { "content-type": m.mediaType },
    });
    assert.equal(junk.status, 400);
    assert.equal(junk.json().errors[0].code, "MANIFEST_INVALID");
    assert.equal((await http("/v2/bad/m/manifests/t")).status, 404);
  });

  test("size and idle bounds: an oversized upload is refused, an idle one aborted, the ingest removed", async () => {
    // declared: refused before a byte is read
    const declared = await send("POST", `/v2/big/x/blobs/uploads/?digest=${sha256("x")}`, [], {
      "content-length": "8000001",
    });
    assert.equal(declared.status, 413);
    assert.equal(JSON.parse(declared.body).errors[0].code, "SIZE_INVALID");
    // undeclared length (chunked): counted as it arrives
    const start = await http("/v2/big/x/blobs/uploads/", { method: "POST" });
    const loc = start.headers.get("location") as string;
    const chunks = [...Array(8)].map(() => Buffer.alloc(1_000_000));
    const chunked = await send("PATCH", loc, [...chunks, Buffer.alloc(1)], { "transfer-encoding": "chunked" });
    assert.equal(chunked.status, 413);
    // idle: a started upload left alone for longer than --upload-timeout
    const idle = await http("/v2/big/x/blobs/uploads/", { method: "POST" });
    const idleLoc = idle.headers.get("location") as string;
    await http(idleLoc, { method: "PATCH", body: "some bytes" });
    await sleep(2500);
    assert.equal((await http(idleLoc)).status, 404);
    const active = await tb.dist(["active"], { root });
    assert.doesNotMatch(active.stdout, /upload-/, "no ingest left behind");
  });
});

describe("dist serve: a client that stops reading", () => {
  test("holds its own connection until the idle timeout; everyone else is served meanwhile", async () => {
    // more than the kernel buffers of a loopback connection hold (tcp_rmem goes up to 32 MiB)
    const data = randomBytes(96 << 20);
    const digest = sha256(data);
    const s = await startServe({ root: tb.newRoot(), args: ["--allow-push", "--idle-timeout", "1s"] });
    after(() => s.stop());
    const put = await http(`/v2/slow/reader/blobs/uploads/?digest=${digest}`, { method: "POST", body: data }, s.url);
    assert.equal(put.status, 201);
    const u = new URL(s.url);
    const sock = connect(Number(u.port), u.hostname);
    sock.write(`GET /v2/slow/reader/blobs/${digest} HTTP/1.1\r\nHost: ${u.host}\r\n\r\n`);
    sock.pause();
    const closed = new Promise<void>((resolve) => sock.once("close", () => resolve()));
    sock.on("error", () => {});
    await sleep(300);
    for (let i = 0; i < 8; i++) {
      const r = await http(`/v2/slow/reader/blobs/${digest}`, { headers: { range: "bytes=0-1048575" } }, s.url);
      assert.equal(r.status, 206);
      assert.deepEqual(r.body, data.subarray(0, 1 << 20));
    }
    // past the idle timeout: the server gave up on it, so reading now ends early
    await sleep(2000);
    let received = 0;
    sock.on("data", (b: Buffer) => {
      received += b.length;
    });
    sock.resume();
    await closed;
    assert.ok(received < data.length, `the stalled response was cut (${received} of ${data.length} bytes)`);
  });
});

describe("dist serve: access", () => {
  test("off loopback it refuses to start without auth and TLS, unless --insecure-listen", async () => {
    const r = await tb.dist(["serve", "--listen", "0.0.0.0:0"], { root: tb.newRoot() });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /refusing to serve the store without authentication on 0\.0\.0\.0/);
    const htpasswd = join(tb.tempDir("auth"), "htpasswd");
    writeFileSync(htpasswd, await must("htpasswd", ["-nbB", "alice", "secret"]));
    const noTls = await tb.dist(["serve", "--listen", "0.0.0.0:0", "--user-file", htpasswd], { root: tb.newRoot() });
    assert.match(noTls.stderr, /refusing to take passwords in clear text/);
  });

  test("basic auth (bcrypt htpasswd) over TLS: dist and skopeo with credentials pull, others get 401", async () => {
    const dir = tb.tempDir("tls");
    const htpasswd = join(dir, "htpasswd");
    writeFileSync(htpasswd, await must("htpasswd", ["-nbB", "alice", "secret"]));
    const [crt, key] = [join(dir, "srv.crt"), join(dir, "srv.key")];
    await must("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      key,
      "-out",
      crt,
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ]);
    const src = tb.newRoot();
    const f = await tb.dist(["fetch", "--plain-http", `${tb.plain}/tiny/busybox:oci`], { root: src });
    assert.equal(f.code, 0, f.stderr);
    const s = await startServe({ root: src, args: ["--user-file", htpasswd, "--tls-cert", crt, "--tls-key", key] });
    try {
      assert.match(s.url, /^https:/);
      const ref = `${s.addr}/tiny/busybox:oci`;
      const anon = await tb.dist(["fetch", "--tlscacert", crt, ref], { root: tb.newRoot() });
      assert.notEqual(anon.code, 0);
      assert.match(anon.stderr, /401|unauthorized|authentication/i);
      const wrong = await tb.dist(["fetch", "--tlscacert", crt, "-u", "alice:wrong", ref], { root: tb.newRoot() });
      assert.notEqual(wrong.code, 0);
      const ok = await tb.dist(["fetch", "--tlscacert", crt, "-u", "alice:secret", ref], { root: tb.newRoot() });
      assert.equal(ok.code, 0, ok.stderr);
      const certDir = tb.tempDir("certs");
      writeFileSync(join(certDir, "ca.crt"), await must("cat", [crt]));
      const out = tb.tempDir("skopeo");
      await must("skopeo", [
        "copy",
        "-q",
        "--src-cert-dir",
        certDir,
        "--src-creds",
        "alice:secret",
        `docker://${ref}`,
        `oci:${out}:t`,
      ]);
      assert.ok(readdirSync(join(out, "blobs", "sha256")).length >= 3);
    } finally {
      await s.stop();
    }
  });
});
