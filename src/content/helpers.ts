/**
 * Helpers over any content store (containerd's content/helpers.go): the one
 * copy of a stream into a writer (resume, batching, verification on commit,
 * an optional tee) and the one reader of a small blob read whole (one size
 * check, its size and digest verified).
 */
import type { Readable, Writable } from "node:stream";
import type { Descriptor } from "../descriptor.ts";
import { algorithmOf, type Digest, Digester } from "../digest.ts";
import {
  DataLossError,
  errorMessage,
  FailedPreconditionError,
  InvalidArgumentError,
  isAlreadyExists,
  isErrorCode,
} from "../errors.ts";
import { chunksHandled } from "../sys/heap.ts";
import { WriteBatcher } from "./batch.ts";
import type { Ingester, IngestManager, Provider, Writer } from "./content.ts";

/** Bytes to copy into the store: a stream or any async iterable of chunks. */
export type Source = Readable | AsyncIterable<Uint8Array>;

/** Opens the source at a byte offset (an HTTP Range request, a file position). */
export type OpenAt = (offset: number) => Promise<Source>;

/** Options of copyToWriter. */
export interface CopyOptions {
  /** Names the blob in errors (`layer-sha256:…`, `ref my-ref`). */
  what: string;
  /** Expected size: a source sending more is stopped at once; the commit verifies it. */
  size?: number;
  /** Expected digest, verified on commit. */
  expected?: Digest;
  /**
   * The expected digest when it is known only once the source ended (a chunked
   * upload names it in its last request): asked before the commit.
   */
  expectedAtEnd?: () => Digest | undefined;
  labels?: Record<string, string>;
  signal?: AbortSignal;
  /**
   * Asked when the copy starts from byte 0: a stream that receives the bytes as
   * they are written (one pass over them). It ends only after the commit, and is
   * destroyed with the error when the copy fails. A full one is waited for; one
   * that was closed is skipped.
   */
  tee?: () => Writable | undefined;
  /** Before the first byte: where the copy starts (an earlier ingest's offset). */
  onStart?: (offset: number) => void;
  /** After each chunk: bytes of the blob written so far, counted from its start. */
  onData?: (offset: number) => void;
  /** Every byte is in; the commit (sync, verification, rename) starts. */
  onCommit?: () => void;
  /**
   * Drops the ingest when its bytes are known to be bad (more or fewer than
   * `size`, a wrong digest, a DataLossError of the source): the store keeps a
   * failed commit's bytes for a resume, and these must never be resumed. Without
   * it, the ingest is emptied where that can still be done.
   */
  discard?: () => Promise<void>;
}

/** What copyToWriter committed. */
export interface CopyResult {
  /** The digest of the bytes committed. */
  digest: Digest;
  size: number;
  /** Where the copy started: bytes an earlier, interrupted ingest had written. */
  startOffset: number;
}

/**
 * Copies a source into an open writer and commits it (containerd's content.Copy).
 * The copy resumes at the writer's offset through `open(offset)`, and starts over
 * from 0 when that fails. Chunks are gathered into 1 MiB writes. A source that
 * fails leaves what arrived for a later resume; bytes known to be wrong (more or
 * fewer than `size`, a wrong digest, a DataLossError of the source) never are:
 * they are emptied, and dropped with `discard`. Mismatches are DataLossErrors;
 * content that was already there is success.
 */
export async function copyToWriter(w: Writer, open: OpenAt, opts: CopyOptions): Promise<CopyResult> {
  const { size, what, signal } = opts;
  let tee: Writable | undefined;
  let committing = false;
  try {
    let offset = w.status().offset;
    if (size !== undefined && offset > size) {
      await w.truncate(0);
      offset = 0;
    }
    let source: Source;
    try {
      source = await open(offset);
    } catch (err) {
      // a source that cannot resume there (a registry refusing the range): from the beginning
      if (offset === 0 || signal?.aborted) throw err;
      await w.truncate(0);
      offset = 0;
      source = await open(0);
    }
    if (offset === 0) tee = opts.tee?.();
    opts.onStart?.(offset);
    let n = offset;
    let overflow = false;
    const batch = new WriteBatcher(w);
    try {
      for await (const data of source) {
        signal?.throwIfAborted();
        const chunk = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
        n += chunk.length;
        const wait = batch.add(chunk);
        if (wait) await wait;
        if (size !== undefined && n > size) {
          // a hostile source must not stream forever; what it sent fails the size check below
          overflow = true;
          break;
        }
        if (tee && !tee.destroyed && !tee.write(chunk)) await drained(tee, signal);
        opts.onData?.(n);
        chunksHandled(chunk.length);
      }
      signal?.throwIfAborted();
      await batch.flush();
    } catch (err) {
      // keep the bytes that arrived for a resume; bytes known to be bad are dropped below
      if (!(err instanceof DataLossError)) await batch.flush().catch(() => {});
      throw err;
    } finally {
      await batch.settle().catch(() => {});
      batch.release();
    }
    opts.onCommit?.();
    if (overflow) throw new DataLossError(`${what}: more than the expected ${size} bytes`);
    if (size !== undefined && n !== size) throw new DataLossError(`${what}: got ${n} bytes, expected ${size}`);
    const digest = w.digest();
    const expected = opts.expected ?? opts.expectedAtEnd?.();
    if (expected && algorithmOf(expected) === algorithmOf(digest) && digest !== expected) {
      throw new DataLossError(`${what}: digest mismatch: got digest ${digest}, expected ${expected}`);
    }
    committing = true;
    try {
      await w.commit(size, expected, { labels: opts.labels });
    } catch (err) {
      if (isErrorCode(err, "FailedPrecondition")) {
        // the store keeps a failed commit's bytes; these are known bad
        await opts.discard?.().catch(() => {});
        throw new DataLossError(`${what}: digest mismatch: ${errorMessage(err)}`, { cause: err });
      }
      if (!isAlreadyExists(err)) throw err;
    }
    tee?.end();
    return { digest: expected ?? digest, size: n, startOffset: offset };
  } catch (err) {
    tee?.destroy(err instanceof Error ? err : new Error(errorMessage(err)));
    if (!committing) {
      // bytes that failed a verification of the source must not be resumed later
      if (err instanceof DataLossError) await w.truncate(0).catch(() => {});
      await w.close().catch(() => {});
      if (err instanceof DataLossError) await opts.discard?.().catch(() => {});
    }
    throw err;
  }
}

/** Resolves when the tee takes more, or went away (a consumer that left must not stall the copy). */
function drained(s: Writable, signal?: AbortSignal): Promise<void> {
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
    s.once("close", done);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Options of writeBlob. */
export interface WriteBlobOptions {
  /** Expected size in bytes (verified at commit). */
  size?: number;
  /** Expected digest (verified at commit; also lets an existing blob skip the copy). */
  expected?: Digest;
  labels?: Record<string, string>;
  signal?: AbortSignal;
  /**
   * Reopens the source at a byte offset (e.g. an HTTP Range request), used to
   * resume an interrupted ingest without reading its first bytes again.
   */
  reopen?: (offset: number) => Promise<Source>;
  /** Before the first byte: where the copy starts (an earlier ingest's offset). */
  onStart?: (offset: number) => void;
  /** After each chunk: bytes of the blob written so far, counted from its start. */
  onData?: (offset: number) => void;
}

/** What writeBlob stored, and whether it was there already. */
export interface WriteBlobResult {
  digest: Digest;
  /** Bytes committed, or the size of the content that was already there. */
  size: number;
  /** True when the content was already in the store (the source was not read). */
  existed: boolean;
  /** Bytes that an earlier, interrupted ingest had already written. */
  resumedAt: number;
}

/**
 * Copies `source` into the store under `ref` and commits it. An existing blob
 * (AlreadyExists at open or commit) is success. A resumed ingest continues at
 * its offset: through `reopen` when given, else by skipping that many source
 * bytes when an expected digest will verify the result, else from zero. Bytes
 * that fail the verification are aborted with the ingest (when the store can).
 * Content already stored under the expected digest with another size than the
 * expected one is a FailedPreconditionError.
 */
export async function writeBlob(
  ingester: Ingester & Pick<Provider, "info"> & Partial<Pick<IngestManager, "abort">>,
  ref: string,
  source: Source,
  opts: WriteBlobOptions = {},
): Promise<WriteBlobResult> {
  let writer: Writer;
  try {
    writer = await ingester.writer({ ref, total: opts.size, expected: opts.expected, signal: opts.signal });
  } catch (err) {
    if (isAlreadyExists(err) && opts.expected) {
      const { size } = await ingester.info(opts.expected);
      if (opts.size !== undefined && size !== opts.size) {
        throw new FailedPreconditionError(
          `content ${opts.expected} is already stored with ${size} bytes, not the expected ${opts.size}`,
        );
      }
      return { digest: opts.expected, size, existed: true, resumedAt: 0 };
    }
    throw err;
  }
  const what = `ref ${ref}`;
  const open: OpenAt = async (offset) => {
    if (offset === 0) return source;
    if (opts.reopen) return opts.reopen(offset);
    if (opts.expected) return skipping(source, offset, what);
    throw new Error("nothing can verify the bytes already ingested");
  };
  const abort = ingester.abort?.bind(ingester);
  const r = await copyToWriter(writer, open, {
    what,
    size: opts.size,
    expected: opts.expected,
    labels: opts.labels,
    signal: opts.signal,
    onStart: opts.onStart,
    onData: opts.onData,
    discard: abort ? () => abort(ref) : undefined,
  });
  return { digest: r.digest, size: r.size, existed: false, resumedAt: r.startOffset };
}

/** The source without its first `count` bytes (an ingest holds them); the digest verifies they were the same. */
async function* skipping(source: Source, count: number, what: string): AsyncGenerator<Uint8Array> {
  let skip = count;
  for await (const data of source) {
    const chunk = data as Uint8Array;
    if (skip === 0) yield chunk;
    else if (chunk.length <= skip) skip -= chunk.length;
    else {
      yield chunk.subarray(skip);
      skip = 0;
    }
  }
  if (skip > 0) {
    throw new DataLossError(
      `${what}: the source ended before the ${count} bytes already ingested (the ingest was reset)`,
    );
  }
}

/**
 * Manifests and indexes larger than this are refused before they are read, as
 * registries cap them; readBlob's default cap.
 */
export const MAX_MANIFEST_SIZE = 4 << 20;

/** The one refusal of an object over a size limit (InvalidArgument), naming it and the limit. */
export function tooLarge(what: string, size: number | undefined, max: number): InvalidArgumentError {
  const of = size === undefined ? "" : ` of ${size} bytes`;
  return new InvalidArgumentError(`${what}${of} exceeds the ${max}-byte limit`);
}

/** Refuses `size` over `max` before anything is read. */
export function checkSize(what: string, size: number, max: number): void {
  if (size > max) throw tooLarge(what, size, max);
}

/** Reads a body of unknown size whole, refusing more than `max` bytes (tooLarge). */
export async function readAtMost(source: Source, max: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const data of source) {
    const b = data as Buffer;
    n += b.length;
    // leaving the loop destroys the stream
    if (n > max) throw tooLarge(what, undefined, max);
    chunks.push(b);
  }
  return Buffer.concat(chunks, n);
}

/**
 * The verifying reader: reads a stream holding `desc` whole, refusing a byte
 * more than its size, and checks size and digest at the end (DataLossError
 * naming `what`).
 */
export async function readVerified(source: Source, desc: Descriptor, what: string): Promise<Buffer> {
  const digester = new Digester(algorithmOf(desc.digest));
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const data of source) {
    const b = data as Buffer;
    n += b.length;
    if (n > desc.size) throw new DataLossError(`${what}: more than the expected ${desc.size} bytes`);
    digester.update(b);
    chunks.push(b);
  }
  if (n !== desc.size) throw new DataLossError(`${what}: got ${n} bytes, expected ${desc.size}`);
  const actual = digester.digest();
  if (actual !== desc.digest)
    throw new DataLossError(`${what}: digest mismatch: got ${actual}, expected ${desc.digest}`);
  return Buffer.concat(chunks, n);
}

/**
 * Reads a small blob (a manifest, an index, a config) whole from a provider:
 * refused before reading when its descriptor is over `max` (default
 * MAX_MANIFEST_SIZE), then read through the verifying reader.
 */
export async function readBlob(
  provider: Provider,
  desc: Descriptor,
  opts: { max?: number; signal?: AbortSignal } = {},
): Promise<Buffer> {
  const what = `blob ${desc.digest}`;
  checkSize(what, desc.size, opts.max ?? MAX_MANIFEST_SIZE);
  return readVerified(await provider.openRead(desc.digest, { signal: opts.signal }), desc, what);
}
