/**
 * Blob upload sessions of the distribution API, one request each: start (with
 * a cross-repository mount when a source repository is known), send a chunk
 * (`PATCH` with Content-Range), ask where the session stands (`GET`, whose
 * `Range: 0-<last>` is what the registry holds), finish (`PUT ?digest=`, with
 * the whole blob for a monolithic upload) and cancel. The pusher composes them.
 */
import type { Readable } from "node:stream";
import type { Descriptor } from "../../descriptor.ts";
import type { Digest } from "../../digest.ts";
import { isErrorCode, OutOfRangeError, UnavailableError } from "../../errors.ts";
import { repositoryScope } from "./challenge.ts";
import { drain, header, type RegistryClient, type RegistryResponse, type RequestSpec } from "./client.ts";
import { dataLoss } from "./errors.ts";
import type { Repository } from "./fetcher.ts";
import type { RegistryHost } from "./hosts.ts";

/** Where a pusher writes: a repository, and the tag or digest of its reference. */
export interface PushTarget extends Repository {
  tag?: string;
  digest?: Digest;
}

/** Blobs up to this size go up in one `PUT` (two requests, the body replayable on retry). */
export const MONOLITHIC_MAX = 4 << 20;
/** Larger blobs go up in `PATCH` chunks of this size, streamed. */
export const CHUNK_SIZE = 64 << 20;

export type Started = { mounted: true } | { mounted: false; location: URL };

export class UploadSessions {
  readonly #client: RegistryClient;
  readonly #host: RegistryHost;
  readonly #target: PushTarget;

  constructor(client: RegistryClient, host: RegistryHost, target: PushTarget) {
    this.#client = client;
    this.#host = host;
    this.#target = target;
  }

  get ref(): string {
    return this.#target.ref;
  }

  /** A request under the repository (`/blobs/…`) or to an upload location. */
  spec(method: RequestSpec["method"], at: string | URL, what: string, extra: Partial<RequestSpec> = {}): RequestSpec {
    const scopes = [repositoryScope(this.#target.path, true)];
    if (extra.query?.from) scopes.push(repositoryScope(extra.query.from));
    const where = typeof at === "string" ? { path: `/${this.#target.path}${at}` } : { url: at };
    return { method, ...where, scopes, ref: this.#target.ref, what, namespace: this.#target.namespace, ...extra };
  }

  async send(spec: RequestSpec): Promise<RegistryResponse> {
    return this.#client.send(this.#host, spec);
  }

  fail(res: RegistryResponse, spec: { ref: string; what: string }) {
    return this.#client.fail(res, spec);
  }

  /** Whether the repository has a blob (HEAD). */
  async exists(desc: Descriptor, signal?: AbortSignal): Promise<boolean> {
    const spec = this.spec("HEAD", `/blobs/${desc.digest}`, `checking blob ${desc.digest}`, { signal });
    const res = await this.send(spec);
    await drain(res.body);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw await this.fail(res, spec);
  }

  /**
   * Opens an upload session, or mounts the blob from `mountFrom` (another
   * repository of the registry). A mount the registry declines opens a session
   * instead; one refused for lack of access (401/403 on the source) is retried
   * without the mount, as containerd does.
   */
  async start(desc: Descriptor, opts: { mountFrom?: string; signal?: AbortSignal } = {}): Promise<Started> {
    const mount = opts.mountFrom && opts.mountFrom !== this.#target.path ? opts.mountFrom : undefined;
    if (mount) {
      const query = { mount: desc.digest, from: mount };
      const spec = this.spec("POST", "/blobs/uploads/", `mounting blob ${desc.digest} from ${mount}`, {
        signal: opts.signal,
        query,
      });
      let res: RegistryResponse | undefined;
      try {
        res = await this.send(spec);
      } catch (err) {
        if (!isErrorCode(err, "Unauthenticated") && !isErrorCode(err, "PermissionDenied")) throw err;
      }
      if (res?.status === 201) {
        await drain(res.body);
        return { mounted: true };
      }
      if (res?.status === 202) return { mounted: false, location: await this.#location(res, spec) };
      if (res) await drain(res.body);
      // refused (no pull access to the source, or mounting unsupported): a plain upload
    }
    return { mounted: false, location: await this.begin(desc, opts.signal) };
  }

  /** Opens a plain upload session; its location. */
  async begin(desc: Descriptor, signal?: AbortSignal): Promise<URL> {
    const spec = this.spec("POST", "/blobs/uploads/", `starting upload of ${desc.digest}`, { signal });
    const res = await this.send(spec);
    if (res.status !== 202) throw await this.fail(res, spec);
    return this.#location(res, spec);
  }

  async #location(res: RegistryResponse, spec: RequestSpec): Promise<URL> {
    await drain(res.body);
    const loc = header(res.headers, "location");
    if (!loc) throw new UnavailableError(`${spec.ref}: ${spec.what}: registry sent no upload Location`);
    try {
      return new URL(loc, res.url);
    } catch {
      throw new UnavailableError(`${spec.ref}: ${spec.what}: registry sent an invalid upload Location`);
    }
  }

  /**
   * Sends `length` bytes starting at blob byte `from` (a streamed body with
   * Content-Length and Content-Range). Returns the session's next location and
   * how many bytes the registry now holds (its Range, else what was sent).
   * A 416 (the registry holds another offset) is an OutOfRangeError.
   */
  async patch(
    location: URL,
    body: Readable,
    from: number,
    length: number,
    signal?: AbortSignal,
  ): Promise<{ location: URL; offset: number }> {
    const spec = this.spec("PATCH", location, `uploading blob bytes ${from}-${from + length - 1}`, {
      signal,
      headers: {
        "content-type": "application/octet-stream",
        "content-length": String(length),
        "content-range": `${from}-${from + length - 1}`,
      },
      body,
    });
    const res = await this.send(spec);
    if (res.status === 416) {
      await drain(res.body);
      throw new OutOfRangeError(`${spec.ref}: ${spec.what}: the registry holds another offset (HTTP 416)`);
    }
    if (res.status !== 202 && res.status !== 204) throw await this.fail(res, spec);
    const next = await this.#location(res, spec).catch(() => location);
    const held = parseUploadRange(header(res.headers, "range"));
    return { location: next, offset: held ?? from + length };
  }

  /** Where a session stands: the bytes the registry holds and its location; undefined when it is gone or refused. */
  async status(location: URL, signal?: AbortSignal): Promise<{ location: URL; offset: number } | undefined> {
    const spec = this.spec("GET", location, "asking the upload's offset", { signal });
    const res = await this.send(spec);
    if (res.status !== 204 && res.status !== 200) {
      await drain(res.body);
      return undefined;
    }
    const next = await this.#location(res, spec).catch(() => location);
    return { location: next, offset: parseUploadRange(header(res.headers, "range")) ?? 0 };
  }

  /** Finishes a session (`PUT ?digest=`), with the whole blob when `body` is given; checks the digest stored. */
  async complete(location: URL, desc: Descriptor, body?: Buffer, signal?: AbortSignal): Promise<void> {
    const url = new URL(location);
    url.searchParams.set("digest", desc.digest);
    const spec = this.spec("PUT", url, `completing upload of ${desc.digest}`, {
      signal,
      headers: { "content-type": "application/octet-stream", "content-length": String(body?.length ?? 0) },
      body: body ?? "",
    });
    const res = await this.send(spec);
    if (res.status !== 201 && res.status !== 204) throw await this.fail(res, spec);
    await drain(res.body);
    const got = header(res.headers, "docker-content-digest");
    if (got && got !== desc.digest) {
      throw dataLoss(this.#target.ref, spec.what, `registry stored ${got.slice(0, 100)}, expected ${desc.digest}`);
    }
  }

  /** Abandons a session (best effort: registries expire them anyway). */
  async cancel(location: URL): Promise<void> {
    try {
      const res = await this.send(this.spec("DELETE", location, "cancelling an upload"));
      await drain(res.body);
    } catch {
      // the registry expires abandoned sessions on its own
    }
  }
}

/**
 * The byte count an upload `Range` header says the registry holds: `0-<last>`
 * (inclusive) → last + 1. `0-0` is read as nothing held: distribution sends it
 * for an empty session (and, ambiguously, for one byte).
 */
export function parseUploadRange(range: string | undefined): number | undefined {
  if (range === undefined) return undefined;
  const m = /^(?:bytes=)?0-(\d+)$/.exec(range.trim());
  if (!m) return undefined;
  const last = Number(m[1]);
  if (!Number.isSafeInteger(last)) return undefined;
  return last === 0 ? 0 : last + 1;
}
