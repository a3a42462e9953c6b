/**
 * The filesystem content store under `<root>/content`:
 *   blobs/<alg>/<hex>          committed blobs, read-only
 *   ingest/<sha256(ref)>/      writes in progress (see ingest.ts)
 *   locks/<sha256(ref)>        flock files of refs being written (see lock.ts)
 * It knows nothing of namespaces or labels: the metadata layer
 * (metadata/content.ts) keeps which namespace holds which blob and ingest, with
 * their labels and times, over this store, as containerd's metadata package
 * does over its local store.
 */
import { createHash, randomBytes } from "node:crypto";
import { type BigIntStats, createReadStream, existsSync, renameSync, statSync, unlinkSync } from "node:fs";
import { chmod, type FileHandle, open, readdir, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { algorithmOf, CANONICAL, type Digest, isAlgorithm, isDigest, parseDigest } from "../../digest.ts";
import {
  AlreadyExistsError,
  DistError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  OutOfRangeError,
  wrapError,
} from "../../errors.ts";
import { PreciseDate } from "../../time.ts";
import {
  type BlobFiles,
  checkWriterOptions,
  type Info,
  type IngestFiles,
  type ReadOptions,
  type Status,
  type Store,
  type WalkFilter,
  type WriterOptions,
} from "../content.ts";
import { CorruptIngest, createIngest, type IngestState, readIngest, toStatus } from "./ingest.ts";
import { acquireRefLock, DEFAULT_LOCK_TIMEOUT, GaveUp, type RefLock, tryLock } from "./lock.ts";
import { hashFile, LocalWriter } from "./writer.ts";

/** Options of new LocalStore. */
export interface LocalStoreOptions {
  /** The dist root; content lives in `<root>/content`. */
  root: string;
  /** How long writer() waits for a ref held by another writer (ms). Default 60 s. */
  lockTimeout?: number;
}

/** A writer's options in the filesystem store: the Writer options and how long to wait for the ref. */
export interface LocalWriterOptions extends WriterOptions {
  /** How long to wait for a ref held by another writer (ms); the store's lockTimeout when absent. */
  lockTimeout?: number;
}

function sha256Hex(s: string): string {
  return createHash("sha256").update(s).digest("hex");
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** Ingest directories being removed (see abort): never an ingest, always garbage. */
const REMOVING = ".rm-";

/** The filesystem content store under `<root>/content`: verified, atomic, resumable ingests; namespacedContentStore opens one. */
export class LocalStore implements Store, BlobFiles, IngestFiles {
  readonly root: string;
  readonly contentRoot: string;
  readonly lockTimeout: number;

  constructor(opts: LocalStoreOptions) {
    this.root = opts.root;
    this.contentRoot = join(opts.root, "content");
    this.lockTimeout = opts.lockTimeout ?? DEFAULT_LOCK_TIMEOUT;
  }

  get #blobsDir(): string {
    return join(this.contentRoot, "blobs");
  }
  get #ingestDir(): string {
    return join(this.contentRoot, "ingest");
  }
  get #locksDir(): string {
    return join(this.contentRoot, "locks");
  }

  /** Where a committed blob lives (whether or not it exists). Validates the digest. */
  blobPath(digest: Digest): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.#blobsDir, algorithm, hex);
  }

  #ingestPath(ref: string): string {
    return join(this.#ingestDir, sha256Hex(ref));
  }

  /** The data file of the ingest `ref` (IngestFiles). */
  ingestDataPath(ref: string): string {
    return join(this.#ingestPath(ref), "data");
  }

  /** Rewrites permission errors as one line naming the store. */
  #fsError(err: unknown): unknown {
    if (err instanceof DistError) return err;
    const code = errno(err);
    if (code === "EACCES" || code === "EPERM" || code === "EROFS") {
      return wrapError(err, `cannot write to the content store in ${this.root}`, "PermissionDenied");
    }
    return err;
  }

  // ---- Provider

  /** The blob's size and its file's time (commit time); no labels: the metadata layer keeps them. */
  async info(digest: Digest): Promise<Info> {
    const path = this.blobPath(digest);
    let st: BigIntStats;
    try {
      st = await stat(path, { bigint: true });
    } catch (err) {
      if (errno(err) === "ENOENT") throw new NotFoundError(`content ${digest}: not found`);
      throw err;
    }
    return blobInfo(digest, st);
  }

  /** Whether the blob's file is there (synchronous: for the metadata layer's transactions). */
  hasBlob(digest: Digest): boolean {
    return existsSync(this.blobPath(digest));
  }

  /** The size of the blob's file, or undefined when there is none. */
  blobSize(digest: Digest): number | undefined {
    try {
      const st = statSync(this.blobPath(digest));
      return st.isFile() ? st.size : undefined;
    } catch (err) {
      if (errno(err) === "ENOENT") return undefined;
      throw err;
    }
  }

  /**
   * Removes a blob's file (synchronous: the metadata layer removes it in the
   * transaction that drops its last record). False when it was not there.
   */
  removeBlob(digest: Digest): boolean {
    try {
      unlinkSync(this.blobPath(digest));
      return true;
    } catch (err) {
      if (errno(err) === "ENOENT") return false;
      throw this.#fsError(err);
    }
  }

  async openRead(digest: Digest, opts: ReadOptions = {}): Promise<Readable> {
    const { size } = await this.info(digest);
    const offset = opts.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidArgumentError(`invalid read offset ${offset}`);
    if (opts.length !== undefined && (!Number.isSafeInteger(opts.length) || opts.length < 0)) {
      throw new InvalidArgumentError(`invalid read length ${opts.length}`);
    }
    const end = opts.length === undefined ? size : offset + opts.length;
    if (offset > size || end > size) {
      throw new OutOfRangeError(`read of ${digest} past its end: bytes ${offset}-${end} of ${size}`);
    }
    if (end === offset) {
      return Readable.from([]);
    }
    return createReadStream(this.blobPath(digest), {
      start: offset,
      end: end - 1,
      highWaterMark: 1 << 20,
      signal: opts.signal,
    });
  }

  async readAt(digest: Digest, buf: Uint8Array, position: number): Promise<number> {
    let fh: Awaited<ReturnType<typeof open>>;
    try {
      fh = await open(this.blobPath(digest), "r");
    } catch (err) {
      if (errno(err) === "ENOENT") throw new NotFoundError(`content ${digest}: not found`);
      throw err;
    }
    try {
      const { bytesRead } = await fh.read(buf, 0, buf.length, position);
      return bytesRead;
    } finally {
      await fh.close();
    }
  }

  // ---- Manager

  /** Every blob file, by digest; label filters match nothing here (no labels below the metadata layer). */
  async walk(fn: (info: Info) => void | Promise<void>, filter: WalkFilter = {}): Promise<void> {
    const prefixes = filter.digestPrefixes ?? [];
    if ((filter.labels ?? []).length > 0) return;
    let algs: string[];
    try {
      algs = (await readdir(this.#blobsDir)).sort();
    } catch (err) {
      if (errno(err) === "ENOENT") return;
      throw err;
    }
    for (const alg of algs) {
      if (!isAlgorithm(alg)) continue;
      let names: string[];
      try {
        names = (await readdir(join(this.#blobsDir, alg))).sort();
      } catch (err) {
        if (errno(err) === "ENOENT" || errno(err) === "ENOTDIR") continue;
        throw err;
      }
      for (const name of names) {
        const digest = `${alg}:${name}` as Digest;
        if (!isDigest(digest)) continue;
        // a prefix without an algorithm ("2cf24d") matches the hex of any algorithm
        if (prefixes.length > 0 && !prefixes.some((p) => digest.startsWith(p) || name.startsWith(p))) continue;
        let st: BigIntStats;
        try {
          st = await stat(join(this.#blobsDir, alg, name), { bigint: true });
        } catch (err) {
          if (errno(err) === "ENOENT") continue; // deleted while walking
          throw err;
        }
        if (!st.isFile()) continue;
        await fn(blobInfo(digest, st));
      }
    }
  }

  async delete(digest: Digest): Promise<void> {
    if (!this.removeBlob(digest)) throw new NotFoundError(`content ${digest}: not found`);
  }

  async update(digest: Digest): Promise<Info> {
    await this.info(digest);
    throw new FailedPreconditionError(
      `content ${digest}: labels are kept per namespace by the metadata layer, not by the blob store`,
    );
  }

  // ---- Ingester

  /**
   * Opens (or resumes) the ingest of `ref`. AlreadyExistsError at once when the
   * expected content is already stored; a ref held by another writer is waited
   * for (lockTimeout), then UnavailableError.
   */
  async writer(opts: LocalWriterOptions): Promise<LocalWriter> {
    const { ref, total, expected } = checkWriterOptions(opts);
    const exists = () => (expected ? existsSync(this.blobPath(expected)) : false);
    const already = () => new AlreadyExistsError(`content ${expected} already exists`);
    if (exists()) throw already();

    const key = sha256Hex(ref);
    let lock: Awaited<ReturnType<typeof acquireRefLock>>;
    try {
      lock = await acquireRefLock(this.#locksDir, key, ref, {
        timeout: opts.lockTimeout ?? this.lockTimeout,
        signal: opts.signal,
        giveUp: exists,
      });
    } catch (err) {
      if (err instanceof GaveUp) throw already();
      throw this.#fsError(err);
    }
    try {
      // the writer we waited for may have committed exactly this content
      if (exists()) throw already();
      const state = await this.#openIngest(this.#ingestPath(ref), ref, total, expected);
      const dataPath = join(state.dir, "data");
      const fh = await openData(dataPath);
      try {
        state.offset = (await fh.stat()).size;
        const algorithm = state.expected ? algorithmOf(state.expected) : CANONICAL;
        // resume: rebuild the running digest from what is already on disk
        const digester = await hashFile(dataPath, algorithm, state.offset);
        return new LocalWriter({ blobPath: (d) => this.blobPath(d) }, lock, state, fh, digester);
      } catch (err) {
        await fh.close();
        throw err;
      }
    } catch (err) {
      lock.release();
      throw this.#fsError(err);
    }
  }

  /** Resumes the ingest in `dir` when it is sound and compatible, else starts it afresh. */
  async #openIngest(dir: string, ref: string, total: number, expected: Digest | undefined): Promise<IngestState> {
    let state: IngestState | undefined;
    try {
      state = await readIngest(dir);
    } catch (err) {
      if (errno(err) !== "ENOENT" && !(err instanceof CorruptIngest)) throw err;
    }
    if (state && state.ref !== ref) state = undefined;
    if (state && total > 0 && state.total > 0 && state.total !== total) {
      throw new InvalidArgumentError(
        `ref ${ref}: total size ${total} differs from the ${state.total} of the ingest in progress (abort it to restart)`,
      );
    }
    // bytes written for other content are of no use
    if (state && expected && state.expected && state.expected !== expected) state = undefined;
    if (!state) return createIngest(dir, ref, total, expected);
    if (expected && !state.expected) {
      await writeFile(join(dir, "expected"), expected);
      state.expected = expected;
    }
    if (total > 0 && state.total === 0) {
      await writeFile(join(dir, "total"), String(total));
      state.total = total;
    }
    return state;
  }

  // ---- IngestManager

  async status(ref: string): Promise<Status> {
    try {
      const state = await readIngest(this.#ingestPath(ref));
      if (state.ref === ref) return toStatus(state);
    } catch (err) {
      if (errno(err) !== "ENOENT" && !(err instanceof CorruptIngest)) throw err;
    }
    throw new NotFoundError(`ingest ${ref}: not found`);
  }

  async listStatuses(filter: { refPrefixes?: string[] } = {}): Promise<Status[]> {
    const prefixes = filter.refPrefixes ?? [];
    const out: Status[] = [];
    for (const { state } of await this.#ingests()) {
      if (!state) continue;
      if (prefixes.length > 0 && !prefixes.some((p) => state.ref.startsWith(p))) continue;
      out.push(toStatus(state));
    }
    return out.sort((a, b) => a.ref.localeCompare(b.ref));
  }

  /** Every ingest directory, with its state when readable. */
  async #ingests(): Promise<{ name: string; dir: string; state?: IngestState }[]> {
    let names: string[];
    try {
      names = await readdir(this.#ingestDir);
    } catch (err) {
      if (errno(err) === "ENOENT") return [];
      throw err;
    }
    const out: { name: string; dir: string; state?: IngestState }[] = [];
    for (const name of names) {
      const dir = join(this.#ingestDir, name);
      if (name.startsWith(REMOVING)) {
        // an abort that did not finish: nobody can use it
        await rm(dir, { recursive: true, force: true }).catch(() => {});
        continue;
      }
      try {
        out.push({ name, dir, state: await readIngest(dir) });
      } catch (err) {
        if (errno(err) === "ENOENT" || errno(err) === "ENOTDIR") continue; // committed meanwhile
        if (err instanceof CorruptIngest) out.push({ name, dir });
        else throw err;
      }
    }
    return out;
  }

  /**
   * Removes the ingest of `ref` without waiting for its writer, as containerd's
   * local store does. The directory is renamed away first (atomically), so a
   * writer still holding the ref cannot publish it (its data is no longer at
   * the ingest's path) nor write into a new ingest of the same ref, and what it
   * rewrites on close lands nowhere. NotFoundError when there is no such ingest.
   */
  async abort(ref: string): Promise<void> {
    if (ref === "") throw new InvalidArgumentError("must specify a ref to abort");
    const dir = this.#ingestPath(ref);
    const trash = join(this.#ingestDir, `${REMOVING}${randomBytes(8).toString("hex")}`);
    try {
      renameSync(dir, trash);
    } catch (err) {
      if (errno(err) === "ENOENT") throw new NotFoundError(`ingest ${ref}: not found`);
      throw this.#fsError(err);
    }
    await rm(trash, { recursive: true, force: true }).catch(() => {});
  }

  /**
   * The lock of the ingest of `ref`, taken without waiting: null while a writer
   * holds it. Garbage collection holds it while it drops the ingest's record,
   * so no writer goes on writing an ingest that is being removed.
   * @internal
   */
  tryLockIngest(ref: string): RefLock | null {
    try {
      return tryLock(this.#locksDir, sha256Hex(ref), ref);
    } catch (err) {
      throw this.#fsError(err);
    }
  }

  /**
   * Removes ingests not updated for `olderThanMs` (and half-created ones as
   * old), skipping those a writer holds; with `only`, just the ingests it
   * accepts (their ref; undefined for a half-created one), asked while the
   * ingest's lock is held, so the answer cannot change before the removal.
   * With `dryRun`, nothing is removed. Returns what was (or would be) removed.
   */
  async pruneIngests(
    olderThanMs: number,
    only?: (ref: string | undefined) => boolean,
    dryRun = false,
  ): Promise<Status[]> {
    const cutoff = Date.now() - olderThanMs;
    const removed: Status[] = [];
    for (const { name, dir, state } of await this.#ingests()) {
      let updated: number;
      try {
        updated = state ? state.updatedAt.getTime() : (await stat(dir)).mtime.getTime();
      } catch {
        continue;
      }
      if (updated > cutoff) continue;
      let lock: ReturnType<typeof tryLock>;
      try {
        lock = tryLock(this.#locksDir, name, state?.ref ?? `#${name}`);
      } catch (err) {
        throw this.#fsError(err);
      }
      if (!lock) continue;
      try {
        if (only && !only(state?.ref)) continue;
        if (!dryRun) await rm(dir, { recursive: true, force: true });
      } catch (err) {
        throw this.#fsError(err);
      } finally {
        lock.release();
      }
      const now = new PreciseDate(BigInt(updated) * 1_000_000n);
      removed.push(
        state
          ? toStatus(state)
          : { ref: `(unreadable ingest ${name})`, offset: 0, total: 0, startedAt: now, updatedAt: now },
      );
    }
    return removed;
  }

  close(): void {}
}

/**
 * Opens an ingest's data for writing. A commit that failed after making the
 * file read-only (before its rename) leaves it so: make it writable again.
 */
async function openData(path: string): Promise<FileHandle> {
  try {
    return await open(path, "r+");
  } catch (err) {
    if (errno(err) !== "EACCES") throw err;
    await chmod(path, 0o644);
    return open(path, "r+");
  }
}

function blobInfo(digest: Digest, st: BigIntStats): Info {
  const at = new PreciseDate(st.mtimeNs);
  return { digest, size: Number(st.size), createdAt: at, updatedAt: at, labels: {} };
}
