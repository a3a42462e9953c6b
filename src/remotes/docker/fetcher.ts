/**
 * Downloads from a repository: manifests and indexes through `/manifests/`
 * (capped, buffered, verified whole), everything else through `/blobs/` as a
 * stream that is verified while it flows, resumes with Range after a dropped
 * connection, and errors when no byte arrives for the stall timeout.
 *
 * What is verified: from offset 0, the size and the digest of the whole blob.
 * From an offset > 0 (a resume), only the size of the remainder: the digest
 * needs every byte, so the content store's writer (which has the prefix)
 * verifies the whole blob on commit.
 */
import { Readable } from "node:stream";
import { checkSize, MAX_MANIFEST_SIZE, readVerified } from "../../content/helpers.ts";
import type { Descriptor } from "../../descriptor.ts";
import { algorithmOf, type Digest, Digester, digestOf, parseDigest } from "../../digest.ts";
import {
  DataLossError,
  InvalidArgumentError,
  NotFoundError,
  OutOfRangeError,
  UnavailableError,
  wrapError,
} from "../../errors.ts";
import { isIndex, isManifest, isSchema1, MANIFEST_ACCEPT } from "../../images/mediatypes.ts";
import type { Fetcher, FetchOptions } from "../remotes.ts";
import { repositoryScope } from "./challenge.ts";
import { drain, header, type RegistryClient, type RegistryResponse, type RequestSpec } from "./client.ts";
import { dataLoss, isRetryableNetworkError, networkReason } from "./errors.ts";
import type { RegistryHost } from "./hosts.ts";
import { listReferrers, type Referrers } from "./referrers.ts";
import { sleep } from "./retry.ts";

export interface Repository {
  /** The reference string for messages (normalised). */
  ref: string;
  /** Registry namespace: the reference's domain. */
  namespace: string;
  /** Repository path, e.g. `library/redis`. */
  path: string;
}

/** A small cache of manifest bodies, so a resolve's GET is not repeated by the fetch. */
export class ManifestCache {
  readonly #map = new Map<string, Buffer>();
  readonly #max: number;
  constructor(max = 32) {
    this.#max = max;
  }
  get(key: string): Buffer | undefined {
    return this.#map.get(key);
  }
  set(key: string, body: Buffer): void {
    this.#map.delete(key);
    this.#map.set(key, body);
    if (this.#map.size > this.#max) this.#map.delete(this.#map.keys().next().value as string);
  }
}

export function isManifestType(mediaType: string): boolean {
  return isManifest(mediaType) || isIndex(mediaType) || isSchema1(mediaType);
}

function checkDescriptor(repo: Repository, desc: Descriptor): void {
  try {
    parseDigest(desc.digest);
  } catch (err) {
    throw wrapError(err, repo.ref, "InvalidArgument");
  }
  if (!Number.isSafeInteger(desc.size) || desc.size < 0) {
    throw new InvalidArgumentError(`${repo.ref}: descriptor ${desc.digest} has an invalid size ${desc.size}`);
  }
}

class StallError extends Error {
  readonly code = "STALLED";
}

export class DockerFetcher implements Fetcher {
  readonly #client: RegistryClient;
  readonly #hosts: RegistryHost[];
  readonly #repo: Repository;
  readonly #cache: ManifestCache;

  constructor(client: RegistryClient, hosts: RegistryHost[], repo: Repository, cache: ManifestCache) {
    this.#client = client;
    this.#hosts = hosts;
    this.#repo = repo;
    this.#cache = cache;
  }

  #spec(method: "GET" | "HEAD", path: string, what: string, signal?: AbortSignal): RequestSpec {
    return {
      method,
      path: `/${this.#repo.path}${path}`,
      scopes: [repositoryScope(this.#repo.path)],
      ref: this.#repo.ref,
      what,
      signal,
      namespace: this.#repo.namespace,
    };
  }

  async fetch(desc: Descriptor, opts: FetchOptions = {}): Promise<Readable> {
    checkDescriptor(this.#repo, desc);
    const offset = opts.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > desc.size) {
      throw new OutOfRangeError(`${this.#repo.ref}: offset ${offset} outside ${desc.digest} (${desc.size} bytes)`);
    }
    if (desc.data !== undefined) {
      const data = Buffer.from(desc.data, "base64");
      if (data.length === desc.size && digestOf(data, parseDigest(desc.digest).algorithm) === desc.digest) {
        return Readable.from([data.subarray(offset)], { objectMode: false });
      }
      // inline data that does not match is ignored: the registry has the real bytes
    }
    if (isManifestType(desc.mediaType)) {
      const body = await this.manifest(desc, opts.signal);
      return Readable.from([body.subarray(offset)], { objectMode: false });
    }
    return this.#blob(desc, offset, opts.signal, opts.verify ?? true);
  }

  /** A manifest or index, whole and verified (cached after a resolve). */
  async manifest(desc: Descriptor, signal?: AbortSignal): Promise<Buffer> {
    checkDescriptor(this.#repo, desc);
    const what = `fetching ${desc.digest}`;
    if (isSchema1(desc.mediaType)) {
      throw new InvalidArgumentError(`${this.#repo.ref}: ${what}: schema 1 manifests are not supported`);
    }
    checkSize(`${this.#repo.ref}: ${what}: manifest`, desc.size, MAX_MANIFEST_SIZE);
    const cached = this.#cache.get(desc.digest);
    if (cached && cached.length === desc.size) return cached;
    const accept = [...new Set([desc.mediaType, ...MANIFEST_ACCEPT])].join(", ");
    const spec = this.#spec("GET", `/manifests/${desc.digest}`, what, signal);
    spec.headers = { accept };
    let res = await this.#client.sendAny(this.#hosts, spec);
    if (res.status === 404) {
      // some registries serve manifests only as blobs
      await drain(res.body);
      res = await this.#client.sendAny(this.#hosts, {
        ...this.#spec("GET", `/blobs/${desc.digest}`, what, signal),
        followRedirects: true,
      });
    }
    if (res.status !== 200) throw await this.#client.fail(res, spec);
    const body = await readVerified(res.body, desc, `${this.#repo.ref}: ${what}`);
    this.#cache.set(desc.digest, body);
    return body;
  }

  /** Opens the blob from `from`; `skip` bytes must be dropped when the server ignored Range. */
  async #open(
    desc: Descriptor,
    from: number,
    hosts: RegistryHost[],
    signal?: AbortSignal,
  ): Promise<{ res: RegistryResponse; skip: number }> {
    const what = `fetching blob ${desc.digest}`;
    const spec = this.#spec("GET", `/blobs/${desc.digest}`, what, signal);
    spec.followRedirects = true;
    if (from > 0) spec.headers = { range: `bytes=${from}-` };
    const res = await this.#client.sendAny(hosts, spec);
    if (res.status === 200) {
      const len = header(res.headers, "content-length");
      if (len !== undefined && Number(len) !== desc.size) {
        await drain(res.body);
        throw dataLoss(this.#repo.ref, what, `registry sends ${len} bytes, the descriptor says ${desc.size}`);
      }
      return { res, skip: from };
    }
    if (res.status === 206) {
      const cr = header(res.headers, "content-range") ?? "";
      const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(cr.trim());
      if (!m || Number(m[1]) !== from || (m[3] !== "*" && Number(m[3]) !== desc.size)) {
        await drain(res.body);
        throw dataLoss(this.#repo.ref, what, `asked for bytes ${from}- and got Content-Range "${cr}"`);
      }
      return { res, skip: 0 };
    }
    if (res.status === 404) {
      const err = await this.#client.fail(res, spec);
      throw new NotFoundError(err.message, { cause: err });
    }
    throw await this.#client.fail(res, spec);
  }

  async #blob(desc: Descriptor, offset: number, signal?: AbortSignal, verify = true): Promise<Readable> {
    const ref = this.#repo.ref;
    const what = `fetching blob ${desc.digest}`;
    // the digest needs every byte: a resume leaves it to the store's writer, which has the prefix
    const digester = verify && offset === 0 ? new Digester(algorithmOf(desc.digest)) : undefined;
    if (offset === desc.size) {
      if (digester) await readVerified(Readable.from([]), desc, `${ref}: ${what}`);
      return Readable.from([], { objectMode: false });
    }
    let cur = await this.#open(desc, offset, this.#hosts, signal);
    const client = this.#client;
    const stallMs = client.stallTimeoutMs;
    // a resume asks the host that was sending, then those after it (a mirror that died mid-blob)
    const hosts = this.#hosts;
    const open = (from: number, host: RegistryHost) => {
      const i = hosts.indexOf(host);
      return this.#open(desc, from, i < 0 ? [host] : hosts.slice(i), signal);
    };
    const want = desc.size - offset;

    async function* chunks(): AsyncGenerator<Buffer> {
      let delivered = 0;
      let retriesLeft = client.retries;
      let attempt = 0;
      for (;;) {
        const body = cur.res.body;
        let skip = cur.skip;
        let failure: unknown;
        // armed only while waiting for the network: a slow consumer is not a stall
        let waiting = false;
        const timer = setTimeout(() => {
          if (waiting) body.destroy(new StallError(`no data for ${stallMs / 1000}s (stall timeout)`));
        }, stallMs);
        try {
          const it = body[Symbol.asyncIterator]();
          for (;;) {
            waiting = true;
            timer.refresh();
            const r = await it.next();
            waiting = false;
            if (r.done) break;
            let c = r.value as Buffer;
            if (skip > 0) {
              if (c.length <= skip) {
                skip -= c.length;
                continue;
              }
              c = c.subarray(skip);
              skip = 0;
            }
            if (delivered + c.length > want) {
              // a hostile or broken registry must not stream forever
              throw dataLoss(ref, what, `more than the expected ${desc.size} bytes`);
            }
            digester?.update(c);
            delivered += c.length;
            // network chunks as they come: gathering them into bigger ones costs a copy
            // and a megabyte of garbage each (measured slower, and more RSS)
            yield c;
          }
          if (delivered >= want) {
            if (digester) {
              const actual = digester.digest();
              if (actual !== desc.digest) {
                throw dataLoss(ref, what, `digest mismatch: got ${actual}, expected ${desc.digest}`);
              }
            }
            return;
          }
          failure = Object.assign(new Error("body ended early"), { code: "ECONNRESET" });
        } catch (err) {
          if (err instanceof DataLossError) throw err;
          failure = err;
        } finally {
          clearTimeout(timer);
          body.destroy();
        }
        if (signal?.aborted) throw signal.reason;
        const host = cur.res.host;
        if (!isRetryableNetworkError(failure) || retriesLeft <= 0) {
          const why = failure instanceof StallError ? failure.message : `connection lost (${networkReason(failure)})`;
          const retried = attempt > 0 ? ` after ${attempt} retries` : "";
          throw new UnavailableError(
            `${ref}: ${what}: ${why} at byte ${offset + delivered} of ${desc.size}${retried} from ${host.host}`,
            { cause: failure },
          );
        }
        retriesLeft--;
        const delay = client.backoff(attempt++);
        client.opts.onWarning?.(
          `${ref}: ${what}: ${(failure as Error).message} at byte ${offset + delivered}; resuming in ${delay} ms`,
        );
        await sleep(delay, signal);
        cur = await open(offset + delivered, host);
      }
    }

    // a small read-ahead: chunks that wait in a buffer live long enough to reach the old
    // generation, whose dead Buffers are only freed by a full GC (measured: 1 MiB here
    // held ~40 MiB of dead chunks and the RSS with them; 64 KiB keeps them young)
    return Readable.from(chunks(), { objectMode: false, highWaterMark: 64 << 10 });
  }

  /** The OCI 1.1 referrers of a manifest: through the referrers API, else the `<alg>-<hex>` tag. */
  referrers(subject: Digest, opts: { signal?: AbortSignal } = {}): Promise<Referrers> {
    return listReferrers(this.#client, this.#hosts, this.#repo, subject, opts.signal);
  }

  /**
   * Fetches by digest alone (no descriptor at hand): a manifest when the registry
   * knows the digest as one, else a blob. Media type and size come from the registry.
   */
  async fetchByDigest(
    digest: Digest,
    opts: { mediaType?: string; signal?: AbortSignal; verify?: boolean } = {},
  ): Promise<{ desc: Descriptor; stream: Readable }> {
    try {
      parseDigest(digest);
    } catch (err) {
      throw wrapError(err, this.#repo.ref, "InvalidArgument");
    }
    const what = `looking up ${digest}`;
    const head = async (kind: "blobs" | "manifests") => {
      const spec = this.#spec("HEAD", `/${kind}/${digest}`, what, opts.signal);
      spec.headers = { accept: [...MANIFEST_ACCEPT, "*/*"].join(", ") };
      spec.followRedirects = true;
      const res = await this.#client.sendAny(this.#hosts, spec);
      await drain(res.body);
      if (res.status !== 200 && res.status !== 404) throw await this.#client.fail(res, spec);
      if (res.status === 404) return undefined;
      const size = Number(header(res.headers, "content-length"));
      if (!Number.isSafeInteger(size) || size < 0) {
        throw dataLoss(this.#repo.ref, what, "registry sent no valid Content-Length");
      }
      return { size, contentType: (header(res.headers, "content-type") ?? "").split(";")[0].trim() };
    };
    if (opts.mediaType && isManifestType(opts.mediaType)) {
      const found = await head("manifests");
      if (!found) throw new NotFoundError(`${this.#repo.ref}: ${what}: HTTP 404 not found`);
      const desc: Descriptor = { mediaType: opts.mediaType, digest, size: found.size };
      return { desc, stream: await this.fetch(desc, { signal: opts.signal }) };
    }
    // Blobs first: a registry keeps manifests as blobs too, while asking /manifests/ for a
    // layer makes some (distribution 2.8) answer 500 instead of 404.
    const blob = await head("blobs");
    if (!blob) {
      const found = await head("manifests");
      if (!found) throw new NotFoundError(`${this.#repo.ref}: ${what}: HTTP 404 not found`);
      const mediaType = opts.mediaType ?? (isManifestType(found.contentType) ? found.contentType : MANIFEST_ACCEPT[1]);
      const desc: Descriptor = { mediaType, digest, size: found.size };
      return { desc, stream: await this.fetch(desc, { signal: opts.signal }) };
    }
    const desc: Descriptor = { mediaType: opts.mediaType ?? "application/octet-stream", digest, size: blob.size };
    if (opts.mediaType || blob.size > MAX_MANIFEST_SIZE) {
      return { desc, stream: await this.#blob(desc, 0, opts.signal, opts.verify ?? true) };
    }
    // small and untyped: read it whole (verified) and name a manifest or index by its own mediaType
    const body = await readVerified(await this.#blob(desc, 0, opts.signal, false), desc, `${this.#repo.ref}: ${what}`);
    desc.mediaType = declaredManifestType(body) ?? desc.mediaType;
    return { desc, stream: Readable.from([body]) };
  }
}

/** The mediaType a manifest or index declares in its JSON, if the bytes are one. */
function declaredManifestType(body: Buffer): string | undefined {
  if (body[0] !== 0x7b) return undefined;
  try {
    const v = JSON.parse(body.toString("utf8")) as { mediaType?: unknown };
    return typeof v.mediaType === "string" && isManifestType(v.mediaType) ? v.mediaType : undefined;
  } catch {
    return undefined;
  }
}
