/**
 * An in-process registry for the upload protocol edges distribution 2.8 lacks
 * (a session's Range after an interrupted PATCH, Content-Range checks, the
 * referrers API), for unit tests of the pusher and of copy. One repository, `app`.
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Descriptor } from "../../src/descriptor.ts";
import { type Digest, digestOf } from "../../src/digest.ts";

export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

interface Session {
  data: Buffer[];
  size: number;
}

/** A registry keeping blobs, manifests and upload sessions in memory; every request is logged. */
export class UploadRegistry {
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
    if (m && (req.method === "HEAD" || req.method === "GET")) {
      const b = this.blobs.get(m[1]);
      if (!b) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { "content-length": b.length, "docker-content-digest": m[1] });
      res.end(req.method === "GET" ? b : undefined);
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
