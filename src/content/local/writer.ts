/**
 * A writer of one ingest: appends at its offset while hashing; its commit
 * verifies size and digest, makes the file read-only and renames it into
 * blobs/ atomically. The commit has two steps, so that the metadata layer can
 * publish a blob in the same database transaction that records it: verify()
 * (the slow part: fsync, and a second hash when the expected digest uses
 * another algorithm) and publish() (a rename, synchronous). A failed
 * verification keeps the ingest, as containerd's local store does: the writer
 * is closed, and a new one resumes where it stopped (the caller that knows the
 * bytes are bad aborts the ingest).
 */
import { chmodSync, createReadStream, existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { dirname, join } from "node:path";
import { type Algorithm, algorithmOf, type Digest, Digester } from "../../digest.ts";
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../../errors.ts";
import { startWriteback } from "../../sys/index.ts";
import { preciseNow } from "../../time.ts";
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

/** What a verified ingest is, ready to be published. */
export interface Verified {
  digest: Digest;
  size: number;
}

/** A writer of the filesystem store: appends to an ingest's data file under its ref lock. */
export class LocalWriter implements Writer {
  readonly #ctx: WriterContext;
  readonly #lock: RefLock;
  readonly #state: IngestState;
  #fh: FileHandle | undefined;
  #digester: Digester;
  #verified: Verified | undefined;
  #done = false;
  /** Bytes already handed to early writeback. */
  #flushed = 0;

  /** @internal made by LocalStore.writer() */
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
    this.#state.updatedAt = preciseNow();
  }

  status(): Status {
    return toStatus(this.#state);
  }

  digest(): Digest {
    return this.#verified?.digest ?? this.#digester.digest();
  }

  async truncate(size: 0): Promise<void> {
    if (size !== 0) throw new InvalidArgumentError(`truncate of ref ${this.#state.ref}: only 0 is supported`);
    await this.#handle().truncate(0);
    this.#digester = new Digester(this.#digester.algorithm);
    this.#state.offset = 0;
    this.#flushed = 0;
    this.#state.updatedAt = preciseNow();
  }

  /**
   * @internal The first step of a commit: flushes the data and checks its size and digest
   * (each when given, else from the ingest's total and expected digest). On a
   * mismatch the writer is closed and the ingest kept (FailedPreconditionError).
   */
  async verify(size?: number, expected?: Digest): Promise<Verified> {
    const fh = this.#handle();
    const ref = this.#state.ref;
    const wantSize = size ?? (this.#state.total > 0 ? this.#state.total : undefined);
    const want = expected ?? this.#state.expected;
    try {
      await fh.sync();
      const actualSize = (await fh.stat()).size;
      if (wantSize !== undefined && actualSize !== wantSize) {
        throw new FailedPreconditionError(
          `commit of ref ${ref} failed: got ${actualSize} bytes, expected ${wantSize} (the ingest is kept: abort it to start over)`,
        );
      }
      let digester = this.#digester;
      if (want && algorithmOf(want) !== digester.algorithm) {
        digester = await hashFile(this.#dataPath, algorithmOf(want));
      }
      const actual = digester.digest();
      if (want && actual !== want) {
        throw new FailedPreconditionError(
          `commit of ref ${ref} failed: got digest ${actual}, expected ${want} (the ingest is kept: abort it to start over)`,
        );
      }
      this.#fh = undefined;
      await fh.chmod(0o444);
      await fh.close();
      this.#verified = { digest: actual, size: actualSize };
      return this.#verified;
    } catch (err) {
      await this.close().catch(() => {});
      throw err;
    }
  }

  /**
   * The second step, synchronous: renames the verified data into blobs/ and
   * removes the ingest, or, when the blob is already there, only removes the
   * ingest. Releases the ref either way, unless `holdRef`: then the caller
   * releases it with releaseRef() once it has recorded the outcome (a writer
   * waiting for the ref must not see the ingest gone from the disk but not yet
   * from the records). The caller syncs the blob's directory.
   */
  publish(opts: { holdRef?: boolean } = {}): "created" | "existed" {
    const v = this.#verified;
    if (!v || this.#done) throw new FailedPreconditionError(`writer for ref ${this.#state.ref} is not verified`);
    const target = this.#ctx.blobPath(v.digest);
    try {
      if (existsSync(target)) {
        rmSync(this.#state.dir, { recursive: true, force: true });
        return "existed";
      }
      mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
      renameSync(this.#dataPath, target);
      rmSync(this.#state.dir, { recursive: true, force: true });
      return "created";
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        throw new NotFoundError(`commit of ref ${this.#state.ref}: the ingest was aborted`);
      }
      // the data stays in the ingest: writable again for a resume
      try {
        chmodSync(this.#dataPath, 0o644);
      } catch {}
      throw err;
    } finally {
      if (opts.holdRef) this.#done = true;
      else this.#finish();
    }
  }

  /** @internal Releases the ref a publish({ holdRef: true }) kept. */
  releaseRef(): void {
    this.#lock.release();
  }

  /**
   * Verifies, publishes and makes the rename durable. AlreadyExistsError when
   * the blob was already in the store (the ingest is removed), as containerd's
   * local store answers.
   */
  async commit(size?: number, expected?: Digest, _opts: CommitOptions = {}): Promise<void> {
    const { digest } = await this.verify(size, expected);
    const outcome = this.publish();
    if (outcome === "existed") throw new AlreadyExistsError(`content ${digest} already exists`);
    await syncDir(dirname(this.#ctx.blobPath(digest)));
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    this.#lock.release();
  }

  /** Releases the ref, keeping what was written for a later resume. */
  async close(): Promise<void> {
    if (this.#done) return;
    try {
      const fh = this.#fh;
      this.#fh = undefined;
      if (fh) {
        await fh.close();
        await touchUpdated(this.#state.dir, this.#state.updatedAt).catch(() => {});
      } else if (this.#verified) {
        // verified but never published: writable again for a resume
        try {
          chmodSync(this.#dataPath, 0o644);
        } catch {}
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
