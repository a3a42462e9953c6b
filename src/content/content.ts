/**
 * The content store's interfaces: blobs addressed by digest (Provider, Manager)
 * and writes keyed by a ref (Ingester, Writer, IngestManager). The local
 * filesystem store implements them in ./local; the gRPC client adapter in
 * src/services implements the same ones, so callers never know which is used.
 */
import type { Readable } from "node:stream";
import { type Digest, validateDigest } from "../digest.ts";
import { InvalidArgumentError } from "../errors.ts";

/**
 * A committed blob: digest, size, times and labels.
 * Times are Dates; the stores and the gRPC client return PreciseDates (src/time.ts),
 * which keep the nanoseconds (`epochNsOf(date)` reads them from any Date).
 */
export interface Info {
  digest: Digest;
  size: number;
  /** When the blob was committed in the namespace. */
  createdAt: Date;
  /** The commit, or the last change of its labels. */
  updatedAt: Date;
  labels: Record<string, string>;
}

/** An ingest in progress: its ref, bytes written so far and expected total. */
export interface Status {
  ref: string;
  offset: number;
  total: number;
  expected?: Digest;
  startedAt: Date;
  updatedAt: Date;
}

/** Options of Provider.openRead: a byte range and a signal. */
export interface ReadOptions {
  offset?: number;
  /** Bytes to read from offset; the rest of the blob when absent. */
  length?: number;
  signal?: AbortSignal;
}

/** Reads blobs by digest. */
export interface Provider {
  info(digest: Digest): Promise<Info>;
  /** Streams a blob from `offset`; NotFoundError when absent, OutOfRangeError past the end. */
  openRead(digest: Digest, opts?: ReadOptions): Promise<Readable>;
  /** Reads into buf at the blob position; returns the byte count (0 at the end). */
  readAt(digest: Digest, buf: Uint8Array, position: number): Promise<number>;
}

/**
 * A capability of a provider whose committed blobs are files on this machine
 * (the local store): a reader may open one itself, e.g. the layer applier's
 * decompression worker, which leaves the main thread free to make the files.
 */
export interface BlobFiles {
  /** The file holding a committed blob (whether or not it exists). */
  blobPath(digest: Digest): string;
}

/** Whether a provider declares the BlobFiles capability. */
export function hasBlobFiles<T extends object>(provider: T): provider is T & BlobFiles {
  return typeof (provider as Partial<BlobFiles>).blobPath === "function";
}

/**
 * A capability of an ingester whose writes in progress are files on this
 * machine: a reader may follow an ingest's bytes as they are written (the
 * registry server hands a download to every client waiting for it).
 */
export interface IngestFiles {
  /** The file receiving the bytes of the ingest `ref` (whether or not it exists). */
  ingestDataPath(ref: string): string;
}

/** Whether an ingester declares the IngestFiles capability. */
export function hasIngestFiles<T extends object>(ingester: T): ingester is T & IngestFiles {
  return typeof (ingester as Partial<IngestFiles>).ingestDataPath === "function";
}

/** Selects blobs in Manager.walk by digest prefix and labels. */
export interface WalkFilter {
  /** Digest prefixes, e.g. "sha256:ab". */
  digestPrefixes?: string[];
  /** Label filters: key (present) or key=value. */
  labels?: string[];
}

/** Lists, deletes and labels blobs. */
export interface Manager {
  walk(fn: (info: Info) => void | Promise<void>, filter?: WalkFilter): Promise<void>;
  delete(digest: Digest): Promise<void>;
  /** Replaces labels; with fieldpaths (`labels.<key>`) only those keys change. */
  update(digest: Digest, labels: Record<string, string>, fieldpaths?: string[]): Promise<Info>;
}

/** Options of Ingester.writer: the ingest's ref, and the expected size and digest when known. */
export interface WriterOptions {
  ref: string;
  total?: number;
  expected?: Digest;
  signal?: AbortSignal;
}

/** Options of Writer.commit: labels for the new blob. */
export interface CommitOptions {
  labels?: Record<string, string>;
}

/** An open ingest: bytes are appended, then committed (verified and made visible atomically) or kept for a resume. */
export interface Writer {
  /** Appends bytes at the current offset. */
  write(chunk: Uint8Array): Promise<void>;
  status(): Status;
  /** The digest of everything written so far. */
  digest(): Digest;
  /**
   * Verifies size and digest (each when given, else from the writer's total and expected),
   * makes the blob visible atomically and releases the ref. AlreadyExistsError when the
   * content was already there (the ingest is gone all the same). A failed verification
   * (FailedPreconditionError) closes the writer and keeps the ingest, as containerd does:
   * a caller that knows the bytes are bad aborts it.
   */
  commit(size?: number, expected?: Digest, opts?: CommitOptions): Promise<void>;
  /** Releases the ref, keeping what was written for a later resume. */
  close(): Promise<void>;
  /** Only 0: restart the ingest from the beginning. */
  truncate(size: 0): Promise<void>;
}

/** Writes blobs through ingests keyed by a ref. */
/** @internal Checks a writer's options: a ref, a total that is a size (0 when absent), a valid expected digest. */
export function checkWriterOptions(opts: WriterOptions): { ref: string; total: number; expected?: Digest } {
  const ref = opts.ref;
  if (typeof ref !== "string" || ref === "") throw new InvalidArgumentError("must specify a ref for the ingest");
  const total = opts.total ?? 0;
  if (!Number.isSafeInteger(total) || total < 0) {
    throw new InvalidArgumentError(`invalid total size ${opts.total} for ref ${ref}`);
  }
  return { ref, total, expected: opts.expected ? validateDigest(opts.expected) : undefined };
}

/** Writes blobs through ingests keyed by a ref. */
export interface Ingester {
  /**
   * Opens (or resumes) the ingest of `ref`, holding its lock until commit or close; a ref
   * another writer holds is waited for a while, then UnavailableError. Throws
   * AlreadyExistsError at once when `expected` is already in the store.
   */
  writer(opts: WriterOptions): Promise<Writer>;
}

/** Inspects and aborts ingests in progress. */
export interface IngestManager {
  status(ref: string): Promise<Status>;
  listStatuses(filter?: { refPrefixes?: string[] }): Promise<Status[]>;
  /** Drops the ingest, without waiting for a writer that holds it (its commit then fails). */
  abort(ref: string): Promise<void>;
}

/**
 * A store that writes under a lease (a namespace's, opened with one): `retain`
 * puts a blob it already has on that lease, as containerd's writer does when
 * the content exists, so a flow that finds a blob keeps it until its own
 * records reference it. NotFoundError when the store does not have it.
 */
export interface Retainer {
  retain(digest: Digest): Promise<void>;
}

/** A content store: the four interfaces together (LocalStore, or a daemon's through the gRPC client). */
export interface Store extends Provider, Manager, Ingester, IngestManager {
  close?(): Promise<void> | void;
}
