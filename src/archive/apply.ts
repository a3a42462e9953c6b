/**
 * applyLayer: applies a (possibly compressed) layer tar onto a directory with the
 * OCI changeset rules, computing the diffID of the uncompressed bytes on the way.
 *
 * The bytes flow: source (a stream, or a file the worker reads itself) →
 * [sha256 of a stream's compressed bytes, unless `verified`] → the inflater's
 * worker (decompression and the diffID sha256, inflater.ts) → shared slots read
 * in place by the tar parser and applier, which make the files with
 * synchronous syscalls, one chunk at a time (applier.ts; the rules and the
 * path-safety policy are described there). With `worker: true` the applier runs
 * in a worker thread fed through a fixed pool of shared slots. Memory stays flat
 * whatever the layer size.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync, realpathSync, statSync } from "node:fs";
import { type Readable, Transform } from "node:stream";
import { Worker } from "node:worker_threads";
import { type Digest, Digester } from "../digest.ts";
import { type ErrorCode, errorFromCode, InvalidArgumentError, NotFoundError } from "../errors.ts";
import { chunksHandled } from "../memory.ts";
import { LayerApplier } from "./applier.ts";
import type { FromWorker, ToWorker, WorkerInit } from "./apply-worker.ts";
import { type Compression, detectCompression, peek } from "./compression.ts";
import { type InflateFile, InflateJob } from "./inflater.ts";
import { TarParser } from "./tar/reader.ts";

export interface ApplyOptions {
  signal?: AbortSignal;
  /** Apply numeric ownership from the headers (lchown). Default: running as root. */
  sameOwner?: boolean;
  /** Write overlay-style whiteouts into an upperdir instead of deleting. */
  convertWhiteout?: "overlay";
  /** Overlay: lower layers, immediate parent first (hardlink copy-up, symlinked parents). */
  lowerDirs?: string[];
  /** Non-fatal problems (xattrs the filesystem refuses, devices skipped without root). */
  onWarning?: (message: string) => void;
  /**
   * Run the applier in a worker thread (default: on the calling thread, a chunk at a
   * time). Measured on 2 cores: no faster (zlib already runs on the libuv pool) and
   * ~45 MiB more RSS per apply (the worker's own isolate and TypeScript loader).
   */
  worker?: boolean;
  /**
   * The caller verified the compressed bytes already (the content store checks a
   * blob's digest): do not hash them again. compressedDigest is then undefined.
   */
  verified?: boolean;
  /** Names the source in decompression errors (e.g. "layer sha256:…"). */
  what?: string;
  /** Compressed bytes of the layer consumed so far, as they go. */
  onProgress?: (bytes: number) => void;
}

export interface ApplyResult {
  /** sha256 of the uncompressed tar. */
  diffID: Digest;
  /** Bytes of the uncompressed tar. */
  size: number;
  compression: Compression;
  /** sha256 of the bytes as read, when they were compressed (and not `verified`); streams only. */
  compressedDigest?: Digest;
}

/** The shared slots between the main thread and the applier worker: 8 MiB in flight at most. */
const SLOTS = 8;
const SLOT_SIZE = 1 << 20;

/** The umask without changing it (process.umask() cannot be called in workers). */
function currentUmask(): number {
  try {
    const m = /^Umask:\s*([0-7]+)/m.exec(readFileSync("/proc/self/status", "utf8"));
    if (m) return Number.parseInt(m[1], 8);
  } catch {
    // not Linux procfs: assume the usual
  }
  return 0o022;
}

function revive(e: { message: string; code?: string; name?: string }): Error {
  if (e.name?.endsWith("Error") && e.code && /^[A-Z][a-zA-Z]+$/.test(e.code)) {
    return errorFromCode(e.code as ErrorCode, e.message);
  }
  const err = new Error(e.message) as Error & { code?: string };
  if (e.code) err.code = e.code;
  return err;
}

/** What an applier needs to start: the root and its options. */
type ApplierInit = Omit<WorkerInit, "shared" | "slotSize">;

/** One apply's set-up, shared by the file and the stream paths. */
interface ApplyContext {
  init: ApplierInit;
  onWarning: (m: string) => void;
  opts: ApplyOptions;
}

/**
 * A layer in a local file (a blob of the content store): the decompression
 * worker reads it itself, so the main thread only makes the files.
 */
export interface LayerFile {
  path: string;
  /** Where the layer starts in the file (default 0). */
  offset?: number;
  /** Its length (default: to the end of the file). */
  length?: number;
}

function isLayerFile(layer: Readable | LayerFile): layer is LayerFile {
  return typeof (layer as Readable).pipe !== "function";
}

/** Opens a layer file's range and detects its compression from the first bytes. */
function openLayerFile(layer: LayerFile): { compression: Compression; file: InflateFile } {
  let fd: number;
  try {
    fd = openSync(layer.path, "r");
  } catch (e) {
    if ((e as { code?: string }).code === "ENOENT")
      throw new NotFoundError(`apply: layer file "${layer.path}" does not exist`);
    throw e;
  }
  try {
    const offset = layer.offset ?? 0;
    const length = layer.length ?? Math.max(0, fstatSync(fd).size - offset);
    const head = Buffer.alloc(4);
    const n = readSync(fd, head, 0, Math.min(4, length), offset);
    return { compression: detectCompression(head.subarray(0, n)), file: { path: layer.path, offset, length } };
  } finally {
    closeSync(fd);
  }
}

export async function applyLayer(
  root: string,
  layer: Readable | LayerFile,
  opts: ApplyOptions = {},
): Promise<ApplyResult> {
  let realRoot: string;
  try {
    realRoot = realpathSync(root);
    if (!statSync(realRoot).isDirectory()) throw new InvalidArgumentError(`apply: "${root}" is not a directory`);
  } catch (e) {
    if ((e as { code?: string }).code === "ENOENT")
      throw new NotFoundError(`apply: directory "${root}" does not exist`);
    throw e;
  }
  opts.signal?.throwIfAborted();
  const euid = process.geteuid?.() ?? -1;
  const init: ApplierInit = {
    root: realRoot,
    opts: {
      sameOwner: opts.sameOwner ?? euid === 0,
      convertWhiteout: opts.convertWhiteout,
      lowerDirs: opts.lowerDirs?.map((d) => realpathSync(d)),
      umask: currentUmask(),
      privileged: euid === 0,
    },
  };
  const onWarning = opts.onWarning ?? (() => {});
  const ctx: ApplyContext = { init, onWarning, opts };
  return isLayerFile(layer) ? applyFile(layer, ctx) : applyStream(layer, ctx);
}

/** Where the tar goes: the applier on this thread, or in a worker thread with `worker: true`. */
function openSink({ init, onWarning, opts }: ApplyContext): Sink {
  return opts.worker ? workerSink(init, onWarning) : inlineSink(init, onWarning);
}

async function applyFile(layer: LayerFile, ctx: ApplyContext): Promise<ApplyResult> {
  const { opts } = ctx;
  const { compression, file } = openLayerFile(layer);
  const sink = openSink(ctx);
  let job: InflateJob;
  try {
    job = new InflateJob(compression, opts.what, file);
  } catch (e) {
    sink.cancel(e);
    throw e;
  }
  const abort = () => {
    const reason = opts.signal?.reason ?? new Error("aborted");
    job.abort(reason);
    sink.cancel(reason);
  };
  opts.signal?.addEventListener("abort", abort, { once: true });
  try {
    for await (const chunk of job.chunks()) {
      await sink.push(chunk);
      opts.onProgress?.(job.bytesRead);
    }
    const result = job.result();
    await sink.end();
    return { ...result, compression };
  } catch (e) {
    job.abort(e);
    sink.cancel(e);
    throw opts.signal?.aborted ? (opts.signal.reason ?? e) : e;
  } finally {
    opts.signal?.removeEventListener("abort", abort);
  }
}

async function applyStream(layer: Readable, ctx: ApplyContext): Promise<ApplyResult> {
  const { opts } = ctx;
  // a stalled source must not outlive an abort, even before the first byte
  let onAbort = (): void => {
    layer.destroy(opts.signal?.reason ?? new Error("aborted"));
  };
  const abort = () => onAbort();
  opts.signal?.addEventListener("abort", abort, { once: true });
  let raw: Readable = layer;
  let compressedDigester: Digester | undefined;
  let compression: Compression;
  try {
    compression = detectCompression(await peek(layer, 4));
  } catch (e) {
    opts.signal?.removeEventListener("abort", abort);
    throw opts.signal?.aborted ? (opts.signal.reason ?? e) : e;
  }
  // the compressed digest is taken on the raw bytes, before decompression sees them
  if (!opts.verified && compression !== "none") {
    const d = new Digester();
    compressedDigester = d;
    const tap = new Transform({
      transform(c: Buffer, _enc, cb) {
        d.update(c);
        cb(null, c);
      },
    });
    layer.on("error", (e) => tap.destroy(e));
    raw = layer.pipe(tap);
  }
  const sink = openSink(ctx);
  // decompression and the diffID run on the inflater's worker; the tar is parsed here
  let job: InflateJob;
  try {
    job = new InflateJob(compression, opts.what);
  } catch (e) {
    sink.cancel(e);
    opts.signal?.removeEventListener("abort", abort);
    throw e;
  }
  onAbort = () => {
    const reason = opts.signal?.reason ?? new Error("aborted");
    raw.destroy(reason);
    layer.destroy(reason);
    job.abort(reason);
    sink.cancel(reason);
  };
  const feed = (async () => {
    let fed = 0;
    for await (const c of raw as AsyncIterable<Buffer>) {
      await job.write(c);
      chunksHandled(c.length);
      fed += c.length;
      opts.onProgress?.(fed);
    }
    job.end();
  })();
  feed.catch((e) => job.abort(e));
  let result: { diffID: Digest; size: number };
  try {
    for await (const chunk of job.chunks()) await sink.push(chunk);
    await feed;
    result = job.result();
    await sink.end();
  } catch (e) {
    job.abort(e);
    sink.cancel(e);
    layer.destroy();
    throw opts.signal?.aborted ? (opts.signal.reason ?? e) : e;
  } finally {
    opts.signal?.removeEventListener("abort", abort);
  }
  return { ...result, compression, compressedDigest: compressedDigester?.digest() };
}

interface Sink {
  push(chunk: Buffer): Promise<void>;
  end(): Promise<void>;
  cancel(reason: unknown): void;
}

function inlineSink(init: ApplierInit, onWarning: (m: string) => void): Sink {
  const applier = new LayerApplier(init.root, { ...init.opts, onWarning });
  const parser = new TarParser(applier);
  return {
    async push(chunk) {
      parser.push(chunk);
    },
    async end() {
      parser.finish();
      applier.finish();
    },
    cancel() {
      applier.abort();
    },
  };
}

function workerSink(init: ApplierInit, onWarning: (m: string) => void): Sink {
  // chunks travel through a fixed pool of shared slots: no allocation per chunk, so
  // memory stays flat (transferred buffers pile up until the worker's GC runs)
  const shared = new SharedArrayBuffer(SLOTS * SLOT_SIZE);
  const worker = new Worker(new URL("./apply-worker.ts", import.meta.url), {
    workerData: { ...init, shared, slotSize: SLOT_SIZE } satisfies WorkerInit,
  });
  const free: number[] = [];
  for (let i = SLOTS - 1; i >= 0; i--) free.push(i);
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  let finished: ((err?: Error) => void) | undefined;
  let done = false;
  const fail = (e: Error) => {
    if (!failure) failure = e;
    wake?.();
    finished?.(failure);
  };
  worker.on("message", (m: FromWorker) => {
    if ("ack" in m) {
      free.push(m.ack);
      wake?.();
    } else if ("warning" in m) {
      onWarning(m.warning);
    } else if ("done" in m) {
      done = true;
      finished?.();
    } else if ("error" in m) {
      fail(revive(m.error));
    }
  });
  worker.on("error", (e) => fail(e));
  worker.on("exit", (code) => {
    if (!done) fail(failure ?? new Error(`layer apply worker exited (code ${code}) before finishing`));
  });
  const post = (m: ToWorker) => worker.postMessage(m);
  let slot = -1;
  let view: Uint8Array | undefined;
  let used = 0;
  const send = () => {
    if (slot >= 0 && used > 0) post({ slot, length: used });
    else if (slot >= 0) free.push(slot);
    slot = -1;
    view = undefined;
    used = 0;
  };
  return {
    async push(chunk) {
      let off = 0;
      while (off < chunk.length) {
        if (failure) throw failure;
        if (slot < 0) {
          while (free.length === 0 && !failure) {
            await new Promise<void>((r) => {
              wake = r;
            });
            wake = undefined;
          }
          if (failure) throw failure;
          slot = free.pop()!;
          view = new Uint8Array(shared, slot * SLOT_SIZE, SLOT_SIZE);
          used = 0;
        }
        const n = Math.min(chunk.length - off, SLOT_SIZE - used);
        view!.set(chunk.subarray(off, off + n), used);
        used += n;
        off += n;
        if (used === SLOT_SIZE) send();
      }
    },
    async end() {
      if (failure) throw failure;
      send();
      await new Promise<void>((resolve, reject) => {
        finished = (err) => (err ? reject(err) : resolve());
        if (done) resolve();
        else if (failure) reject(failure);
        else post({ end: true });
      });
      await worker.terminate();
    },
    cancel(reason) {
      if (!failure) failure = reason instanceof Error ? reason : new Error(String(reason));
      void worker.terminate();
    },
  };
}
