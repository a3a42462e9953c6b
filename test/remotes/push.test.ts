// The pusher's transfer path against an in-process registry that speaks the upload
// protocol edges distribution 2.8 lacks: a session's Range after an interrupted PATCH,
// Content-Range checks (416), the referrers API. (The real registry covers the rest.)
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, beforeEach, describe, it } from "node:test";
import type { Descriptor } from "../../src/descriptor.ts";
import { type Digest, digestOf } from "../../src/digest.ts";
import { isErrorCode } from "../../src/errors.ts";
import { createResolver, type DockerResolver } from "../../src/remotes/docker/index.ts";
import { parseUploadRange } from "../../src/remotes/docker/upload.ts";

const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

interface Session {
  data: Buffer[];
  size: number;
}

/** A registry keeping blobs, manifests and upload sessions in memory; every request is logged. */
class UploadRegistry {
  blobs = new Map<string, Buffer>();
  manifests = new Map<string, { type: string; body: Buffer }>();
  sessions = new Map<string, Session>();
  log: string[] = [];
  /** Cut the connection of the next PATCH once the session holds this many bytes. */
  cutAt?: number;
  /** Forget the session on the next status request (as distribution 2.8 does after a cut). */
  dropOnStatus = false;
  referrersApi = true;
  /** Answer 401 to mounts (no pull access to the source). */
  refuseMounts = false;
  /** Answer uploads or manifest PUTs with this status and registry error. */
  deny?: { on: "POST" | "PUT"; status: number; code: string; message: string };
  #server: Server;
  #next = 0;
  addr = "";

  constructor() {
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err) => {
        res.statusCode = 500;
        res.end(String(err));
      });
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((r) => this.#server.listen(0, "127.0.0.1", r));
    this.addr = `127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((r) => this.#server.close(() => r()));
  }

  reset(): void {
    this.blobs.clear();
    this.manifests.clear();
    this.sessions.clear();
    this.log = [];
    this.cutAt = undefined;
    this.dropOnStatus = false;
    this.referrersApi = true;
    this.refuseMounts = false;
    this.deny = undefined;
    this.#next = 0;
  }

  #held(s: Session, res: ServerResponse, id: string): void {
    res.setHeader("location", `/v2/app/blobs/uploads/${id}`);
    res.setHeader("range", `0-${Math.max(0, s.size - 1)}`);
  }

  async #body(req: IncomingMessage): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const c of req) parts.push(c as Buffer);
    return Buffer.concat(parts);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://x");
    const p = url.pathname;
    this.log.push(
      `${req.method} ${p}${url.search}${req.headers["content-range"] ? ` [${req.headers["content-range"]}]` : ""}`,
    );
    if (this.deny && req.method === this.deny.on) {
      req.resume();
      const { status, code, message } = this.deny;
      res
        .writeHead(status, { "content-type": "application/json" })
        .end(JSON.stringify({ errors: [{ code, message }] }));
      return;
    }
    let m = /^\/v2\/app\/blobs\/(sha256:[0-9a-f]{64})$/.exec(p);
    if (m && req.method === "HEAD") {
      res.writeHead(this.blobs.has(m[1]) ? 200 : 404).end();
      return;
    }
    if (p === "/v2/app/blobs/uploads/" && req.method === "POST") {
      if (url.searchParams.get("mount")) {
        if (this.refuseMounts) {
          res.writeHead(401, { "www-authenticate": 'Basic realm="x"' }).end();
          return;
        }
        const d = url.searchParams.get("mount") as string;
        if (this.blobs.has(d) || url.searchParams.get("from") === "has/it") {
          this.blobs.set(d, this.blobs.get(d) ?? Buffer.alloc(0));
          res.writeHead(201, { location: `/v2/app/blobs/${d}` }).end();
          return;
        }
      }
      const id = `u${++this.#next}`;
      const s = { data: [], size: 0 };
      this.sessions.set(id, s);
      this.#held(s, res, id);
      res.writeHead(202).end();
      return;
    }
    m = /^\/v2\/app\/blobs\/uploads\/(u\d+)$/.exec(p);
    if (m) {
      const s = this.sessions.get(m[1]);
      if (!s) {
        res.writeHead(404, { "content-type": "application/json" }).end('{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN"}]}');
        return;
      }
      if (req.method === "GET") {
        if (this.dropOnStatus) {
          this.sessions.delete(m[1]);
          res.writeHead(404).end();
          return;
        }
        this.#held(s, res, m[1]);
        res.writeHead(204).end();
        return;
      }
      if (req.method === "PATCH") {
        const range = /^(\d+)-(\d+)$/.exec(String(req.headers["content-range"] ?? ""));
        if (range && Number(range[1]) !== s.size) {
          req.resume();
          res.writeHead(416).end();
          return;
        }
        const cut = this.cutAt;
        for await (const c of req) {
          let b = c as Buffer;
          if (cut !== undefined && s.size + b.length >= cut) {
            b = b.subarray(0, cut - s.size);
            s.data.push(b);
            s.size += b.length;
            this.cutAt = undefined;
            req.socket.destroy();
            return;
          }
          s.data.push(b);
          s.size += b.length;
        }
        this.#held(s, res, m[1]);
        res.writeHead(202).end();
        return;
      }
      if (req.method === "PUT") {
        const body = await this.#body(req);
        if (body.length > 0) {
          s.data.push(body);
          s.size += body.length;
        }
        const all = Buffer.concat(s.data);
        const d = url.searchParams.get("digest") as string;
        if (`sha256:${createHash("sha256").update(all).digest("hex")}` !== d) {
          res.writeHead(400, { "content-type": "application/json" }).end('{"errors":[{"code":"DIGEST_INVALID"}]}');
          return;
        }
        this.blobs.set(d, all);
        this.sessions.delete(m[1]);
        res.writeHead(201, { "docker-content-digest": d }).end();
        return;
      }
      if (req.method === "DELETE") {
        this.sessions.delete(m[1]);
        res.writeHead(204).end();
        return;
      }
    }
    m = /^\/v2\/app\/manifests\/([^/]+)$/.exec(p);
    if (m) {
      const ref = decodeURIComponent(m[1]);
      if (req.method === "PUT") {
        const body = await this.#body(req);
        const type = String(req.headers["content-type"]);
        const d = digestOf(body);
        this.manifests.set(d, { type, body });
        if (!ref.startsWith("sha256:")) this.manifests.set(ref, { type, body });
        res.writeHead(201, { "docker-content-digest": d }).end();
        return;
      }
      const got = this.manifests.get(ref);
      if (!got) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, {
        "content-type": got.type,
        "content-length": got.body.length,
        "docker-content-digest": digestOf(got.body),
      });
      res.end(req.method === "HEAD" ? undefined : got.body);
      return;
    }
    m = /^\/v2\/app\/referrers\/(sha256:[0-9a-f]{64})$/.exec(p);
    if (m && this.referrersApi) {
      const subject = m[1];
      const all: Descriptor[] = [];
      for (const [k, v] of this.manifests) {
        if (!k.startsWith("sha256:")) continue;
        const j = JSON.parse(v.body.toString()) as { subject?: Descriptor; artifactType?: string };
        if (j.subject?.digest === subject) {
          all.push({ mediaType: v.type, digest: k as Digest, size: v.body.length, artifactType: j.artifactType });
        }
      }
      // one per page, to exercise Link
      const n = Number(url.searchParams.get("page") ?? "0");
      const page = all.slice(n, n + 1);
      const headers: Record<string, string> = { "content-type": OCI_INDEX };
      if (n + 1 < all.length) headers.link = `</v2/app/referrers/${subject}?page=${n + 1}>; rel="next"`;
      res.writeHead(200, headers).end(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: page }));
      return;
    }
    res.writeHead(404).end();
  }
}

const reg = new UploadRegistry();
let resolver: DockerResolver;
const warnings: string[] = [];
before(async () => {
  await reg.start();
  resolver = createResolver({
    plainHttp: true,
    retries: 3,
    backoffBaseMs: 1,
    dockerConfigPath: join(tmpdir(), "dist-no-such-config.json"),
    proxy: {},
    onWarning: (w) => warnings.push(w),
  });
});
after(async () => {
  await resolver.close();
  await reg.close();
});
beforeEach(() => {
  reg.reset();
  warnings.length = 0;
});

function blob(size: number): {
  bytes: Buffer;
  desc: Descriptor;
  opens: number[];
  open: (o: number) => Promise<Readable>;
} {
  const bytes = randomBytes(size);
  const opens: number[] = [];
  return {
    bytes,
    desc: { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: digestOf(bytes), size },
    opens,
    // in 1000-byte pieces, like a network stream
    open: async (o) => {
      opens.push(o);
      const parts: Buffer[] = [];
      for (let i = o; i < size; i += 1000) parts.push(bytes.subarray(i, Math.min(size, i + 1000)));
      return Readable.from(parts);
    },
  };
}

const pusher = () => resolver.pusher(`${reg.addr}/app:v1`);

describe("pushBlob", () => {
  it("sends a small blob in one PUT, and skips one the registry has", async () => {
    const b = blob(3000);
    const progress: number[] = [];
    const p = await pusher();
    assert.equal(await p.pushBlob(b.desc, b.open, { onProgress: (o) => progress.push(o) }), "pushed");
    assert.deepEqual(reg.blobs.get(b.desc.digest), b.bytes);
    assert.deepEqual(reg.log, [
      `HEAD /v2/app/blobs/${b.desc.digest}`,
      "POST /v2/app/blobs/uploads/",
      `PUT /v2/app/blobs/uploads/u1?digest=${encodeURIComponent(b.desc.digest)}`,
    ]);
    assert.deepEqual(progress, [0, 3000]);
    reg.log = [];
    assert.equal(await p.pushBlob(b.desc, b.open), "exists");
    assert.deepEqual(reg.log, [`HEAD /v2/app/blobs/${b.desc.digest}`]);
  });

  it("sends a large blob in PATCH chunks with Content-Range, then PUT ?digest=", async () => {
    const b = blob(10_000);
    const progress: number[] = [];
    const p = await pusher();
    const status = await p.pushBlob(b.desc, b.open, {
      monolithicMax: 1000,
      chunkSize: 4096,
      onProgress: (o) => progress.push(o),
    });
    assert.equal(status, "pushed");
    assert.deepEqual(reg.blobs.get(b.desc.digest), b.bytes);
    assert.deepEqual(reg.log.slice(1), [
      "POST /v2/app/blobs/uploads/",
      "PATCH /v2/app/blobs/uploads/u1 [0-4095]",
      "PATCH /v2/app/blobs/uploads/u1 [4096-8191]",
      "PATCH /v2/app/blobs/uploads/u1 [8192-9999]",
      `PUT /v2/app/blobs/uploads/u1?digest=${encodeURIComponent(b.desc.digest)}`,
    ]);
    assert.equal(progress.at(-1), 10_000);
    assert.deepEqual(b.opens, [0], "one pass over the source");
  });

  it("resumes an interrupted upload from the offset the registry reports, reopening the source there", async () => {
    const b = blob(10_000);
    reg.cutAt = 6000; // inside the second chunk: the registry keeps 6000 bytes
    const p = await pusher();
    assert.equal(await p.pushBlob(b.desc, b.open, { monolithicMax: 1000, chunkSize: 4096 }), "pushed");
    assert.deepEqual(reg.blobs.get(b.desc.digest), b.bytes);
    assert.deepEqual(b.opens, [0, 6000]);
    assert.deepEqual(reg.log.slice(1), [
      "POST /v2/app/blobs/uploads/",
      "PATCH /v2/app/blobs/uploads/u1 [0-4095]",
      "PATCH /v2/app/blobs/uploads/u1 [4096-8191]",
      "GET /v2/app/blobs/uploads/u1",
      "PATCH /v2/app/blobs/uploads/u1 [6000-9999]",
      `PUT /v2/app/blobs/uploads/u1?digest=${encodeURIComponent(b.desc.digest)}`,
    ]);
    assert.match(warnings.join("\n"), /interrupted at byte \d+ .*resuming from the registry's offset 6000/);
  });

  it("starts over when the registry dropped the session", async () => {
    const b = blob(10_000);
    reg.cutAt = 5000;
    reg.dropOnStatus = true;
    const p = await pusher();
    assert.equal(await p.pushBlob(b.desc, b.open, { monolithicMax: 1000, chunkSize: 4096 }), "pushed");
    assert.deepEqual(reg.blobs.get(b.desc.digest), b.bytes);
    assert.deepEqual(b.opens, [0, 0]);
    assert.ok(reg.log.includes("POST /v2/app/blobs/uploads/"));
    assert.equal(reg.log.filter((l) => l.startsWith("POST")).length, 2);
    assert.match(warnings.join("\n"), /the registry dropped the upload, starting over/);
  });

  it("mounts from another repository, and uploads when the mount is refused", async () => {
    const b = blob(3000);
    const p = await pusher();
    assert.equal(await p.pushBlob(b.desc, b.open, { mountFrom: "has/it" }), "mounted");
    assert.deepEqual(reg.log.slice(1), [
      `POST /v2/app/blobs/uploads/?mount=${encodeURIComponent(b.desc.digest)}&from=has%2Fit`,
    ]);
    reg.reset();
    reg.refuseMounts = true;
    assert.equal(await p.pushBlob(b.desc, b.open, { mountFrom: "private/repo" }), "pushed");
    assert.deepEqual(reg.blobs.get(b.desc.digest), b.bytes);
    assert.deepEqual(
      reg.log.filter((l) => l.startsWith("POST")),
      [
        `POST /v2/app/blobs/uploads/?mount=${encodeURIComponent(b.desc.digest)}&from=private%2Frepo`,
        "POST /v2/app/blobs/uploads/",
      ],
    );
  });

  it("refuses a source that is not the blob, and cancels the session", async () => {
    const b = blob(3000);
    const other = blob(3000);
    const p = await pusher();
    await assert.rejects(p.pushBlob(b.desc, other.open), (err: Error) => {
      assert.ok(isErrorCode(err, "DataLoss"), err.message);
      assert.match(err.message, /digest mismatch/);
      return true;
    });
    assert.equal(reg.blobs.size, 0);
    assert.ok(reg.log.at(-1)?.startsWith("DELETE /v2/app/blobs/uploads/u1"));
    const short = { ...b.desc, size: 20_000 };
    await assert.rejects(
      p.pushBlob(short, b.open, { monolithicMax: 1000, chunkSize: 4096 }),
      /the source ended early \(the blob is 20000 bytes\)/,
    );
  });
});

describe("refusals", () => {
  it("say in one line which repository refused which action, and why", async () => {
    const b = blob(3000);
    const p = await pusher();
    reg.deny = { on: "POST", status: 403, code: "DENIED", message: "requested access to the resource is denied" };
    await assert.rejects(p.pushBlob(b.desc, b.open), (err: Error) => {
      assert.ok(isErrorCode(err, "PermissionDenied"), err.name);
      assert.equal(
        err.message,
        `${reg.addr}/app:v1: starting upload of ${b.desc.digest}: denied: requested access to the resource is denied (HTTP 403)`,
      );
      return true;
    });
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [] }));
    const idx: Descriptor = { mediaType: OCI_INDEX, digest: digestOf(body), size: body.length };
    reg.deny = { on: "PUT", status: 403, code: "DENIED", message: "quota exceeded: 10.0 GiB of 10.0 GiB used" };
    await assert.rejects(p.pushManifest(idx, body, { tag: "v1" }), (err: Error) => {
      assert.equal(
        err.message,
        `${reg.addr}/app:v1: tagging ${idx.digest} as v1: denied: quota exceeded: 10.0 GiB of 10.0 GiB used (HTTP 403)`,
      );
      assert.ok(!err.message.includes("\n"));
      return true;
    });
  });
});

describe("pushManifest and referrers", () => {
  const manifestOf = (extra: object) => {
    const body = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: "application/vnd.oci.empty.v1+json", digest: digestOf("{}"), size: 2 },
        layers: [],
        ...extra,
      }),
    );
    return { body, desc: { mediaType: OCI_MANIFEST, digest: digestOf(body), size: body.length } as Descriptor };
  };

  it("PUTs by digest or under a tag, and only when the registry lacks it there", async () => {
    const m = manifestOf({});
    const p = await pusher();
    assert.equal(await p.pushManifest(m.desc, m.body), "pushed");
    assert.equal(await p.pushManifest(m.desc, m.body), "exists");
    assert.equal(await p.pushManifest(m.desc, m.body, { tag: "v1" }), "pushed");
    assert.equal(await p.pushManifest(m.desc, m.body, { tag: "v1" }), "exists");
    assert.deepEqual(
      reg.log.filter((l) => l.startsWith("PUT")),
      [`PUT /v2/app/manifests/${m.desc.digest}`, "PUT /v2/app/manifests/v1"],
    );
    await assert.rejects(p.pushManifest(m.desc, Buffer.from("{}")), /bytes do not match the descriptor/);
    await assert.rejects(p.pushManifest(m.desc, m.body, { tag: "no/slash" }), /invalid tag "no\/slash"/);
  });

  it("lists referrers through the API, page by page, and through the tag schema without it", async () => {
    const subject = manifestOf({});
    const sig = manifestOf({ artifactType: "application/vnd.dev.cosign", subject: subject.desc });
    const sbom = manifestOf({ artifactType: "application/spdx+json", subject: subject.desc });
    const p = await pusher();
    for (const m of [subject, sig, sbom]) await p.pushManifest(m.desc, m.body);
    const f = await resolver.fetcher(`${reg.addr}/app:v1`);
    const viaApi = await f.referrers(subject.desc.digest);
    assert.equal(viaApi.api, true);
    assert.deepEqual(viaApi.manifests.map((d) => d.digest).sort(), [sig.desc.digest, sbom.desc.digest].sort());
    assert.deepEqual(viaApi.manifests.map((d) => d.artifactType).sort(), [
      "application/spdx+json",
      "application/vnd.dev.cosign",
    ]);

    reg.referrersApi = false;
    assert.deepEqual(await f.referrers(subject.desc.digest), { manifests: [], api: false });
    const first = await f.referrers(subject.desc.digest);
    assert.equal(
      await p.addReferrerToTag(
        subject.desc,
        { ...sig.desc, artifactType: "application/vnd.dev.cosign" },
        first.manifests,
      ),
      true,
    );
    const second = await f.referrers(subject.desc.digest);
    assert.deepEqual(
      second.manifests.map((d) => [d.digest, d.artifactType]),
      [[sig.desc.digest, "application/vnd.dev.cosign"]],
    );
    assert.equal(await p.addReferrerToTag(subject.desc, sig.desc, second.manifests), false, "listed once");
    await p.addReferrerToTag(subject.desc, sbom.desc, second.manifests);
    const third = await f.referrers(subject.desc.digest);
    assert.deepEqual(
      third.manifests.map((d) => d.digest),
      [sig.desc.digest, sbom.desc.digest],
    );
    assert.ok(reg.log.includes(`PUT /v2/app/manifests/sha256-${subject.desc.digest.slice(7)}`));
  });
});

describe("upload Range", () => {
  it("reads 0-<last> as last + 1 bytes, 0-0 as none", () => {
    assert.equal(parseUploadRange("0-4095"), 4096);
    assert.equal(parseUploadRange("bytes=0-99"), 100);
    assert.equal(parseUploadRange("0-0"), 0);
    assert.equal(parseUploadRange(undefined), undefined);
    assert.equal(parseUploadRange("5-9"), undefined);
    assert.equal(parseUploadRange("0-x"), undefined);
  });
});
