// The registry client against a scripted HTTP server: auth flows, retries,
// redirects, Range resume, stalls, mirrors, digests and error messages.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import type { Descriptor } from "../../src/descriptor.ts";
import { digestOf } from "../../src/digest.ts";
import { isErrorCode } from "../../src/errors.ts";
import { createResolver, type RegistryOptions } from "../../src/remotes/docker/index.ts";
import { type Fake, fakeServer, json, registryError } from "./fake-registry.ts";

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const LAYER = "application/vnd.oci.image.layer.v1.tar+gzip";
const blob = randomBytes(300_000);
const blobDesc: Descriptor = { mediaType: LAYER, digest: digestOf(blob), size: blob.length };
const manifest = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: digestOf("{}"), size: 2 },
    layers: [blobDesc],
  }),
);
const manifestDigest = digestOf(manifest);
const SECRET = "s3cr3t-passw0rd";

let reg: Fake;
let other: Fake;
let tmp: string;
before(async () => {
  reg = await fakeServer();
  other = await fakeServer();
  tmp = mkdtempSync(join(tmpdir(), "dist-client-"));
});
after(async () => {
  await reg.close();
  await other.close();
  rmSync(tmp, { recursive: true, force: true });
});

function resolver(extra: RegistryOptions = {}) {
  // an empty docker config, so the developer's own credentials never leak in
  return createResolver({
    plainHttp: true,
    retries: 2,
    backoffBaseMs: 1,
    dockerConfigPath: join(tmp, "none.json"),
    ...extra,
  });
}

async function readAll(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Serves the manifest (HEAD and GET) and the blob, honouring Range. */
function serveImage(req: IncomingMessage, res: ServerResponse): boolean {
  const url = new URL(req.url ?? "/", "http://x");
  if (url.pathname === "/v2/app/manifests/v1" || url.pathname === `/v2/app/manifests/${manifestDigest}`) {
    res.writeHead(200, {
      "content-type": OCI_MANIFEST,
      "content-length": String(manifest.length),
      "docker-content-digest": manifestDigest,
    });
    res.end(req.method === "HEAD" ? undefined : manifest);
    return true;
  }
  if (url.pathname === `/v2/app/blobs/${blobDesc.digest}`) {
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const from = m ? Number(m[1]) : 0;
    res.writeHead(m ? 206 : 200, {
      "content-length": String(blob.length - from),
      ...(m ? { "content-range": `bytes ${from}-${blob.length - 1}/${blob.length}` } : {}),
    });
    res.end(blob.subarray(from));
    return true;
  }
  return false;
}

/**
 * "127.0.0.1:PORT" where nothing listens: a low, privileged port no test server
 * ever gets (they bind port 0), checked to refuse.
 */
async function refusedAddr(): Promise<string> {
  for (const port of [1, 2, 3, 4, 5, 6, 8, 10]) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = connect({ host: "127.0.0.1", port });
      sock.once("connect", () => {
        sock.destroy();
        resolve(false);
      });
      sock.once("error", (e: NodeJS.ErrnoException) => resolve(e.code === "ECONNREFUSED"));
    });
    if (ok) return `127.0.0.1:${port}`;
  }
  throw new Error("no refused port found on 127.0.0.1");
}

function authHeader(req: IncomingMessage): string {
  return req.headers.authorization ?? "";
}

describe("resolve", () => {
  it("HEADs with the Accept list and returns the normalised name", async () => {
    reg.handle((req, res) => {
      if (!serveImage(req, res)) registryError(res, 404, "NAME_UNKNOWN", "repository name not known");
    });
    const r = resolver();
    try {
      const got = await r.resolve(`${reg.addr}/app:v1`);
      assert.deepEqual(got, {
        name: `${reg.addr}/app:v1`,
        desc: { mediaType: OCI_MANIFEST, digest: manifestDigest, size: manifest.length },
      });
      assert.equal(reg.requests.length, 1);
      assert.equal(reg.requests[0].method, "HEAD");
      assert.match(
        String(reg.requests[0].headers.accept),
        /^application\/vnd.oci.image.index.v1\+json, .*manifest.v2\+json$/,
      );
    } finally {
      await r.close();
    }
  });

  it("falls back to GET when HEAD is refused, and checks the body's digest", async () => {
    let lie = false;
    reg.handle((req, res) => {
      if (req.method === "HEAD") {
        res.writeHead(405);
        res.end();
        return;
      }
      res.writeHead(200, {
        "content-type": OCI_MANIFEST,
        "docker-content-digest": lie ? digestOf("other") : manifestDigest,
      });
      res.end(manifest);
    });
    const r = resolver();
    try {
      const got = await r.resolve(`${reg.addr}/app:v1`);
      assert.equal(got.desc.digest, manifestDigest);
      assert.deepEqual(
        reg.requests.map((q) => q.method),
        ["HEAD", "GET"],
      );
      // the fetch of the manifest is served from what the GET read
      const f = await r.fetcher(got.name);
      assert.deepEqual(await readAll(await f.fetch(got.desc)), manifest);
      assert.equal(reg.requests.length, 2);
      lie = true;
      await assert.rejects(r.resolve(`${reg.addr}/app:v1`), (err: Error) => {
        assert.ok(isErrorCode(err, "DataLoss"), err.message);
        assert.match(err.message, /manifest digest mismatch/);
        return true;
      });
      // a digest reference must match the body too
      lie = false;
      await assert.rejects(r.resolve(`${reg.addr}/app@${digestOf("x")}`), /manifest digest mismatch/);
    } finally {
      await r.close();
    }
  });

  it("refuses schema 1 manifests", async () => {
    reg.handle((_req, res) => {
      res.writeHead(200, {
        "content-type": "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "docker-content-digest": manifestDigest,
        "content-length": "10",
      });
      res.end();
    });
    const r = resolver();
    try {
      await assert.rejects(r.resolve(`${reg.addr}/old:v1`), (err: Error) => {
        assert.ok(isErrorCode(err, "InvalidArgument"));
        assert.match(err.message, /^127.0.0.1:\d+\/old:v1: resolving: schema 1 manifests are not supported/);
        return true;
      });
    } finally {
      await r.close();
    }
  });

  it("refuses oversized manifests before reading them", async () => {
    reg.handle((req, res) => {
      if (req.method === "HEAD") {
        res.writeHead(200, {
          "content-type": OCI_MANIFEST,
          "docker-content-digest": manifestDigest,
          "content-length": String(5 << 20),
        });
        res.end();
        return;
      }
      res.writeHead(500);
      res.end();
    });
    const r = resolver();
    try {
      await assert.rejects(r.resolve(`${reg.addr}/big:v1`), /exceeds the 4194304-byte limit/);
    } finally {
      await r.close();
    }
  });

  it("decodes registry errors: a missing tag names the reference", async () => {
    reg.handle((_req, res) => registryError(res, 404, "MANIFEST_UNKNOWN", "manifest unknown"));
    const r = resolver();
    try {
      await assert.rejects(r.resolve(`${reg.addr}/app:nope`), (err: Error) => {
        assert.ok(isErrorCode(err, "NotFound"));
        assert.equal(err.message, `${reg.addr}/app:nope: resolving: manifest unknown: manifest unknown (HTTP 404)`);
        return true;
      });
    } finally {
      await r.close();
    }
  });
});

describe("retries", () => {
  it("honours 429 Retry-After and retries 5xx, then gives up with UnavailableError", async () => {
    let n = 0;
    let down = false;
    reg.handle((req, res) => {
      n++;
      if (down) {
        res.writeHead(503);
        res.end();
        return;
      }
      if (n === 1) {
        registryError(res, 429, "TOOMANYREQUESTS", "slow down", { "retry-after": "0" });
        return;
      }
      if (n === 2) {
        res.writeHead(503);
        res.end();
        return;
      }
      serveImage(req, res);
    });
    const warnings: string[] = [];
    const r = resolver({ onWarning: (m) => warnings.push(m) });
    try {
      assert.equal((await r.resolve(`${reg.addr}/app:v1`)).desc.digest, manifestDigest);
      assert.equal(n, 3);
      assert.equal(warnings.filter((w) => w.includes("retrying")).length, 2);
      n = 0;
      down = true;
      await assert.rejects(r.resolve(`${reg.addr}/app:v1`), (err: Error) => {
        assert.ok(isErrorCode(err, "Unavailable"), err.message);
        assert.match(err.message, /resolving: .*HTTP 503/);
        return true;
      });
      // 1 + 2 retries of the HEAD, and no GET after them
      assert.equal(n, 3);
    } finally {
      await r.close();
    }
  });

  it("connection refused is retried, then reported naming the host", async () => {
    const addr = await refusedAddr();
    const r = resolver({ retries: 1 });
    try {
      await assert.rejects(r.resolve(`${addr}/app:v1`), (err: Error) => {
        assert.ok(isErrorCode(err, "Unavailable"));
        assert.equal(err.message, `${addr}/app:v1: cannot reach ${addr}: connection refused`);
        return true;
      });
    } finally {
      await r.close();
    }
  });

  it("connection refused on the only host is retried once, whatever the retry budget", async () => {
    const addr = await refusedAddr();
    const warnings: string[] = [];
    // a budget that would take seconds of backoff if refused connections used it
    const r = resolver({ retries: 6, backoffBaseMs: 1000, onWarning: (m) => warnings.push(m) });
    try {
      await assert.rejects(r.resolve(`${addr}/app:v1`), /cannot reach .*: connection refused/);
      const retries = warnings.filter((w) => w.includes("retrying"));
      assert.equal(retries.length, 1, warnings.join("\n"));
      assert.match(retries[0], /retrying in (\d|[1-9]\d|100) ms$/);
    } finally {
      await r.close();
    }
  });
});

/** A hosts directory where `registry` has a mirror nobody listens on, then the test registry as its server. */
async function deadMirror(dirName: string, registry: string): Promise<{ dead: string; hostsDir: string }> {
  const dead = await refusedAddr();
  const hostsDir = join(tmp, dirName);
  mkdirSync(join(hostsDir, registry), { recursive: true });
  writeFileSync(
    join(hostsDir, registry, "hosts.toml"),
    `server = "http://${reg.addr}"\n[host."http://${dead}"]\ncapabilities = ["pull", "resolve"]\n`,
  );
  return { dead, hostsDir };
}

describe("dead hosts", () => {
  it("a refused mirror is tried once, without retries, and never again by the same resolver", async () => {
    const { dead, hostsDir } = await deadMirror("hosts-dead", "dead.registry");
    reg.handle((req, res) => {
      if (!serveImage(req, res)) registryError(res, 404, "NAME_UNKNOWN", "x");
    });
    const warnings: string[] = [];
    const r = resolver({ hostsDir, plainHttp: false, retries: 4, onWarning: (m) => warnings.push(m) });
    try {
      const got = await r.resolve("dead.registry/app:v1");
      assert.equal(got.desc.digest, manifestDigest);
      assert.deepEqual(
        warnings.filter((w) => w.includes("retrying")),
        [],
        "the retry budget was spent on a refused mirror",
      );
      const skipped = warnings.filter((w) => w.includes(dead));
      assert.equal(skipped.length, 1, warnings.join("\n"));
      assert.match(skipped[0], /connection refused; trying the next host \(not asked again\)/);
      // later requests (the manifest GET, the blob) go straight to the server
      warnings.length = 0;
      const f = await r.fetcher("dead.registry/app:v1");
      assert.deepEqual(await readAll(await f.fetch(blobDesc)), blob);
      const m = await f.fetch({ mediaType: OCI_MANIFEST, digest: manifestDigest, size: manifest.length });
      assert.deepEqual(await readAll(m), manifest);
      assert.deepEqual(warnings, []);
      assert.ok(reg.requests.some((q) => q.url === `/v2/app/blobs/${blobDesc.digest}`));
    } finally {
      await r.close();
    }
    // a new resolver asks the mirror again (the memory is the resolver's)
    const warnings2: string[] = [];
    const r2 = resolver({ hostsDir, plainHttp: false, onWarning: (m) => warnings2.push(m) });
    try {
      await r2.resolve("dead.registry/app:v1");
      assert.equal(warnings2.filter((w) => w.includes(dead)).length, 1);
    } finally {
      await r2.close();
    }
  });

  it("when every mirror is dead the server is still asked, and its error stands", async () => {
    const { hostsDir } = await deadMirror("hosts-dead2", "dead2.registry");
    reg.handle((_req, res) => registryError(res, 404, "MANIFEST_UNKNOWN", "manifest unknown"));
    const r = resolver({ hostsDir, plainHttp: false });
    try {
      for (let i = 0; i < 2; i++) {
        await assert.rejects(r.resolve("dead2.registry/app:v1"), (err: Error) => {
          assert.ok(isErrorCode(err, "NotFound"), err.message);
          return true;
        });
      }
      assert.ok(reg.requests.length >= 2);
    } finally {
      await r.close();
    }
  });
});

describe("auth", () => {
  it("Basic: authentication required without credentials, rejected with a wrong password, never echoing it", async () => {
    const good = `Basic ${Buffer.from(`alice:${SECRET}`).toString("base64")}`;
    reg.handle((req, res) => {
      if (authHeader(req) !== good) {
        registryError(res, 401, "UNAUTHORIZED", "authentication required", {
          "www-authenticate": 'Basic realm="fake"',
        });
        return;
      }
      serveImage(req, res);
    });
    for (const [user, re] of [
      [undefined, /authentication required by 127.0.0.1:\d+ \(use --user or docker login\)$/],
      ["alice:wrong-pass", /refused the credentials \(wrong username or password/],
    ] as const) {
      const r = resolver({ user });
      try {
        await assert.rejects(r.resolve(`${reg.addr}/app:v1`), (err: Error) => {
          assert.ok(isErrorCode(err, "Unauthenticated"), err.message);
          assert.match(err.message, re);
          assert.ok(!err.message.includes("wrong-pass") && !err.message.includes(SECRET));
          return true;
        });
      } finally {
        await r.close();
      }
    }
    // the right password, given by the prompt
    reg.requests.length = 0;
    const asked: string[] = [];
    const r = resolver({
      user: "alice",
      promptPassword: async (u) => {
        asked.push(u);
        return SECRET;
      },
    });
    try {
      assert.equal((await r.resolve(`${reg.addr}/app:v1`)).desc.digest, manifestDigest);
      assert.equal((await r.resolve(`${reg.addr}/app:v1`)).desc.digest, manifestDigest);
      assert.deepEqual(asked, ["alice"]);
      // the challenge is remembered: the second resolve is authorised up front
      assert.deepEqual(
        reg.requests.map((q) => [q.method, q.headers.authorization === good]),
        [
          ["HEAD", false],
          ["HEAD", true],
          ["HEAD", true],
        ],
      );
    } finally {
      await r.close();
    }
  });

  it("Bearer: anonymous token by GET, cached per scope; OAuth2 POST with credentials, GET fallback on 404", async () => {
    let postAllowed = true;
    const issued: string[] = [];
    reg.handle((req, res, body) => {
      const url = new URL(req.url ?? "/", "http://x");
      if (url.pathname === "/token") {
        if (req.method === "POST") {
          if (!postAllowed) {
            res.writeHead(404);
            res.end();
            return;
          }
          const form = new URLSearchParams(body.toString());
          if (form.get("password") !== SECRET) {
            json(res, 401, { error: "invalid_grant" });
            return;
          }
          issued.push(`post:${form.get("grant_type")}:${form.get("scope")}:${form.get("service")}`);
          json(res, 200, { access_token: "tok-user", expires_in: 300 });
          return;
        }
        const who = req.headers.authorization ? "basic" : "anon";
        issued.push(`get:${who}:${url.searchParams.getAll("scope").join("|")}:${url.searchParams.get("service")}`);
        json(res, 200, { token: `tok-${who}` });
        return;
      }
      if (!/^Bearer tok-/.test(authHeader(req))) {
        registryError(res, 401, "UNAUTHORIZED", "authentication required", {
          "www-authenticate": `Bearer realm="http://${reg.addr}/token",service="fake-registry",scope="repository:app:pull"`,
        });
        return;
      }
      serveImage(req, res);
    });
    let r = resolver();
    try {
      await r.resolve(`${reg.addr}/app:v1`);
      const f = await r.fetcher(`${reg.addr}/app:v1`);
      assert.deepEqual(await readAll(await f.fetch(blobDesc)), blob);
      assert.deepEqual(issued, ["get:anon:repository:app:pull:fake-registry"]);
    } finally {
      await r.close();
    }
    issued.length = 0;
    r = resolver({ user: `alice:${SECRET}` });
    try {
      await r.resolve(`${reg.addr}/app:v1`);
      assert.deepEqual(issued, ["post:password:repository:app:pull:fake-registry"]);
      postAllowed = false;
      issued.length = 0;
      reg.requests.length = 0;
      await r.close();
      r = resolver({ user: `alice:${SECRET}` });
      await r.resolve(`${reg.addr}/app:v1`);
      assert.deepEqual(issued, ["get:basic:repository:app:pull:fake-registry"]);
      const basic = reg.requests.find((q) => q.url.startsWith("/token") && q.method === "GET");
      assert.equal(basic?.headers.authorization, `Basic ${Buffer.from(`alice:${SECRET}`).toString("base64")}`);
    } finally {
      await r.close();
    }
    postAllowed = true;
    r = resolver({ user: "alice:nope" });
    try {
      await assert.rejects(r.resolve(`${reg.addr}/app:v1`), (err: Error) => {
        assert.ok(isErrorCode(err, "Unauthenticated"));
        assert.match(
          err.message,
          /token server of 127.0.0.1:\d+ refused the credentials \(wrong username or password\)/,
        );
        assert.ok(!err.message.includes("nope"));
        return true;
      });
    } finally {
      await r.close();
    }
  });

  it("Bearer error= refreshes the token once, then fails without printing the token", async () => {
    reg.handle((req, res) => {
      const url = new URL(req.url ?? "/", "http://x");
      if (url.pathname === "/token") {
        json(res, 200, { token: "tok-secret-value", expires_in: 300 });
        return;
      }
      registryError(res, 401, "UNAUTHORIZED", "token revoked", {
        "www-authenticate": `Bearer realm="http://${reg.addr}/token",service="s",scope="repository:app:pull",error="invalid_token"`,
      });
    });
    const r = resolver();
    try {
      await assert.rejects(r.resolve(`${reg.addr}/app:v1`), (err: Error) => {
        assert.ok(isErrorCode(err, "Unauthenticated"));
        assert.match(err.message, /authentication required by 127.0.0.1:\d+/);
        assert.ok(!err.message.includes("tok-secret-value"));
        return true;
      });
    } finally {
      await r.close();
    }
  });

  it("403 is PermissionDenied with the registry's message", async () => {
    reg.handle((_req, res) => registryError(res, 403, "DENIED", "requested access to the resource is denied"));
    const r = resolver();
    try {
      await assert.rejects(r.resolve(`${reg.addr}/app:v1`), (err: Error) => {
        assert.ok(isErrorCode(err, "PermissionDenied"));
        assert.match(err.message, /resolving: denied: requested access to the resource is denied \(HTTP 403\)/);
        return true;
      });
    } finally {
      await r.close();
    }
  });
});

describe("fetch", () => {
  it("follows a redirect to another host without the Authorization header", async () => {
    const good = `Basic ${Buffer.from(`alice:${SECRET}`).toString("base64")}`;
    reg.handle((req, res) => {
      if (authHeader(req) !== good) {
        res.writeHead(401, { "www-authenticate": 'Basic realm="x"' });
        res.end();
        return;
      }
      res.writeHead(307, { location: `http://${other.addr}/cdn/blob?sig=1` });
      res.end();
    });
    other.handle((_req, res) => {
      res.writeHead(200, { "content-length": String(blob.length) });
      res.end(blob);
    });
    const r = resolver({ user: `alice:${SECRET}` });
    try {
      const f = await r.fetcher(`${reg.addr}/app:v1`);
      assert.deepEqual(await readAll(await f.fetch(blobDesc)), blob);
      assert.equal(other.requests.length, 1);
      assert.equal(other.requests[0].url, "/cdn/blob?sig=1");
      assert.equal(other.requests[0].headers.authorization, undefined);
    } finally {
      await r.close();
    }
  });

  it("resumes with Range after the connection drops mid-body", async () => {
    let cut = true;
    reg.handle((req, res) => {
      if (cut && !req.headers.range) {
        cut = false;
        res.writeHead(200, { "content-length": String(blob.length) });
        res.write(blob.subarray(0, 100_000));
        setTimeout(() => res.socket?.destroy(), 20);
        return;
      }
      serveImage(req, res);
    });
    const warnings: string[] = [];
    const r = resolver({ onWarning: (m) => warnings.push(m) });
    try {
      const f = await r.fetcher(`${reg.addr}/app:v1`);
      assert.deepEqual(await readAll(await f.fetch(blobDesc)), blob);
      const ranges = reg.requests.map((q) => q.headers.range);
      assert.equal(ranges[0], undefined);
      assert.match(String(ranges[1]), /^bytes=\d+-$/);
      assert.ok(Number(/\d+/.exec(String(ranges[1]))?.[0]) >= 100_000 - 65_536);
      assert.ok(warnings.some((w) => w.includes("resuming")));
    } finally {
      await r.close();
    }
  });

  it("fetches from an offset (206) and copes with a server that ignores Range", async () => {
    let ignoreRange = false;
    reg.handle((req, res) => {
      if (ignoreRange) delete req.headers.range;
      serveImage(req, res);
    });
    const r = resolver();
    try {
      const f = await r.fetcher(`${reg.addr}/app:v1`);
      assert.deepEqual(await readAll(await f.fetch(blobDesc, { offset: 123_456 })), blob.subarray(123_456));
      ignoreRange = true;
      assert.deepEqual(await readAll(await f.fetch(blobDesc, { offset: 200_001 })), blob.subarray(200_001));
      assert.deepEqual(await readAll(await f.fetch(blobDesc, { offset: blob.length })), Buffer.alloc(0));
      await assert.rejects(f.fetch(blobDesc, { offset: blob.length + 1 }), /offset .* outside/);
    } finally {
      await r.close();
    }
  });

  it("errors the stream when the bytes do not match the digest", async () => {
    const bad = Buffer.from(blob);
    bad[1000] ^= 0xff;
    reg.handle((_req, res) => {
      res.writeHead(200, { "content-length": String(bad.length) });
      res.end(bad);
    });
    const r = resolver();
    try {
      const f = await r.fetcher(`${reg.addr}/app:v1`);
      await assert.rejects(readAll(await f.fetch(blobDesc)), (err: Error) => {
        assert.ok(isErrorCode(err, "DataLoss"));
        assert.match(err.message, /digest mismatch/);
        assert.ok(err.message.includes(blobDesc.digest));
        return true;
      });
      await assert.rejects(f.fetch({ ...blobDesc, size: 5 }), /registry sends 300000 bytes, the descriptor says 5/);
    } finally {
      await r.close();
    }
  });

  it("verify: false leaves the digest to the caller but still caps the size", async () => {
    const bad = Buffer.from(blob);
    bad[1000] ^= 0xff;
    let body = bad;
    reg.handle((_req, res) => {
      // no Content-Length: the size is only known by counting
      res.writeHead(200, { "transfer-encoding": "chunked" });
      res.end(body);
    });
    const r = resolver();
    try {
      const f = await r.fetcher(`${reg.addr}/app:v1`);
      assert.deepEqual(await readAll(await f.fetch(blobDesc, { verify: false })), bad);
      body = Buffer.concat([blob, Buffer.from("more")]);
      for (const verify of [false, true]) {
        await assert.rejects(readAll(await f.fetch(blobDesc, { verify })), (err: Error) => {
          assert.ok(isErrorCode(err, "DataLoss"), err.message);
          assert.match(err.message, /more than the expected 300000 bytes/);
          return true;
        });
      }
    } finally {
      await r.close();
    }
  });

  it("a stall (no bytes for stallTimeoutMs) errors the stream with a clear message", async () => {
    reg.handle((_req, res) => {
      res.writeHead(200, { "content-length": String(blob.length) });
      res.write(blob.subarray(0, 1000));
      // then nothing
    });
    const r = resolver({ stallTimeoutMs: 150, retries: 1 });
    try {
      const f = await r.fetcher(`${reg.addr}/app:v1`);
      await assert.rejects(readAll(await f.fetch(blobDesc)), (err: Error) => {
        assert.ok(isErrorCode(err, "Unavailable"), err.message);
        assert.match(err.message, /no data for 0.15s \(stall timeout\) at byte 1000 of 300000 after 1 retries/);
        return true;
      });
      // the retry asked for the rest
      assert.equal(reg.requests[1].headers.range, "bytes=1000-");
    } finally {
      await r.close();
    }
  });

  it("missing blobs are NotFound", async () => {
    reg.handle((_req, res) => registryError(res, 404, "BLOB_UNKNOWN", "blob unknown to registry"));
    const r = resolver();
    try {
      const f = await r.fetcher(`${reg.addr}/app:v1`);
      await assert.rejects(f.fetch(blobDesc), (err: Error) => {
        assert.ok(isErrorCode(err, "NotFound"));
        assert.match(err.message, /fetching blob sha256:[0-9a-f]{64}: blob unknown: blob unknown to registry/);
        return true;
      });
    } finally {
      await r.close();
    }
  });
});

describe("mirrors", () => {
  it("tries mirrors in order with ?ns=, falling back to the server", async () => {
    const hostsDir = join(tmp, "hosts");
    mkdirSync(join(hostsDir, "example.registry"), { recursive: true });
    writeFileSync(
      join(hostsDir, "example.registry", "hosts.toml"),
      `server = "http://${reg.addr}"\n[host."http://${other.addr}"]\ncapabilities = ["pull", "resolve"]\n`,
    );
    other.handle((_req, res) => registryError(res, 404, "MANIFEST_UNKNOWN", "manifest unknown"));
    reg.handle((req, res) => {
      if (!serveImage(req, res)) registryError(res, 404, "NAME_UNKNOWN", "x");
    });
    // the server is reached under the namespace's paths
    const r = resolver({ hostsDir, plainHttp: false });
    try {
      const got = await r.resolve("example.registry/app:v1");
      assert.equal(got.name, "example.registry/app:v1");
      assert.equal(got.desc.digest, manifestDigest);
      assert.equal(other.requests[0].url, "/v2/app/manifests/v1?ns=example.registry");
      assert.equal(reg.requests[0].url, "/v2/app/manifests/v1");
      // a mirror that is down is skipped too
      await other.close();
      other = await fakeServer();
      const f = await r.fetcher("example.registry/app:v1");
      assert.deepEqual(await readAll(await f.fetch(blobDesc)), blob);
    } finally {
      await r.close();
    }
  });
});

describe("push", () => {
  it("streams a blob through one chunked PATCH, then PUT ?digest=; mounts when asked", async () => {
    const data = Buffer.alloc(4000, 7);
    const d: Descriptor = { mediaType: "application/octet-stream", digest: digestOf(data), size: data.length };
    reg.handle((req, res) => {
      const url = new URL(req.url ?? "/", "http://x");
      if (req.method === "HEAD") {
        res.writeHead(404);
        res.end();
      } else if (req.method === "POST" && url.searchParams.get("mount")) {
        res.writeHead(201, { location: `/v2/app/blobs/${d.digest}` });
        res.end();
      } else if (req.method === "POST") {
        res.writeHead(202, { location: "/v2/app/blobs/uploads/u1?_state=a" });
        res.end();
      } else if (req.method === "PATCH") {
        res.writeHead(202, { location: "/v2/app/blobs/uploads/u1?_state=b" });
        res.end();
      } else if (req.method === "PUT") {
        res.writeHead(201, { "docker-content-digest": d.digest });
        res.end();
      }
    });
    const r = resolver({ stallTimeoutMs: 200 });
    try {
      const p = await r.pusher(`${reg.addr}/app:x`);
      const w = await p.push(d);
      // slower than the stall timeout overall: the upload must not time out
      for (let i = 0; i < 4; i++) {
        await w.write(data.subarray(i * 1000, (i + 1) * 1000));
        await new Promise((x) => setTimeout(x, 100));
      }
      assert.equal(w.status().offset, 4000);
      assert.equal(w.digest(), d.digest);
      await w.commit();
      assert.deepEqual(
        reg.requests.map((q) => `${q.method} ${q.url} ${q.body.length}`),
        [
          `HEAD /v2/app/blobs/${d.digest} 0`,
          "POST /v2/app/blobs/uploads/ 0",
          "PATCH /v2/app/blobs/uploads/u1?_state=a 4000",
          `PUT /v2/app/blobs/uploads/u1?_state=b&digest=${encodeURIComponent(d.digest)} 0`,
        ],
      );
      assert.equal(reg.requests[2].headers["transfer-encoding"], "chunked");
      reg.requests.length = 0;
      await assert.rejects(p.push(d, { mountFrom: "other/repo" }), (err: Error) => {
        assert.ok(isErrorCode(err, "AlreadyExists"));
        assert.match(err.message, /mounted from other\/repo/);
        return true;
      });
      assert.equal(
        reg.requests[1].url,
        `/v2/app/blobs/uploads/?mount=${encodeURIComponent(d.digest)}&from=other%2Frepo`,
      );
    } finally {
      await r.close();
    }
  });

  it("PUTs manifests by tag with their media type, by digest when the reference pins another", async () => {
    reg.handle((req, res) => {
      res.writeHead(req.method === "HEAD" ? 404 : 201);
      res.end();
    });
    const r = resolver();
    try {
      const mdesc: Descriptor = { mediaType: OCI_MANIFEST, digest: manifestDigest, size: manifest.length };
      const w = await (await r.pusher(`${reg.addr}/app:v2`)).push(mdesc);
      await w.write(manifest);
      await w.commit();
      const put = reg.requests.find((q) => q.method === "PUT");
      assert.equal(put?.url, "/v2/app/manifests/v2");
      assert.equal(put?.headers["content-type"], OCI_MANIFEST);
      assert.equal(put?.body, manifest.toString());
      reg.requests.length = 0;
      const w2 = await (await r.pusher(`${reg.addr}/app:v2@${digestOf("root")}`)).push(mdesc);
      await w2.write(manifest);
      await w2.commit();
      assert.deepEqual(
        reg.requests.map((q) => `${q.method} ${q.url}`),
        [`HEAD /v2/app/manifests/${manifestDigest}`, `PUT /v2/app/manifests/${manifestDigest}`],
      );
    } finally {
      await r.close();
    }
  });
});
