/**
 * A writer of one ingest: appends at its offset while hashing, and on commit
 * verifies size and digest, makes the file read-only and renames it into
 * blobs/ atomically. A failed verification discards the ingest, so a bad
 * download never poisons the next attempt.
 */
import { createReadStream } from "node:fs";
import { type FileHandle, mkdir, open, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { type Algorithm, algorithmOf, type Digest, Digester } from "../../digest.ts";
import { FailedPreconditionError, InvalidArgumentError } from "../../errors.ts";
import { startWriteback } from "../../sys/index.ts";
import type { CommitOptions, Status, Writer } from "../content.ts";
import { type IngestState, toStatus, touchUpdated } from "./ingest.ts";
import type { RefLock } from "./lock.ts";

/**
 * Early writeback: every WRITEBACK_EVERY bytes, the written range starts going
 * to disk while the download goes on, so the fsync before commit waits for the
 * tail only, not for the whole blob.
 */
const WRITEBACK_EVERY = 16 << 20;

export interface WriterContext {
  /** `blobs/<alg>/<hex>` for a digest. */
  blobPath(d: Digest): string;
  exists(path: string): Promise<boolean>;
  setLabels(d: Digest, labels: Record<string, string>): Promise<void>;
}

/** Hashes a file (or its first `length` bytes) with the given algorithm. */
export async function hashFile(path: string, algorithm: Algorithm, length?: number): Promise<Digester> {
  const digester = new Digester(algorithm);
  if (length === 0) return digester;
  const end = length === undefined ? undefined : length - 1;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20, end })) {
    digester.update(chunk as Buffer);
  }
  return digester;
}

export class LocalWriter implements Writer {
  readonly #ctx: WriterContext;
  readonly #lock: RefLock;
  readonly #state: IngestState;
  #fh: FileHandle | undefined;
  #digester: Digester;
  #done = false;
  /** Bytes already handed to early writeback. */
  #flushed = 0;

  constructor(ctx: WriterContext, lock: RefLock, state: IngestState, fh: FileHandle, digester: Digester) {
    this.#ctx = ctx;
    this.#lock = lock;
    this.#state = state;
    this.#fh = fh;
    this.#digester = digester;
  }

  #handle(): FileHandle {
    if (this.#done || !this.#fh) throw new FailedPreconditionError(`writer for ref ${this.#state.ref} is closed`);
    return this.#fh;
  }

  get #dataPath(): string {
    return join(this.#state.dir, "data");
  }

  async write(chunk: Uint8Array): Promise<void> {
    const fh = this.#handle();
    let done = 0;
    // hash while the first write runs on the thread pool
    const first = fh.write(chunk, 0, chunk.length, this.#state.offset);
    this.#digester.update(chunk);
    let { bytesWritten } = await first;
    for (;;) {
      done += bytesWritten;
      this.#state.offset += bytesWritten;
      if (done >= chunk.length) break;
      ({ bytesWritten } = await fh.write(chunk, done, chunk.length - done, this.#state.offset));
    }
    if (this.#state.offset - this.#flushed >= WRITEBACK_EVERY) {
      startWriteback(fh.fd, this.#flushed, this.#state.offset - this.#flushed);
      this.#flushed = this.#state.offset;
    }
    this.#state.updatedAt = new Date();
  }

  status(): Status {
    return toStatus(this.#state);
  }

  digest(): Digest {
    return this.#digester.digest();
  }

  async truncate(size: 0): Promise<void> {
    if (size !== 0) throw new InvalidArgumentError(`truncate of ref ${this.#state.ref}: only 0 is supported`);
    await this.#handle().truncate(0);
    this.#digester = new Digester(this.#digester.algorithm);
    this.#state.offset = 0;
    this.#flushed = 0;
    this.#state.updatedAt = new Date();
  }

  async commit(size?: number, expected?: Digest, opts: CommitOptions = {}): Promise<void> {
    const fh = this.#handle();
    const ref = this.#state.ref;
    const wantSize = size ?? (this.#state.total > 0 ? this.#state.total : undefined);
    const want = expected ?? this.#state.expected;
    try {
      await fh.sync();
      const actualSize = (await fh.stat()).size;
      if (wantSize !== undefined && actualSize !== wantSize) {
        await this.#discard();
        throw new FailedPreconditionError(
          `commit of ref ${ref} failed: got ${actualSize} bytes, expected ${wantSize} (ingest discarded)`,
        );
      }
      let digester = this.#digester;
      if (want && algorithmOf(want) !== digester.algorithm) {
        digester = await hashFile(this.#dataPath, algorithmOf(want));
      }
      const actual = digester.digest();
      if (want && actual !== want) {
        await this.#discard();
        throw new FailedPreconditionError(
          `commit of ref ${ref} failed: got digest ${actual}, expected ${want} (ingest discarded)`,
        );
      }
      const target = this.#ctx.blobPath(actual);
      if (await this.#ctx.exists(target)) {
        // already committed by another ref: keep the existing blob, drop ours
        await this.#discard();
      } else {
        await fh.chmod(0o444);
        await fh.close();
        this.#fh = undefined;
        await mkdir(dirname(target), { recursive: true, mode: 0o700 });
        await rename(this.#dataPath, target);
        await syncDir(dirname(target));
        await rm(this.#state.dir, { recursive: true, force: true });
        this.#finish();
      }
      if (opts.labels && Object.keys(opts.labels).length > 0) await this.#ctx.setLabels(actual, opts.labels);
    } catch (err) {
      if (!this.#done) await this.close().catch(() => {});
      throw err;
    }
  }

  /** Drops the ingest entirely and releases the ref. */
  async #discard(): Promise<void> {
    await this.#fh?.close().catch(() => {});
    this.#fh = undefined;
    await rm(this.#state.dir, { recursive: true, force: true });
    this.#finish();
  }

  #finish(): void {
    this.#done = true;
    this.#lock.release();
  }

  async close(): Promise<void> {
    if (this.#done) return;
    try {
      const fh = this.#fh;
      this.#fh = undefined;
      if (fh) {
        await fh.close();
        await touchUpdated(this.#state.dir, this.#state.updatedAt).catch(() => {});
      }
    } finally {
      this.#finish();
    }
  }
}

/** fsync a directory so a rename into it survives a power cut. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
