/**
 * The content store's interfaces: blobs addressed by digest (Provider, Manager)
 * and writes keyed by a ref (Ingester, Writer, IngestManager). The local
 * filesystem store implements them in ./local; the gRPC client adapter in
 * src/services implements the same ones, so callers never know which is used.
 */
import type { Readable } from "node:stream";
import type { Digest } from "../digest.ts";

export interface Info {
  digest: Digest;
  size: number;
  createdAt: Date;
  updatedAt: Date;
  labels: Record<string, string>;
}

export interface Status {
  ref: string;
  offset: number;
  total: number;
  expected?: Digest;
  startedAt: Date;
  updatedAt: Date;
}

export interface ReadOptions {
  offset?: number;
  /** Bytes to read from offset; the rest of the blob when absent. */
  length?: number;
  signal?: AbortSignal;
}

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

export interface WalkFilter {
  /** Digest prefixes, e.g. "sha256:ab". */
  digestPrefixes?: string[];
  /** Label filters: key (present) or key=value. */
  labels?: string[];
}

export interface Manager {
  walk(fn: (info: Info) => void | Promise<void>, filter?: WalkFilter): Promise<void>;
  delete(digest: Digest): Promise<void>;
  /** Replaces labels; with fieldpaths (`labels.<key>`) only those keys change. */
  update(digest: Digest, labels: Record<string, string>, fieldpaths?: string[]): Promise<Info>;
}

export interface WriterOptions {
  ref: string;
  total?: number;
  expected?: Digest;
  signal?: AbortSignal;
}

export interface CommitOptions {
  labels?: Record<string, string>;
}

export interface Writer {
  /** Appends bytes at the current offset. */
  write(chunk: Uint8Array): Promise<void>;
  status(): Status;
  /** The digest of everything written so far. */
  digest(): Digest;
  /**
   * Verifies size and digest (each when given, else from the writer's total and expected),
   * makes the blob visible atomically and releases the ref. Content that already exists is
   * not an error. A failed verification discards the ingest.
   */
  commit(size?: number, expected?: Digest, opts?: CommitOptions): Promise<void>;
  /** Releases the ref, keeping what was written for a later resume. */
  close(): Promise<void>;
  /** Only 0: restart the ingest from the beginning. */
  truncate(size: 0): Promise<void>;
}

export interface Ingester {
  /**
   * Opens (or resumes) the ingest of `ref`, holding its lock until commit or close.
   * Throws AlreadyExistsError at once when `expected` is already in the store.
   */
  writer(opts: WriterOptions): Promise<Writer>;
}

export interface IngestManager {
  status(ref: string): Promise<Status>;
  listStatuses(filter?: { refPrefixes?: string[] }): Promise<Status[]>;
  abort(ref: string): Promise<void>;
}

export interface Store extends Provider, Manager, Ingester, IngestManager {
  close?(): Promise<void> | void;
}
