/**
 * The filesystem content store under `<root>/content`:
 *   blobs/<alg>/<hex>          committed blobs, read-only
 *   ingest/<sha256(ref)>/      writes in progress (see ingest.ts)
 *   locks/<sha256(ref)>        flock files of refs being written (see lock.ts)
 * Labels live outside, per namespace: in the LabelStore the store is given.
 */
import { createHash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { chmod, type FileHandle, open, readdir, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import {
  algorithmOf,
  CANONICAL,
  type Digest,
  isAlgorithm,
  isDigest,
  parseDigest,
  validateDigest,
} from "../../digest.ts";
import {
  AlreadyExistsError,
  DistError,
  InvalidArgumentError,
  NotFoundError,
  OutOfRangeError,
  UnavailableError,
  wrapError,
} from "../../errors.ts";
import type {
  BlobFiles,
  Info,
  IngestFiles,
  ReadOptions,
  Status,
  Store,
  WalkFilter,
  Writer,
  WriterOptions,
} from "../content.ts";
import { CorruptIngest, createIngest, type IngestState, readIngest, toStatus } from "./ingest.ts";
import type { LabelStore } from "./labels.ts";
import { acquireRefLock, DEFAULT_LOCK_TIMEOUT, GaveUp, tryLock } from "./lock.ts";
import { hashFile, LocalWriter, type WriterContext } from "./writer.ts";

export interface LocalStoreOptions {
  /** The dist root; content lives in `<root>/content`. */
  root: string;
  /**
   * The blobs' labels, bound to a namespace: blobs are shared by all, labels are
   * not (metadata/content-labels.ts keeps them in `<root>/metadata.db`).
   */
  labels: LabelStore;
  /** How long writer() waits for a ref held by another writer (ms). Default 60 s. */
  lockTimeout?: number;
}

function sha256Hex(s: string): string {
  return createHash("sha256").update(s).digest("hex");
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

export class LocalStore implements Store, BlobFiles, IngestFiles {
  readonly root: string;
  readonly contentRoot: string;
  readonly lockTimeout: number;
  readonly #labels: LabelStore;

  constructor(opts: LocalStoreOptions) {
    this.root = opts.root;
    this.contentRoot = join(opts.root, "content");
    this.lockTimeout = opts.lockTimeout ?? DEFAULT_LOCK_TIMEOUT;
    this.#labels = opts.labels;
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

  async info(digest: Digest): Promise<Info> {
    const path = this.blobPath(digest);
    let st: Awaited<ReturnType<typeof stat>>;
    try {
      st = await stat(path);
    } catch (err) {
      if (errno(err) === "ENOENT") throw new NotFoundError(`content ${digest}: not found`);
      throw err;
    }
    const set = this.#labels.get(digest);
    return this.#info(digest, st.size, st.mtime, set.labels, set.updatedAt);
  }

  #info(digest: Digest, size: number, mtime: Date, labels: Record<string, string>, labelsAt: number): Info {
    const updatedAt = labelsAt > mtime.getTime() ? new Date(labelsAt) : mtime;
    return { digest, size, createdAt: mtime, updatedAt, labels };
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

  async walk(fn: (info: Info) => void | Promise<void>, filter: WalkFilter = {}): Promise<void> {
    const prefixes = filter.digestPrefixes ?? [];
    const labelFilters = (filter.labels ?? []).map(parseLabelFilter);
    let algs: string[];
    try {
      algs = (await readdir(this.#blobsDir)).sort();
    } catch (err) {
      if (errno(err) === "ENOENT") return;
      throw err;
    }
    const allLabels = this.#labels.all();
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
        const set = allLabels.get(digest) ?? { labels: {}, updatedAt: 0 };
        if (!labelFilters.every((f) => matchLabel(set.labels, f))) continue;
        let st: Awaited<ReturnType<typeof stat>>;
        try {
          st = await stat(join(this.#blobsDir, alg, name));
        } catch (err) {
          if (errno(err) === "ENOENT") continue; // deleted while walking
          throw err;
        }
        if (!st.isFile()) continue;
        await fn(this.#info(digest, st.size, st.mtime, set.labels, set.updatedAt));
      }
    }
  }

  async delete(digest: Digest): Promise<void> {
    const path = this.blobPath(digest);
    try {
      await rm(path);
    } catch (err) {
      if (errno(err) === "ENOENT") throw new NotFoundError(`content ${digest}: not found`);
      throw this.#fsError(err);
    }
    this.#labels.removeAll(digest);
  }

  async update(digest: Digest, labels: Record<string, string>, fieldpaths?: string[]): Promise<Info> {
    await this.info(digest);
    if (!fieldpaths || fieldpaths.length === 0 || fieldpaths.includes("labels")) {
      this.#labels.replace(digest, labels);
    } else {
      const changes: Record<string, string> = {};
      for (const path of fieldpaths) {
        if (!path.startsWith("labels.") || path.length === "labels.".length) {
          throw new InvalidArgumentError(`cannot update "${path}" of content ${digest}: only labels can change`);
        }
        const key = path.slice("labels.".length);
        changes[key] = labels[key] ?? "";
      }
      this.#labels.patch(digest, changes);
    }
    return this.info(digest);
  }

  // ---- Ingester

  async writer(opts: WriterOptions): Promise<Writer> {
    const ref = opts.ref;
    if (typeof ref !== "string" || ref === "") throw new InvalidArgumentError("must specify a ref for the ingest");
    const total = opts.total ?? 0;
    if (!Number.isSafeInteger(total) || total < 0) {
      throw new InvalidArgumentError(`invalid total size ${opts.total} for ref ${ref}`);
    }
    const expected = opts.expected ? validateDigest(opts.expected) : undefined;
    const exists = () => (expected ? existsSync(this.blobPath(expected)) : false);
    const already = () => new AlreadyExistsError(`content ${expected} already exists`);
    if (exists()) throw already();

    const key = sha256Hex(ref);
    let lock: Awaited<ReturnType<typeof acquireRefLock>>;
    try {
      lock = await acquireRefLock(this.#locksDir, key, ref, {
        timeout: this.lockTimeout,
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
        const ctx: WriterContext = {
          blobPath: (d) => this.blobPath(d),
          exists: async (p) => existsSync(p),
          setLabels: async (d, labels) => this.#labels.patch(d, labels),
        };
        return new LocalWriter(ctx, lock, state, fh, digester);
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

  async abort(ref: string): Promise<void> {
    if (ref === "") throw new InvalidArgumentError("must specify a ref to abort");
    const key = sha256Hex(ref);
    let lock: ReturnType<typeof tryLock>;
    try {
      lock = tryLock(this.#locksDir, key, ref);
    } catch (err) {
      throw this.#fsError(err);
    }
    if (!lock) throw new UnavailableError(`ref ${ref} locked: a writer is using it`);
    try {
      const dir = this.#ingestPath(ref);
      if (!existsSync(dir)) throw new NotFoundError(`ingest ${ref}: not found`);
      await rm(dir, { recursive: true, force: true });
    } catch (err) {
      throw this.#fsError(err);
    } finally {
      lock.release();
    }
  }

  /**
   * Removes ingests not updated for `olderThanMs` (and half-created ones as
   * old), skipping those a writer holds. Returns what was removed.
   */
  async pruneIngests(olderThanMs: number): Promise<Status[]> {
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
        await rm(dir, { recursive: true, force: true });
      } catch (err) {
        throw this.#fsError(err);
      } finally {
        lock.release();
      }
      const now = new Date(updated);
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

interface LabelFilter {
  key: string;
  value?: string;
}

function parseLabelFilter(s: string): LabelFilter {
  const i = s.indexOf("=");
  if (i === 0) throw new InvalidArgumentError(`invalid label filter "${s}": expected key or key=value`);
  return i < 0 ? { key: s } : { key: s.slice(0, i), value: s.slice(i + 1) };
}

function matchLabel(labels: Record<string, string>, f: LabelFilter): boolean {
  if (!Object.hasOwn(labels, f.key)) return false;
  return f.value === undefined || labels[f.key] === f.value;
}
