/**
 * applyLayer: applies a (possibly compressed) layer tar onto a directory with the
 * OCI changeset rules, computing the diffID of the uncompressed bytes on the way.
 *
 * The bytes flow: source (a stream, or a file the worker reads itself) →
 * [sha256 of a stream's compressed bytes, unless `verified`] → the inflater's
 * worker (decompression and the diffID sha256, inflater.ts) → shared slots read
 * in place by the tar parser and applier, which make the files with
 * synchronous syscalls, one chunk at a time (changeset.ts; the rules and the
 * path-safety policy are described there). Memory stays flat whatever the layer
 * size.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync, realpathSync, statSync } from "node:fs";
import { type Readable, Transform } from "node:stream";
import { type Digest, Digester } from "../digest.ts";
import { InvalidArgumentError, NotFoundError } from "../errors.ts";
import { chunksHandled } from "../sys/heap.ts";
import { ChangesetApplier, type ChangesetOptions } from "./changeset.ts";
import { type Compression, detectCompression, peek } from "./compression.ts";
import { type InflateFile, InflateJob } from "./inflater.ts";
import { TarParser } from "./tar/reader.ts";

/** Options of applyLayer. */
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
   * The caller verified the compressed bytes already (the content store checks a
   * blob's digest): do not hash them again. compressedDigest is then undefined.
   */
  verified?: boolean;
  /** Names the source in decompression errors (e.g. "layer sha256:…"). */
  what?: string;
  /** Compressed bytes of the layer consumed so far, as they go. */
  onProgress?: (bytes: number) => void;
}

/** What applyLayer applied: the diffID and size of the uncompressed tar and the compression found. */
export interface ApplyResult {
  /** sha256 of the uncompressed tar. */
  diffID: Digest;
  /** Bytes of the uncompressed tar. */
  size: number;
  compression: Compression;
  /** sha256 of the bytes as read, when they were compressed (and not `verified`); streams only. */
  compressedDigest?: Digest;
}

/** The umask without changing it (process.umask() without an argument is deprecated). */
function currentUmask(): number {
  try {
    const m = /^Umask:\s*([0-7]+)/m.exec(readFileSync("/proc/self/status", "utf8"));
    if (m) return Number.parseInt(m[1], 8);
  } catch {
    // not Linux procfs: assume the usual
  }
  return 0o022;
}

/** One apply's set-up, shared by the file and the stream paths. */
interface ApplyContext {
  /** The target directory, symlinks resolved. */
  root: string;
  applier: ChangesetOptions;
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

/** Applies a layer (tar, gzip or zstd, detected from its first bytes) onto directory `root` with the OCI whiteout rules, confined to `root`; returns its diffID. `layer` is a stream or a file (read by the decompression worker itself). */
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
  const applier: ChangesetOptions = {
    sameOwner: opts.sameOwner ?? euid === 0,
    convertWhiteout: opts.convertWhiteout,
    lowerDirs: opts.lowerDirs?.map((d) => realpathSync(d)),
    umask: currentUmask(),
    privileged: euid === 0,
    onWarning: opts.onWarning ?? (() => {}),
  };
  const ctx: ApplyContext = { root: realRoot, applier, opts };
  return isLayerFile(layer) ? applyFile(layer, ctx) : applyStream(layer, ctx);
}

async function applyFile(layer: LayerFile, ctx: ApplyContext): Promise<ApplyResult> {
  const { opts } = ctx;
  const { compression, file } = openLayerFile(layer);
  const sink = openSink(ctx);
  let job: InflateJob;
  try {
    job = new InflateJob(compression, opts.what, file);
  } catch (e) {
    sink.cancel();
    throw e;
  }
  const abort = () => {
    const reason = opts.signal?.reason ?? new Error("aborted");
    job.abort(reason);
    sink.cancel();
  };
  opts.signal?.addEventListener("abort", abort, { once: true });
  try {
    for await (const chunk of job.chunks()) {
      sink.push(chunk);
      opts.onProgress?.(job.bytesRead);
    }
    const result = job.result();
    sink.end();
    return { ...result, compression };
  } catch (e) {
    job.abort(e);
    sink.cancel();
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
    sink.cancel();
    opts.signal?.removeEventListener("abort", abort);
    throw e;
  }
  onAbort = () => {
    const reason = opts.signal?.reason ?? new Error("aborted");
    raw.destroy(reason);
    layer.destroy(reason);
    job.abort(reason);
    sink.cancel();
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
    for await (const chunk of job.chunks()) sink.push(chunk);
    await feed;
    result = job.result();
    sink.end();
  } catch (e) {
    job.abort(e);
    sink.cancel();
    layer.destroy();
    throw opts.signal?.aborted ? (opts.signal.reason ?? e) : e;
  } finally {
    opts.signal?.removeEventListener("abort", abort);
  }
  return { ...result, compression, compressedDigest: compressedDigester?.digest() };
}

/** Where the tar goes: the parser and the applier, on this thread, a chunk at a time. */
interface Sink {
  push(chunk: Buffer): void;
  end(): void;
  cancel(): void;
}

function openSink({ root, applier: options }: ApplyContext): Sink {
  const applier = new ChangesetApplier(root, options);
  const parser = new TarParser(applier);
  return {
    push: (chunk) => parser.push(chunk),
    end() {
      parser.finish();
      applier.finish();
    },
    cancel: () => applier.abort(),
  };
}
