/**
 * Helpers over any content store: copy a stream into an ingest (resuming
 * where it stopped) and read small blobs such as manifests and configs.
 */
import type { Readable } from "node:stream";
import type { Descriptor } from "../descriptor.ts";
import { algorithmOf, type Digest, Digester } from "../digest.ts";
import { DataLossError, FailedPreconditionError, isAlreadyExists } from "../errors.ts";
import type { Ingester, Provider, Writer } from "./content.ts";

/** Writes are gathered into buffers of at least this size: fewer syscalls. */
const WRITE_CHUNK = 1 << 20;

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
  reopen?: (offset: number) => Promise<Readable | AsyncIterable<Uint8Array>>;
}

export interface WriteBlobResult {
  digest: Digest;
  /** Bytes committed; when the content already existed, opts.size (or -1 when not given). */
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
 * bytes when an expected digest will verify the result, else from zero.
 */
export async function writeBlob(
  ingester: Ingester,
  ref: string,
  source: Readable | AsyncIterable<Uint8Array>,
  opts: WriteBlobOptions = {},
): Promise<WriteBlobResult> {
  let writer: Writer;
  try {
    writer = await ingester.writer({ ref, total: opts.size, expected: opts.expected, signal: opts.signal });
  } catch (err) {
    if (isAlreadyExists(err) && opts.expected) {
      return { digest: opts.expected, size: opts.size ?? -1, existed: true, resumedAt: 0 };
    }
    throw err;
  }
  let committed = false;
  try {
    const resumedAt = writer.status().offset;
    let input = source;
    let skip = 0;
    if (resumedAt > 0) {
      if (opts.size !== undefined && resumedAt > opts.size) await writer.truncate(0);
      else if (opts.reopen) input = await opts.reopen(resumedAt);
      else if (opts.expected) skip = resumedAt;
      else await writer.truncate(0);
    }
    const limit = opts.size;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const flush = async () => {
      if (pendingBytes === 0) return;
      const buf = pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      await writer.write(buf);
    };
    for await (const data of input) {
      opts.signal?.throwIfAborted();
      let chunk = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      if (skip > 0) {
        const n = Math.min(skip, chunk.length);
        skip -= n;
        chunk = chunk.subarray(n);
        if (chunk.length === 0) continue;
      }
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes >= WRITE_CHUNK) await flush();
      // more than promised: stop reading; commit below fails and discards the ingest
      if (limit !== undefined && writer.status().offset + pendingBytes > limit) break;
    }
    opts.signal?.throwIfAborted();
    await flush();
    if (skip > 0) {
      await writer.truncate(0); // those bytes came from other content: start over next time
      throw new DataLossError(
        `ref ${ref}: the source ended before the ${resumedAt} bytes already ingested (the ingest was reset)`,
      );
    }
    const digest = writer.digest();
    const size = writer.status().offset;
    try {
      await writer.commit(opts.size, opts.expected, { labels: opts.labels });
    } catch (err) {
      committed = true; // commit released the writer either way
      if (!isAlreadyExists(err)) throw err;
    }
    committed = true;
    return { digest: opts.expected ?? digest, size, existed: false, resumedAt };
  } finally {
    if (!committed) await writer.close();
  }
}

/** Default cap for readBlob: manifests and configs are small. */
export const DEFAULT_MAX_BLOB = 4 << 20;

/**
 * Reads a small blob (manifest, index, config) whole, refusing anything larger
 * than `maxSize`, and verifies its size and digest against the descriptor.
 */
export async function readBlob(provider: Provider, desc: Descriptor, maxSize = DEFAULT_MAX_BLOB): Promise<Buffer> {
  if (desc.size > maxSize) {
    throw new FailedPreconditionError(`blob ${desc.digest} is ${desc.size} bytes, more than the ${maxSize} allowed`);
  }
  const stream = await provider.openRead(desc.digest);
  const chunks: Buffer[] = [];
  let n = 0;
  const digester = new Digester(algorithmOf(desc.digest));
  for await (const chunk of stream) {
    const buf = chunk as Buffer;
    n += buf.length;
    if (n > desc.size) {
      stream.destroy();
      throw new DataLossError(`blob ${desc.digest}: more than the expected ${desc.size} bytes`);
    }
    digester.update(buf);
    chunks.push(buf);
  }
  if (n !== desc.size) throw new DataLossError(`blob ${desc.digest}: got ${n} bytes, expected ${desc.size}`);
  const actual = digester.digest();
  if (actual !== desc.digest) throw new DataLossError(`blob ${desc.digest}: digest mismatch: got ${actual}`);
  return Buffer.concat(chunks, n);
}
