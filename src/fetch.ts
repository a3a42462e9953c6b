/**
 * The fetch flow: resolve a reference, then walk its descriptors with the
 * fetch handler, the children handler and the platform filter, so every blob
 * of the selected platforms lands in the content store, verified. `dist fetch`
 * records the name; `dist pull` reuses this with an unpack step plugged in.
 */
import { PassThrough, type Readable } from "node:stream";
import type { Ingester, Provider, Writer } from "./content/content.ts";
import type { Descriptor } from "./descriptor.ts";
import { algorithmOf, digestOf } from "./digest.ts";
import { DataLossError, DistError, errorMessage, isAlreadyExists, isErrorCode, isNotFound } from "./errors.ts";
import { childrenHandler, filterPlatforms, type NoteFn } from "./images/children.ts";
import {
  DEFAULT_MAX_CONCURRENT_DOWNLOADS,
  dispatch,
  type Handler,
  handlers,
  Limiter,
  SKIP,
} from "./images/handlers.ts";
import type { ImageStore } from "./images/image.ts";
import { childrenOf, MAX_MANIFEST_SIZE, refuseSchema1 } from "./images/manifest.ts";
import {
  descriptorKind,
  isAttestationManifest,
  isForeignLayer,
  isIndex,
  isManifest,
  isSchema1,
  refKey,
} from "./images/mediatypes.ts";
import { defaultMatcher, type PlatformMatcher } from "./images/platforms.ts";
import type { ProgressTracker } from "./progress/tracker.ts";
import type { Fetcher, Resolver } from "./remotes/remotes.ts";
import { chunksHandled } from "./sys/heap.ts";

export { DEFAULT_MAX_CONCURRENT_DOWNLOADS } from "./images/handlers.ts";

export type ContentTarget = Provider & Ingester;

/**
 * Receives a blob's bytes while they are being written to the store (one pass:
 * network → digest → store, and on to the consumer). Called only for downloads
 * that start at byte 0; the stream ends only after the blob was verified and
 * committed, and errors if the download or the verification fails. A consumer
 * that needs a blob that was resumed or already present reads it from the store.
 */
export type StreamTap = (desc: Descriptor, stream: Readable) => void;

export type BlobResult = "done" | "exists" | "skipped";

export interface FetchBlobOptions {
  signal?: AbortSignal;
  progress?: ProgressTracker;
  /** Bounds concurrent network transfers; the slot is held only while bytes flow. */
  limiter?: Limiter;
  onStream?: StreamTap;
}

/**
 * Copies one blob from the fetcher into the store under its refKey, resuming a
 * partial ingest and skipping content already present. Sizes and digests are
 * those of the descriptor: more bytes than it says is an error, and a blob that
 * fails verification is discarded, never committed.
 */
export async function fetchBlob(
  store: ContentTarget,
  fetcher: Fetcher,
  desc: Descriptor,
  opts: FetchBlobOptions = {},
): Promise<BlobResult> {
  const key = refKey(desc);
  const progress = opts.progress;
  progress?.update(key, { state: "waiting", total: desc.size });
  if ((isManifest(desc.mediaType) || isIndex(desc.mediaType)) && desc.size > MAX_MANIFEST_SIZE) {
    throw new DataLossError(`${key}: ${desc.size} bytes is over the ${MAX_MANIFEST_SIZE}-byte manifest limit`);
  }
  if (await present(store, desc)) {
    progress?.update(key, { state: "exists" });
    return "exists";
  }
  const run = async (): Promise<BlobResult> => {
    // a manifest is checked whole before a writer exists, so a bad one leaves no trace
    const manifest =
      isManifest(desc.mediaType) || isIndex(desc.mediaType) ? await readManifest(fetcher, desc, key, opts) : undefined;
    let w: Writer;
    try {
      w = await store.writer({ ref: key, total: desc.size, expected: desc.digest, signal: opts.signal });
    } catch (err) {
      if (isAlreadyExists(err)) {
        progress?.update(key, { state: "exists" });
        return "exists";
      }
      throw err;
    }
    if (manifest) return writeWhole(w, manifest, desc, key, opts);
    return copyInto(w, fetcher, desc, key, opts);
  };
  try {
    return await (opts.limiter ? opts.limiter.run(run, opts.signal) : run());
  } catch (err) {
    throw withKey(key, err);
  }
}

/** A system error (ENOSPC, EACCES…) gets the blob's key; typed errors already say what failed. */
function withKey(key: string, err: unknown): unknown {
  if (err instanceof DistError || !(err instanceof Error) || err.name === "AbortError") return err;
  if (typeof (err as NodeJS.ErrnoException).syscall !== "string") return err;
  const e = new Error(`${key}: storing the blob: ${err.message}`, { cause: err });
  (e as NodeJS.ErrnoException).code = (err as NodeJS.ErrnoException).code;
  return e;
}

async function present(store: Provider, desc: Descriptor): Promise<boolean> {
  try {
    const info = await store.info(desc.digest);
    return info.size === desc.size;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

async function copyInto(
  w: Writer,
  fetcher: Fetcher,
  desc: Descriptor,
  key: string,
  opts: FetchBlobOptions,
): Promise<BlobResult> {
  const progress = opts.progress;
  let tap: PassThrough | undefined;
  let committed = false;
  try {
    let offset = w.status().offset;
    if (offset > desc.size) {
      await w.truncate(0);
      offset = 0;
    }
    let body: Readable;
    // the writer hashes every byte and verifies the digest on commit: one hash, not two
    const verify = false;
    try {
      body = await fetcher.fetch(desc, { offset, signal: opts.signal, verify });
    } catch (err) {
      // a registry that refuses the range: start over from the beginning
      if (offset === 0 || opts.signal?.aborted) throw err;
      await w.truncate(0);
      offset = 0;
      body = await fetcher.fetch(desc, { offset: 0, signal: opts.signal, verify });
    }
    if (offset === 0 && opts.onStream) {
      tap = new PassThrough({ highWaterMark: 1 << 20 });
      opts.onStream(desc, tap);
    }
    progress?.update(key, { state: "downloading", offset, startOffset: offset, total: desc.size });
    let n = offset;
    // network chunks are gathered into 1 MiB writes, one write in flight while the next batch arrives
    const batch = new WriteBatcher(w);
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        n += chunk.length;
        if (n > desc.size) {
          body.destroy();
          throw new DataLossError(`${key}: the registry sent more than the ${desc.size} bytes its descriptor says`);
        }
        const wait = batch.add(chunk);
        if (wait) await wait;
        if (tap && !tap.destroyed && !tap.write(chunk)) await drained(tap, opts.signal);
        progress?.update(key, { offset: n });
        chunksHandled(chunk.length);
      }
      await batch.flush();
    } catch (err) {
      // keep the bytes that arrived for a resume; bytes known to be bad are dropped below
      if (!(err instanceof DataLossError)) await batch.flush().catch(() => {});
      throw err;
    } finally {
      await batch.settle().catch(() => {});
      batch.release();
    }
    if (n !== desc.size) throw new DataLossError(`${key}: got ${n} bytes, expected ${desc.size}`);
    progress?.update(key, { state: "committing" });
    try {
      await w.commit(desc.size, desc.digest);
    } catch (err) {
      if (isErrorCode(err, "FailedPrecondition")) {
        // the size was checked above: the registry's bytes do not hash to the digest (the writer discarded them)
        throw new DataLossError(`${key}: digest mismatch: ${errorMessage(err)}`, { cause: err });
      }
      if (!isAlreadyExists(err)) throw err;
    }
    committed = true;
    tap?.end();
    progress?.update(key, { state: "done" });
    return "done";
  } catch (err) {
    tap?.destroy(err instanceof Error ? err : new Error(errorMessage(err)));
    if (!committed) {
      // bytes that failed verification must not be resumed later
      if (err instanceof DataLossError) await w.truncate(0).catch(() => {});
      await w.close().catch(() => {});
    }
    throw err;
  }
}

/**
 * Manifests and indexes are read whole (they are capped), verified and parsed
 * before anything is written, so a malformed one or one naming invalid
 * digests never reaches the store.
 */
async function readManifest(fetcher: Fetcher, desc: Descriptor, key: string, opts: FetchBlobOptions): Promise<Buffer> {
  opts.progress?.update(key, { state: "downloading", offset: 0, startOffset: 0, total: desc.size });
  const body = await fetcher.fetch(desc, { signal: opts.signal });
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > desc.size) {
      body.destroy();
      throw new DataLossError(`${key}: the registry sent more than the ${desc.size} bytes its descriptor says`);
    }
    chunks.push(chunk);
  }
  const bytes = Buffer.concat(chunks, n);
  if (n !== desc.size) throw new DataLossError(`${key}: got ${n} bytes, expected ${desc.size}`);
  const actual = digestOf(bytes, algorithmOf(desc.digest));
  if (actual !== desc.digest) throw new DataLossError(`${key}: digest mismatch: got ${actual}`);
  childrenOf(desc, bytes);
  opts.progress?.update(key, { offset: n });
  return bytes;
}

async function writeWhole(
  w: Writer,
  bytes: Buffer,
  desc: Descriptor,
  key: string,
  opts: FetchBlobOptions,
): Promise<BlobResult> {
  try {
    if (w.status().offset > 0) await w.truncate(0);
    await w.write(bytes);
    opts.progress?.update(key, { state: "committing" });
    try {
      await w.commit(desc.size, desc.digest);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
  } catch (err) {
    await w.close().catch(() => {});
    throw err;
  }
  opts.progress?.update(key, { state: "done" });
  return "done";
}

const WRITE_BATCH = 1 << 20;
/**
 * Batch buffers kept for the next download. Only one download's worth: once the
 * downloads are over (a pull then unpacks for seconds) a fuller pool was ~9 MiB
 * of the process's peak RSS holding nothing.
 */
const POOL_MAX = 2;
const pool: Buffer[] = [];

/**
 * Copies chunks into WRITE_BATCH-sized writes through two buffers used in turn:
 * one is being written while the other fills. The buffers are reused (a writer
 * is done with a buffer once its write resolves) and pooled across downloads,
 * so a transfer leaves no garbage per megabyte: dead buffers wait for the
 * garbage collector outside the JS heap, and that shows in the process's RSS.
 */
class WriteBatcher {
  readonly #w: Writer;
  readonly #bufs: Buffer[] = [];
  /** Index of the buffer being filled. */
  #cur = 0;
  #fill = 0;
  #inflight: Promise<void> | undefined;
  constructor(w: Writer) {
    this.#w = w;
  }
  /** Takes a chunk; a promise only when a write had to be waited for (most chunks just copy). */
  add(chunk: Buffer): Promise<void> | undefined {
    let off = 0;
    while (off < chunk.length) {
      if (!this.#bufs[this.#cur]) this.#bufs[this.#cur] = pool.pop() ?? Buffer.allocUnsafeSlow(WRITE_BATCH);
      const n = chunk.copy(this.#bufs[this.#cur], this.#fill, off);
      this.#fill += n;
      off += n;
      if (this.#fill === WRITE_BATCH) return this.#startThenAdd(chunk.subarray(off));
    }
    return undefined;
  }
  async #startThenAdd(rest: Buffer): Promise<void> {
    await this.#start();
    if (rest.length > 0) await this.add(rest);
  }
  async #start(): Promise<void> {
    // the other buffer must be written before it is filled again
    await this.settle();
    if (this.#fill === 0) return;
    const p = this.#w.write(this.#bufs[this.#cur].subarray(0, this.#fill));
    // an error surfaces at the next settle(); until then it must not be unhandled
    p.catch(() => {});
    this.#inflight = p;
    this.#cur ^= 1;
    this.#fill = 0;
  }
  /** Writes what is left and waits for it. */
  async flush(): Promise<void> {
    await this.#start();
    await this.settle();
  }
  /** Waits for the write in flight, if any, rethrowing its error. */
  async settle(): Promise<void> {
    const p = this.#inflight;
    this.#inflight = undefined;
    if (p) await p;
  }
  /** Gives the buffers back to the pool; only once no write is in flight (after settle). */
  release(): void {
    if (this.#inflight) return;
    for (const b of this.#bufs.splice(0)) if (b && pool.length < POOL_MAX) pool.push(b);
    this.#fill = 0;
  }
}

function drained(s: PassThrough, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      s.off("drain", done);
      s.off("close", done);
      signal?.removeEventListener("abort", onAbort);
      resolve();
    };
    const onAbort = () => {
      done();
      reject(signal?.reason);
    };
    s.once("drain", done);
    // a consumer that went away must not stall the download
    s.once("close", done);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export interface FetchHandlerOptions extends FetchBlobOptions {
  note?: NoteFn;
}

/**
 * The fetch handler: fetches a descriptor into the store (no children; compose
 * with childrenHandler). A blob fetched twice in one walk is fetched once.
 * Non-distributable layers are skipped with a note.
 */
export function fetchHandler(store: ContentTarget, fetcher: Fetcher, opts: FetchHandlerOptions = {}): Handler {
  const inflight = new Map<string, Promise<BlobResult>>();
  return async (desc, signal) => {
    refuseSchema1(desc);
    if (isForeignLayer(desc.mediaType)) {
      opts.note?.(desc, `skipped non-distributable layer ${desc.digest}`);
      opts.progress?.update(refKey(desc), { state: "skipped", total: desc.size });
      throw SKIP;
    }
    let p = inflight.get(desc.digest);
    if (!p) {
      p = fetchBlob(store, fetcher, desc, { ...opts, signal });
      inflight.set(desc.digest, p);
      p.catch(() => inflight.delete(desc.digest));
    }
    await p;
    return [];
  };
}

export interface FetchImageOptions {
  resolver: Resolver;
  store: ContentTarget;
  ref: string;
  /** One matcher per requested platform (each keeps its best manifest); allPlatforms() for all. Default: the host. */
  platforms?: PlatformMatcher[];
  /** Concurrent downloads (default 3). */
  limit?: number;
  signal?: AbortSignal;
  progress?: ProgressTracker;
  /** Notes about what the walk leaves out (attestations, foreign layers). */
  onNote?: NoteFn;
  /** Receives each downloaded blob's bytes as they arrive (see StreamTap). */
  onLayerStream?: StreamTap;
  /**
   * Wraps the per-descriptor handler (fetch, then children through the platform
   * filter), e.g. to unpack layers as they arrive. The wrapper sees every
   * descriptor and may await its own work: download slots are not held meanwhile.
   */
  handlerWrapper?: (h: Handler) => Handler;
  /** When given, the resolved name is recorded there → target after a complete fetch. */
  images?: ImageStore;
  /** Labels for the image record. */
  labels?: Record<string, string>;
}

export interface FetchImageResult {
  /** The canonical name the resolver returned (docker.io/library/redis:latest). */
  name: string;
  target: Descriptor;
  /** The image manifests fetched (one per selected platform), attestations left out. */
  manifests: Descriptor[];
}

/** resolve → dispatch(fetch + children + platform filter) → optionally images.put(name → target). */
export async function fetchImage(opts: FetchImageOptions): Promise<FetchImageResult> {
  const { resolver, store, ref, progress, signal } = opts;
  progress?.update(ref, { state: "resolving" });
  const resolved = await resolver.resolve(ref, { signal });
  refuseSchema1(resolved.desc, ref);
  progress?.update(ref, { state: "resolved" });
  const fetcher = await resolver.fetcher(resolved.name);
  const limiter = new Limiter(opts.limit ?? DEFAULT_MAX_CONCURRENT_DOWNLOADS);
  const manifests = new Map<string, Descriptor>();

  const fetch = fetchHandler(store, fetcher, {
    limiter,
    progress,
    onStream: opts.onLayerStream,
    note: opts.onNote,
  });
  const children = filterPlatforms(childrenHandler(store), opts.platforms ?? [defaultMatcher()], opts.onNote);
  const record: Handler = async (desc) => {
    if (isManifest(desc.mediaType) && !isAttestationManifest(desc)) manifests.set(desc.digest, desc);
    if (descriptorKind(desc) === "unknown" && !isSchema1(desc.mediaType)) {
      opts.onNote?.(desc, `unknown media type ${desc.mediaType} (${desc.digest}): stored as a blob, not interpreted`);
    }
    return [];
  };
  // children are shown as waiting as soon as they are known, as containerd's table does
  const announce: Handler = async (desc, sig) => {
    const kids = await children(desc, sig);
    for (const k of kids)
      if (!isForeignLayer(k.mediaType)) progress?.update(refKey(k), { state: "waiting", total: k.size });
    return kids;
  };
  let handler = handlers(record, fetch, announce);
  if (opts.handlerWrapper) handler = opts.handlerWrapper(handler);
  await dispatch(handler, [resolved.desc], { signal });

  if (opts.images) {
    await opts.images.put({ name: resolved.name, target: resolved.desc, labels: opts.labels ?? {} });
  }
  return { name: resolved.name, target: resolved.desc, manifests: [...manifests.values()] };
}

/** Fetches just the object a reference resolves to (a manifest or an index), as a verified stream. */
export async function fetchObject(
  resolver: Resolver,
  ref: string,
  opts: { signal?: AbortSignal } = {},
): Promise<{ name: string; desc: Descriptor; stream: Readable }> {
  const resolved = await resolver.resolve(ref, { signal: opts.signal });
  refuseSchema1(resolved.desc, ref);
  const fetcher = await resolver.fetcher(resolved.name);
  const stream = await fetcher.fetch(resolved.desc, { signal: opts.signal });
  return { name: resolved.name, desc: resolved.desc, stream };
}
