/**
 * Uploads to a repository.
 *
 * `pushBlob(desc, open)` is the transfer path: nothing when the registry has the
 * blob (HEAD), a cross-repository mount when a source repository is known, else
 * one `PUT` for a small blob (monolithic) or `PATCH` chunks for a large one,
 * streamed from `open(offset)`. An interrupted chunked upload asks the session
 * where it stands (`GET`, its `Range`) and resumes from the registry's offset,
 * reopening the source there; a session the registry dropped (distribution 2.8
 * cancels one whose size moved under a failed `PATCH`) starts over.
 * `pushManifest(desc, bytes, {tag})` PUTs a manifest or index by digest, or
 * under a tag, unless the registry has it there already.
 *
 * `push(desc)` is the content Writer path (containerd's Pusher): AlreadyExistsError
 * when the registry has the blob (or mounts it), else a Writer whose bytes
 * stream into one PATCH and whose commit finishes with `PUT ?digest=`;
 * manifests are collected (at most 4 MiB) and PUT by tag or digest.
 */
import { PassThrough, Readable } from "node:stream";
import type { Status, Writer } from "../../content/content.ts";
import {
  checkSize,
  MAX_MANIFEST_SIZE,
  type OpenAt,
  readVerified,
  type Source,
  tooLarge,
} from "../../content/helpers.ts";
import type { Descriptor } from "../../descriptor.ts";
import { algorithmOf, type Digest, Digester, digestOf, parseDigest } from "../../digest.ts";
import {
  AlreadyExistsError,
  DataLossError,
  FailedPreconditionError,
  InvalidArgumentError,
  isErrorCode,
  wrapError,
} from "../../errors.ts";
import { MANIFEST_ACCEPT, MediaType } from "../../images/mediatypes.ts";
import { isValidTag } from "../../reference/reference.ts";
import type { Pusher, PushStatus, UploadOptions } from "../remotes.ts";
import { drain, header, type RegistryClient, type RegistryResponse } from "./client.ts";
import { isRetryableNetworkError } from "./errors.ts";
import { isManifestType } from "./fetcher.ts";
import type { RegistryHost } from "./hosts.ts";
import { referrersTag } from "./referrers.ts";
import { sleep } from "./retry.ts";
import { CHUNK_SIZE, MONOLITHIC_MAX, type PushTarget, UploadSessions } from "./upload.ts";

export type { PushTarget } from "./upload.ts";

export interface PushOptions {
  signal?: AbortSignal;
  /** A repository of the same registry holding the blob: tried as a cross-repository mount. */
  mountFrom?: string;
}

export interface BlobPushOptions extends UploadOptions {
  /** Blobs up to this size go in one PUT (default 4 MiB). */
  monolithicMax?: number;
  /** The size of PATCH chunks (default 64 MiB). */
  chunkSize?: number;
}

export class DockerPusher implements Pusher {
  readonly #client: RegistryClient;
  readonly #target: PushTarget;
  readonly #uploads: UploadSessions;

  constructor(client: RegistryClient, host: RegistryHost, target: PushTarget) {
    this.#client = client;
    this.#target = target;
    this.#uploads = new UploadSessions(client, host, target);
  }

  /** The repository and reference pushed to. */
  get target(): Readonly<PushTarget> {
    return this.#target;
  }

  /**
   * Where a manifest goes: the reference's tag when the reference names no digest
   * or names this one (pushing children first, the root last, leaves the tag on
   * the root); otherwise its digest.
   */
  manifestObject(desc: Descriptor): string {
    const { tag, digest } = this.#target;
    if (tag && (!digest || digest === desc.digest)) return tag;
    return desc.digest;
  }

  #check(desc: Descriptor): void {
    try {
      parseDigest(desc.digest);
    } catch (err) {
      throw wrapError(err, this.#target.ref, "InvalidArgument");
    }
    if (!Number.isSafeInteger(desc.size) || desc.size < 0) {
      throw new InvalidArgumentError(`${this.#target.ref}: descriptor ${desc.digest} has an invalid size`);
    }
  }

  async push(desc: Descriptor, opts: PushOptions = {}): Promise<Writer> {
    this.#check(desc);
    if (isManifestType(desc.mediaType)) return this.#pushManifestWriter(desc, opts);
    return this.#pushBlobWriter(desc, opts);
  }

  /** Whether the repository has a manifest under `object` (a digest, or a tag pointing at `desc`). */
  async #manifestExists(desc: Descriptor, object: string, signal?: AbortSignal): Promise<boolean> {
    const spec = this.#uploads.spec("HEAD", `/manifests/${object}`, `checking manifest ${object}`, { signal });
    spec.headers = { accept: [...new Set([desc.mediaType, ...MANIFEST_ACCEPT])].join(", ") };
    const res = await this.#uploads.send(spec);
    await drain(res.body);
    if (res.status === 404) return false;
    if (res.status !== 200) throw await this.#uploads.fail(res, spec);
    if (object === desc.digest) return true;
    return header(res.headers, "docker-content-digest") === desc.digest;
  }

  async #putManifest(desc: Descriptor, object: string, body: Buffer, signal?: AbortSignal): Promise<void> {
    const what = object === desc.digest ? `pushing manifest ${desc.digest}` : `tagging ${desc.digest} as ${object}`;
    const spec = this.#uploads.spec("PUT", `/manifests/${object}`, what, {
      signal,
      headers: { "content-type": desc.mediaType },
      body,
    });
    const res = await this.#uploads.send(spec);
    if (res.status !== 201 && res.status !== 200 && res.status !== 202) throw await this.#uploads.fail(res, spec);
    await drain(res.body);
    const got = header(res.headers, "docker-content-digest");
    if (got && got !== desc.digest) {
      throw new DataLossError(
        `${this.#target.ref}: registry stored manifest as ${got.slice(0, 100)}, expected ${desc.digest}`,
      );
    }
  }

  /**
   * PUTs a manifest or index from its bytes (checked against the descriptor):
   * under `tag` when given, else by digest; "exists" when the registry has it
   * there already.
   */
  async pushManifest(
    desc: Descriptor,
    bytes: Buffer,
    opts: { tag?: string; signal?: AbortSignal } = {},
  ): Promise<PushStatus> {
    this.#check(desc);
    checkSize(`${this.#target.ref}: manifest ${desc.digest}`, desc.size, MAX_MANIFEST_SIZE);
    if (bytes.length !== desc.size || digestOf(bytes, algorithmOf(desc.digest)) !== desc.digest) {
      throw new DataLossError(`${this.#target.ref}: manifest ${desc.digest}: bytes do not match the descriptor`);
    }
    if (opts.tag !== undefined && !isValidTag(opts.tag)) {
      throw new InvalidArgumentError(`${this.#target.ref}: invalid tag "${opts.tag}"`);
    }
    const object = opts.tag ?? desc.digest;
    if (await this.#manifestExists(desc, object, opts.signal)) return "exists";
    await this.#putManifest(desc, object, bytes, opts.signal);
    return "pushed";
  }

  /**
   * Lists `referrer` in the subject's referrers tag (`sha256-<hex>`, the OCI
   * 1.1 fallback for registries without the referrers API), given the
   * descriptors that tag lists now. False when it was listed already.
   */
  async addReferrerToTag(
    subject: Descriptor,
    referrer: Descriptor,
    listed: Descriptor[],
    signal?: AbortSignal,
  ): Promise<boolean> {
    if (listed.some((d) => d.digest === referrer.digest)) return false;
    const entry: Descriptor = { mediaType: referrer.mediaType, digest: referrer.digest, size: referrer.size };
    if (referrer.artifactType) entry.artifactType = referrer.artifactType;
    if (referrer.annotations) entry.annotations = referrer.annotations;
    const index = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [...listed, entry] };
    const body = Buffer.from(JSON.stringify(index));
    checkSize(`${this.#target.ref}: referrers of ${subject.digest}`, body.length, MAX_MANIFEST_SIZE);
    const desc: Descriptor = { mediaType: MediaType.OciIndex, digest: digestOf(body), size: body.length };
    await this.#putManifest(desc, referrersTag(subject.digest), body, signal);
    return true;
  }

  /**
   * Uploads a blob read from `open(offset)` (see the module's comment). The
   * registry verifies the digest on the final PUT; a monolithic upload is
   * verified here too, before it is sent.
   */
  async pushBlob(desc: Descriptor, open: OpenAt, opts: BlobPushOptions = {}): Promise<PushStatus> {
    this.#check(desc);
    const { signal } = opts;
    const ref = this.#target.ref;
    if (await this.#uploads.exists(desc, signal)) return "exists";
    const started = await this.#uploads.start(desc, { mountFrom: opts.mountFrom, signal });
    if (started.mounted) return "mounted";
    let location = started.location;
    opts.onProgress?.(0);
    try {
      if (desc.size <= (opts.monolithicMax ?? MONOLITHIC_MAX)) {
        const body = await readVerified(await open(0), desc, `${ref}: pushing blob ${desc.digest}`);
        await this.#uploads.complete(location, desc, body, signal);
        opts.onProgress?.(desc.size);
        return "pushed";
      }
      location = await this.#chunked(desc, open, location, opts);
      await this.#uploads.complete(location, desc, undefined, signal);
    } catch (err) {
      if (!signal?.aborted) await this.#uploads.cancel(location);
      throw err;
    }
    return "pushed";
  }

  /** Sends a blob in PATCH chunks, resuming from the registry's offset after a failure; the session's last location. */
  async #chunked(desc: Descriptor, open: OpenAt, first: URL, opts: BlobPushOptions): Promise<URL> {
    const { signal } = opts;
    const chunk = Math.max(1, opts.chunkSize ?? CHUNK_SIZE);
    const what = `uploading blob ${desc.digest}`;
    let location = first;
    let offset = 0;
    let failures = 0;
    for (;;) {
      let reader: ChunkReader | undefined;
      try {
        reader = new ChunkReader(await open(offset), desc, `${this.#target.ref}: ${what}`);
        while (offset < desc.size) {
          const n = Math.min(chunk, desc.size - offset);
          const from = offset;
          const body = Readable.from(
            reader.take(n, (sent) => opts.onProgress?.(from + sent)),
            { objectMode: false },
          );
          const r = await this.#uploads.patch(location, body, from, n, signal);
          location = r.location;
          if (r.offset > desc.size) {
            throw new DataLossError(
              `${this.#target.ref}: ${what}: the registry holds ${r.offset} bytes of ${desc.size}`,
            );
          }
          if (r.offset !== from + n) {
            // the registry kept another amount: continue from what it holds
            offset = r.offset;
            throw new ResyncError();
          }
          offset = from + n;
        }
        // the source must end here (a verifying source checks its digest at its end)
        await reader.end();
        return location;
      } catch (err) {
        reader?.destroy();
        if (signal?.aborted) throw signal.reason;
        const resync = err instanceof ResyncError;
        if (!resync && !isResumable(err)) throw err;
        if (++failures > this.#client.retries)
          throw resync ? new DataLossError(`${this.#target.ref}: ${what}: the registry kept losing bytes`) : err;
        const delay = this.#client.backoff(failures - 1);
        await sleep(delay, signal);
        if (resync) continue;
        const at = await this.#uploads.status(location, signal).catch(() => undefined);
        if (at && at.offset <= desc.size) {
          location = at.location;
          this.#client.opts.onWarning?.(
            `${this.#target.ref}: ${what}: the chunk from byte ${offset} failed (${errorText(err)}); resuming from the registry's offset ${at.offset}`,
          );
          offset = at.offset;
        } else {
          location = await this.#uploads.begin(desc, signal);
          this.#client.opts.onWarning?.(
            `${this.#target.ref}: ${what}: the chunk from byte ${offset} failed (${errorText(err)}); the registry dropped the upload, starting over`,
          );
          offset = 0;
        }
      }
    }
  }

  async #pushManifestWriter(desc: Descriptor, opts: PushOptions): Promise<Writer> {
    checkSize(`${this.#target.ref}: manifest ${desc.digest}`, desc.size, MAX_MANIFEST_SIZE);
    const object = this.manifestObject(desc);
    if (object === desc.digest && (await this.#manifestExists(desc, object, opts.signal))) {
      throw new AlreadyExistsError(`${this.#target.ref}: manifest ${desc.digest} already exists`);
    }
    return new BufferWriter(desc, this.#target.ref, (body) => this.#putManifest(desc, object, body, opts.signal));
  }

  async #pushBlobWriter(desc: Descriptor, opts: PushOptions): Promise<Writer> {
    if (await this.#uploads.exists(desc, opts.signal)) {
      throw new AlreadyExistsError(`${this.#target.ref}: blob ${desc.digest} already exists`);
    }
    const started = await this.#uploads.start(desc, { mountFrom: opts.mountFrom, signal: opts.signal });
    if (started.mounted) {
      throw new AlreadyExistsError(`${this.#target.ref}: blob ${desc.digest} mounted from ${opts.mountFrom}`);
    }
    return new UploadWriter(this.#uploads, desc, started.location, opts.signal);
  }
}

/** Thrown inside the chunk loop when the registry holds another amount than was sent. */
class ResyncError extends Error {}

/** Failures an upload recovers from by asking the session where it stands: transient ones, and a 416. */
function isResumable(err: unknown): boolean {
  return isErrorCode(err, "Unavailable") || isErrorCode(err, "OutOfRange") || isRetryableNetworkError(err);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Hands a source out in consecutive slices of exact sizes (one per PATCH):
 * `take(n)` yields the next n bytes, `end()` checks the source has nothing
 * more (and lets a verifying source finish its check).
 */
class ChunkReader {
  readonly #source: Source;
  readonly #it: AsyncIterator<Uint8Array>;
  readonly #desc: Descriptor;
  readonly #what: string;
  #rest: Buffer | undefined;

  constructor(source: Source, desc: Descriptor, what: string) {
    this.#source = source;
    this.#it = (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
    this.#desc = desc;
    this.#what = what;
  }

  async *take(n: number, onSent: (sent: number) => void): AsyncGenerator<Buffer> {
    let sent = 0;
    while (sent < n) {
      let b = this.#rest;
      this.#rest = undefined;
      if (!b) {
        const r = await this.#it.next();
        if (r.done) {
          throw new DataLossError(`${this.#what}: the source ended early (the blob is ${this.#desc.size} bytes)`);
        }
        const v = r.value;
        b = Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      }
      if (b.length > n - sent) {
        this.#rest = b.subarray(n - sent);
        b = b.subarray(0, n - sent);
      }
      sent += b.length;
      yield b;
      onSent(sent);
    }
  }

  async end(): Promise<void> {
    if (this.#rest && this.#rest.length > 0) throw this.#overflow();
    for (;;) {
      const r = await this.#it.next();
      if (r.done) return;
      if (r.value.byteLength > 0) throw this.#overflow();
    }
  }

  #overflow(): DataLossError {
    return new DataLossError(`${this.#what}: the source has more than the expected ${this.#desc.size} bytes`);
  }

  destroy(): void {
    if (this.#source instanceof Readable) this.#source.destroy();
    else void this.#it.return?.().catch(() => {});
  }
}

function newStatus(ref: string, desc: Descriptor): Status {
  const now = new Date();
  return { ref, offset: 0, total: desc.size, expected: desc.digest, startedAt: now, updatedAt: now };
}

function checkCommit(
  ref: string,
  desc: Descriptor,
  got: { size: number; digest: Digest },
  size?: number,
  expected?: Digest,
) {
  const wantSize = size ?? desc.size;
  const wantDigest = expected ?? desc.digest;
  if (got.size !== wantSize) {
    throw new FailedPreconditionError(`${ref}: ${desc.digest}: wrote ${got.size} bytes, expected ${wantSize}`);
  }
  if (got.digest !== wantDigest) {
    throw new FailedPreconditionError(`${ref}: unexpected commit digest ${got.digest}, expected ${wantDigest}`);
  }
}

/** Collects a manifest in memory; commit sends it. */
class BufferWriter implements Writer {
  readonly #desc: Descriptor;
  readonly #ref: string;
  readonly #put: (body: Buffer) => Promise<void>;
  #chunks: Buffer[] = [];
  #digester: Digester;
  #status: Status;

  constructor(desc: Descriptor, ref: string, put: (body: Buffer) => Promise<void>) {
    this.#desc = desc;
    this.#ref = ref;
    this.#put = put;
    this.#digester = new Digester(algorithmOf(desc.digest));
    this.#status = newStatus(`push-${desc.digest}`, desc);
  }
  async write(chunk: Uint8Array): Promise<void> {
    if (this.#status.offset + chunk.length > MAX_MANIFEST_SIZE) {
      throw tooLarge(`${this.#ref}: manifest ${this.#desc.digest}`, undefined, MAX_MANIFEST_SIZE);
    }
    const b = Buffer.from(chunk);
    this.#chunks.push(b);
    this.#digester.update(b);
    this.#status.offset += b.length;
    this.#status.updatedAt = new Date();
  }
  status(): Status {
    return { ...this.#status };
  }
  digest(): Digest {
    return this.#digester.digest();
  }
  async commit(size?: number, expected?: Digest): Promise<void> {
    checkCommit(this.#ref, this.#desc, { size: this.#status.offset, digest: this.digest() }, size, expected);
    await this.#put(Buffer.concat(this.#chunks));
    this.#chunks = [];
  }
  async close(): Promise<void> {
    this.#chunks = [];
  }
  async truncate(size: 0): Promise<void> {
    if (size !== 0) throw new InvalidArgumentError("truncate: only 0 is supported");
    this.#chunks = [];
    this.#digester = new Digester(algorithmOf(this.#desc.digest));
    this.#status.offset = 0;
  }
}

/** Streams a blob into an upload session: one PATCH fed by write(), PUT ?digest= on commit. */
class UploadWriter implements Writer {
  readonly #uploads: UploadSessions;
  readonly #desc: Descriptor;
  readonly #signal?: AbortSignal;
  #location: URL;
  #digester: Digester;
  #status: Status;
  #body: PassThrough | undefined;
  #patch: Promise<RegistryResponse> | undefined;
  #patchError: unknown;
  #done = false;

  constructor(uploads: UploadSessions, desc: Descriptor, location: URL, signal?: AbortSignal) {
    this.#uploads = uploads;
    this.#desc = desc;
    this.#location = location;
    this.#signal = signal;
    this.#digester = new Digester(algorithmOf(desc.digest));
    this.#status = newStatus(`push-${desc.digest}`, desc);
  }

  #startPatch(): PassThrough {
    const body = new PassThrough({ highWaterMark: 1 << 20 });
    this.#body = body;
    this.#patch = this.#uploads.send(
      this.#uploads.spec("PATCH", this.#location, `uploading ${this.#desc.digest}`, {
        signal: this.#signal,
        headers: { "content-type": "application/octet-stream" },
        body,
      }),
    );
    this.#patch.catch((err: unknown) => {
      this.#patchError = err;
      body.destroy();
    });
    return body;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.#done) throw new FailedPreconditionError(`${this.#uploads.ref}: upload of ${this.#desc.digest} is closed`);
    if (this.#patchError) throw this.#patchError;
    const body = this.#body ?? this.#startPatch();
    this.#digester.update(chunk);
    this.#status.offset += chunk.length;
    this.#status.updatedAt = new Date();
    if (!body.write(chunk)) {
      const patch = this.#patch as Promise<RegistryResponse>;
      await new Promise<void>((resolve) => {
        body.once("drain", resolve);
        body.once("close", resolve);
        patch.then(
          () => resolve(),
          () => resolve(),
        );
      });
    }
    if (this.#patchError) throw this.#patchError;
  }

  status(): Status {
    return { ...this.#status };
  }

  digest(): Digest {
    return this.#digester.digest();
  }

  async commit(size?: number, expected?: Digest): Promise<void> {
    const ref = this.#uploads.ref;
    if (this.#done) throw new FailedPreconditionError(`${ref}: upload of ${this.#desc.digest} is closed`);
    try {
      checkCommit(ref, this.#desc, { size: this.#status.offset, digest: this.digest() }, size, expected);
    } catch (err) {
      await this.close();
      throw err;
    }
    if (this.#body && this.#patch) {
      this.#body.end();
      const res = await this.#patch;
      if (res.status !== 202 && res.status !== 204) {
        this.#done = true;
        throw await this.#uploads.fail(res, { ref, what: `uploading ${this.#desc.digest}` });
      }
      await drain(res.body);
      const loc = header(res.headers, "location");
      if (loc) this.#location = new URL(loc, res.url);
    }
    this.#done = true;
    await this.#uploads.complete(this.#location, this.#desc, undefined, this.#signal);
  }

  /** Abandons the upload: the registry's session is cancelled (best effort). */
  async close(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    this.#body?.destroy();
    await this.#patch?.then(
      (r) => drain(r.body),
      () => {},
    );
    await this.#uploads.cancel(this.#location);
  }

  async truncate(size: 0): Promise<void> {
    if (size !== 0) throw new InvalidArgumentError("truncate: only 0 is supported");
    if (this.#status.offset === 0) return;
    throw new FailedPreconditionError(
      `${this.#uploads.ref}: an upload cannot be rewound; close it and push ${this.#desc.digest} again`,
    );
  }
}
