/**
 * `dist serve`: the OCI distribution API over a namespace of the store, on
 * node:http (or node:https). The handler authenticates, parses the route
 * strictly and dispatches; every failure is answered in the spec's JSON error
 * form. Connections idle for too long (a client that stops reading or
 * sending) are closed, so one slow client holds one socket and nothing else.
 *
 * @example
 * ```ts
 * const server = new RegistryServer({ content, images });
 * const { url } = await server.listen({ host: "127.0.0.1", port: 5000 });
 * ```
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { Store } from "../content/content.ts";
import type { Digest } from "../digest.ts";
import type { ImageStore } from "../images/image.ts";
import type { Htpasswd } from "./auth.ts";
import { getBlob } from "./blobs.ts";
import type { Context } from "./context.ts";
import { Downloads } from "./downloads.ts";
import { RegistryError, toRegistryError, unsupported } from "./errors.ts";
import { type Request, type Response, sendError, sendJson } from "./http.ts";
import { catalog, getManifest, listTags, putManifest, referrers } from "./manifests.ts";
import { cancelUpload, patchUpload, putUpload, startUpload, uploadStatus } from "./push.ts";
import { parseRoute, type Route, splitTarget } from "./routes.ts";
import { type UploadLimits, Uploads } from "./uploads.ts";
import type { Upstream } from "./upstream.ts";
import { StoreView } from "./view.ts";

/** What a RegistryServer serves (one namespace's content and images) and how. */
export interface RegistryServerOptions {
  content: Store;
  images: ImageStore;
  /** A token that moves when the image records change (e.g. SQLite's data_version); else they are re-listed every second. */
  changes?: () => unknown;
  /** The registry whose image names answer requests without `?ns=`, and under which pushes are recorded. */
  registry?: string;
  allowPush?: boolean;
  /** Basic auth: every request must carry a user and password of this file. */
  users?: Htpasswd;
  /** Pull-through: misses are fetched from these registries. */
  upstream?: Upstream;
  uploadLimits?: Partial<UploadLimits>;
  onWarning?: (message: string) => void;
  /** Called after each request (an access log). */
  onRequest?: (entry: RequestEntry) => void;
}

/** One request, as the access log (onRequest) gets it. */
export interface RequestEntry {
  method: string;
  /** The request target (path and query). */
  url: string;
  status: number;
  ms: number;
  user?: string;
  error?: string;
}

/** Where a RegistryServer listens, with TLS or not. */
export interface ListenOptions {
  host: string;
  port: number;
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** A connection with no traffic for this long is closed (ms; default 60 s). */
  idleTimeoutMs?: number;
}

/** The OCI distribution API over a content store and an image store (`dist serve`). */
export class RegistryServer {
  readonly #ctx: Context;
  readonly #users: Htpasswd | undefined;
  readonly #onRequest: RegistryServerOptions["onRequest"];
  #server: Server | undefined;

  constructor(opts: RegistryServerOptions) {
    this.#users = opts.users;
    this.#onRequest = opts.onRequest;
    this.#ctx = {
      content: opts.content,
      images: opts.images,
      view: new StoreView({ content: opts.content, images: opts.images, changes: opts.changes }),
      registry: opts.registry,
      allowPush: opts.allowPush ?? false,
      uploads: new Uploads(opts.content, opts.uploadLimits),
      upstream: opts.upstream,
      downloads: new Downloads(opts.content),
      known: new Set<Digest>(),
      onWarning: opts.onWarning,
    };
  }

  /** The request handler, for an http(s) server of the caller's. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const started = Date.now();
    let user: string | undefined;
    let error: string | undefined;
    res.setHeader("docker-distribution-api-version", "registry/2.0");
    res.once("close", () => {
      this.#onRequest?.({
        method: req.method ?? "",
        url: req.url ?? "/",
        status: res.statusCode,
        ms: Date.now() - started,
        user,
        error,
      });
    });
    const run = async () => {
      if (this.#users) {
        user = await this.#users.check(req.headers.authorization);
        if (!user) {
          throw new RegistryError(401, "UNAUTHORIZED", "authentication required", {
            headers: { "www-authenticate": 'Basic realm="dist"' },
          });
        }
      }
      const { path, query } = splitTarget(req.url ?? "/");
      await this.#dispatch(req, res, parseRoute(path), query);
    };
    run().catch((err: unknown) => {
      const e = toRegistryError(err);
      error = e.message;
      if (e.status >= 500) this.#ctx.onWarning?.(`${req.method} ${req.url}: ${e.message}`);
      if (!res.writableEnded) sendError(req, res, e);
    });
  };

  async #dispatch(req: Request, res: Response, route: Route, query: URLSearchParams): Promise<void> {
    const ctx = this.#ctx;
    const method = req.method ?? "GET";
    const read = method === "GET" || method === "HEAD";
    switch (route.kind) {
      case "base":
        if (!read) throw notAllowed(method);
        return sendJson(req, res, 200, {});
      case "catalog":
        if (!read) throw notAllowed(method);
        return catalog(ctx, req, res, query);
      case "tags":
        if (!read) throw notAllowed(method);
        return listTags(ctx, req, res, route.name, query);
      case "referrers":
        if (!read) throw notAllowed(method);
        return referrers(ctx, req, res, route.digest, query);
      case "manifest":
        if (read) return getManifest(ctx, req, res, route.name, route.reference, route.digest, query);
        if (method === "PUT") return putManifest(ctx, req, res, route.name, route.reference, route.digest);
        if (method === "DELETE") throw unsupported("deleting is not supported by dist serve");
        throw notAllowed(method);
      case "blob":
        if (read) return getBlob(ctx, req, res, route.name, route.digest, query);
        if (method === "DELETE") throw unsupported("deleting is not supported by dist serve");
        throw notAllowed(method);
      case "upload-start":
        if (method === "POST") return startUpload(ctx, req, res, route.name, query);
        throw notAllowed(method);
      case "upload":
        if (method === "PATCH") return patchUpload(ctx, req, res, route.name, route.id);
        if (method === "PUT") return putUpload(ctx, req, res, route.name, route.id, query);
        if (method === "GET") return uploadStatus(ctx, res, route.name, route.id);
        if (method === "DELETE") return cancelUpload(ctx, res, route.name, route.id);
        throw notAllowed(method);
    }
  }

  /** Listens on host:port (port 0: any free one); resolves with the URL clients use. */
  async listen(opts: ListenOptions): Promise<{ url: string; port: number }> {
    const serverOpts = { requestTimeout: 0, headersTimeout: 60_000, keepAliveTimeout: 5_000 };
    const server = opts.tls
      ? createHttpsServer({ ...serverOpts, cert: opts.tls.cert, key: opts.tls.key }, this.handle)
      : createHttpServer(serverOpts, this.handle);
    // no 'timeout' listener: node destroys a socket idle this long
    server.setTimeout(opts.idleTimeoutMs ?? 60_000);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(opts.port, opts.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.#server = server;
    const port = (server.address() as AddressInfo).port;
    if (this.#ctx.upstream) this.#ctx.upstream.port = port;
    const host = opts.host.includes(":") ? `[${opts.host}]` : opts.host;
    return { url: `${opts.tls ? "https" : "http"}://${host}:${port}`, port };
  }

  /** Stops listening, aborts uploads and downloads, and closes connections after `graceMs`. */
  async close(graceMs = 5_000): Promise<void> {
    const server = this.#server;
    this.#ctx.uploads.close();
    this.#ctx.downloads.close();
    if (server) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const t = setTimeout(() => server.closeAllConnections(), graceMs);
      await closed;
      clearTimeout(t);
    }
    await this.#ctx.upstream?.close();
  }
}

function notAllowed(method: string): RegistryError {
  return unsupported(`method ${method} is not allowed here`);
}
