/**
 * What the main thread (inflater.ts) and the decompression worker
 * (inflate-worker.ts) say to each other: the shared slots and the messages.
 * Bytes never travel in a message: a message names a slot of shared memory and
 * how much of it is filled. Types only, so neither thread loads this module.
 */
import type { ErrorData } from "../errors.ts";
import type { Compression } from "./compression.ts";

/** How the gzip decoder is chosen: DIST_GZIP's value ("isa-l", "zlib"), else "auto". */
export type GzipChoice = "isa-l" | "zlib" | "auto";

export interface InflateWorkerData {
  /** Input slots of slotSize bytes, filled by the main thread. */
  inShared: SharedArrayBuffer;
  /** outSlots output slots of slotSize bytes, filled by the worker. */
  outShared: SharedArrayBuffer;
  outSlots: number;
  slotSize: number;
  gzip: GzipChoice;
}

/** A range of a file the worker reads itself (a blob in the content store). */
export interface InflateFile {
  path: string;
  offset: number;
  length: number;
}

export type ToWorker =
  /** A new job; `what` names its source in errors. */
  | { op: "start"; id: number; compression: Compression; what: string; file?: InflateFile }
  /** Compressed bytes of a job in an input slot. */
  | { op: "in"; id: number; slot: number; length: number }
  /** No more input for a job. */
  | { op: "end"; id: number }
  /** The main thread is done with an output slot. */
  | { op: "free-out"; slot: number }
  /** The main thread closed a job: forget it, tell nothing. */
  | { op: "drop"; id: number };

export type FromWorker =
  /** The gzip decoder in use ("isa-l" or "zlib"), or why a forced one is unusable. */
  | { op: "backend"; gzip: string }
  /** The worker is done with an input slot. */
  | { op: "free-in"; slot: number }
  /** Uncompressed bytes of a job in an output slot; `read`: a file-fed job's bytes read so far. */
  | { op: "out"; id: number; slot: number; length: number; read?: number }
  /** A job ended whole: the sha256 (hex) and size of its uncompressed bytes. */
  | { op: "done"; id: number; hex: string; size: number }
  /** A job failed; the error crosses by kind. */
  | { op: "error"; id: number; error: ErrorData };
