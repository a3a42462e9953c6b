/**
 * Progress as events: each object of a transfer is a key (the image ref,
 * `layer-sha256:…`) with a state, a byte offset and a total. Flows update the
 * tracker; renderers listen. Nothing here knows about terminals.
 */
import { EventEmitter } from "node:events";
import { type ProgressEvent, progressEvent } from "./events.ts";

/** The state of one object of a transfer, as the progress table shows it. */
export type ProgressState =
  | "resolving"
  | "resolved"
  | "waiting"
  | "downloading"
  | "committing"
  | "extracting"
  | "uploading"
  | "importing"
  | "exporting"
  | "done"
  | "exists"
  /** A push found the blob in another repository of the registry and mounted it: nothing sent. */
  | "mounted"
  | "skipped"
  | "error";

/** One object of a transfer (the ref, `layer-sha256:…`): its state and bytes. */
export interface ProgressEntry {
  key: string;
  state: ProgressState;
  /** Bytes done so far (for a resumed download, counted from the start of the blob). */
  offset: number;
  /** Expected size; 0 when unknown. */
  total: number;
  /** Where this run started (a resume offset): bytes before it were not transferred now. */
  startOffset: number;
  /** When the key entered its first active state (ms since the epoch). */
  startedAt?: number;
  updatedAt: number;
}

/** A change to an entry of a ProgressTracker. */
export interface ProgressUpdate {
  state?: ProgressState;
  offset?: number;
  total?: number;
  startOffset?: number;
}

/** States whose bytes moved over the network in this run. */
const TRANSFERRING: ReadonlySet<ProgressState> = new Set([
  "downloading",
  "committing",
  "uploading",
  "importing",
  "exporting",
  "done",
  "extracting",
]);

/** The events of a ProgressTracker. */
export interface TrackerEvents {
  /** Any change; `stateChanged` when the state differs from before (or the key is new). */
  change: [entry: Readonly<ProgressEntry>, stateChanged: boolean];
  /** The same change as data (events.ts): what `--progress json` prints. */
  event: [event: ProgressEvent, stateChanged: boolean];
}

/** Progress as events: fetch, pull and unpack update it (the `progress` option); listeners and renderers read it. */
export class ProgressTracker extends EventEmitter<TrackerEvents> {
  readonly #entries = new Map<string, ProgressEntry>();
  readonly #now: () => number;
  readonly startedAt: number;

  constructor(opts: { now?: () => number } = {}) {
    super();
    this.#now = opts.now ?? Date.now;
    this.startedAt = this.#now();
  }

  now(): number {
    return this.#now();
  }

  /**
   * Creates or updates a key, keeping the order keys first appeared in. An
   * offset never exceeds the total, and a finished object counts as complete.
   */
  update(key: string, u: ProgressUpdate): void {
    const t = this.#now();
    let e = this.#entries.get(key);
    const isNew = !e;
    if (!e) {
      e = { key, state: u.state ?? "waiting", offset: 0, total: 0, startOffset: 0, updatedAt: t };
      this.#entries.set(key, e);
    }
    const before = e.state;
    if (u.total !== undefined) e.total = u.total;
    if (u.startOffset !== undefined) e.startOffset = u.startOffset;
    if (u.offset !== undefined) e.offset = u.offset;
    if (u.state !== undefined) e.state = u.state;
    if ((e.state === "done" || e.state === "exists" || e.state === "mounted") && e.total > 0) e.offset = e.total;
    if (e.total > 0 && e.offset > e.total) e.offset = e.total;
    if (e.startedAt === undefined && e.state !== "waiting") e.startedAt = t;
    e.updatedAt = t;
    const stateChanged = isNew || before !== e.state;
    this.emit("change", e, stateChanged);
    // made only when listened to: a download changes its entry at every chunk
    if (this.listenerCount("event") > 0) this.emit("event", progressEvent(e), stateChanged);
  }

  /** Sets only the state. */
  set(key: string, state: ProgressState, total?: number): void {
    this.update(key, total === undefined ? { state } : { state, total });
  }

  get(key: string): Readonly<ProgressEntry> | undefined {
    return this.#entries.get(key);
  }

  entries(): ReadonlyArray<Readonly<ProgressEntry>> {
    return [...this.#entries.values()];
  }

  /** Bytes transferred in this run, finished objects included ("exists" ones are not). */
  transferred(): number {
    let n = 0;
    for (const e of this.#entries.values()) {
      if (TRANSFERRING.has(e.state)) n += Math.max(0, e.offset - e.startOffset);
    }
    return n;
  }

  /** Milliseconds since the tracker was made. */
  elapsed(): number {
    return this.#now() - this.startedAt;
  }
}
