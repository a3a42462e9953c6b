/**
 * When a daemon collects (containerd's gc scheduler plugin): soon after a
 * delete that can free something (an image, a lease, a snapshot, a blob), at
 * a lease's expiry, and on demand (`ctr images rm --sync`, a lease deleted
 * with sync). Scheduled collections keep to a pause bound: the time spent
 * collecting stays under `pauseThreshold` of the time elapsed (containerd's
 * pause_threshold, 0.02), however many deletes come in; on-demand ones run at
 * once. Collections run one at a time (collectGarbage also locks the root).
 */
import type { Metadata } from "../metadata/metadata.ts";
import { type CollectOptions, type CollectResult, collectGarbage } from "./collect.ts";

/** Options of GcScheduler. */
export interface GcSchedulerOptions {
  /**
   * How long after a delete a scheduled collection starts (ms; default 100);
   * false: none is scheduled, only those asked for run (collectNow).
   */
  delayMs?: number | false;
  /** The most of the time a scheduled collection may take (default 0.02, containerd's). */
  pauseThreshold?: number;
  /** Told of each collection (a daemon logs it). */
  onCollected?(r: CollectResult): void;
  /** Told of a scheduled collection that failed (an on-demand one rejects instead). */
  onError?(err: unknown): void;
  /** Passed to each collection. */
  collect?: Omit<CollectOptions, "dryRun" | "only" | "skipImage" | "signal">;
}

/** Schedules the collections of one root (see the module comment). */
export class GcScheduler {
  readonly #md: Metadata;
  readonly #opts: GcSchedulerOptions;
  #chain: Promise<unknown> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #expiries = new Set<NodeJS.Timeout>();
  #lastEnd = 0;
  #lastMs = 0;
  #closed = false;

  constructor(md: Metadata, opts: GcSchedulerOptions = {}) {
    this.#md = md;
    this.#opts = opts;
  }

  /** Something that may free space was deleted: a collection follows, within the pause bound. */
  schedule(): void {
    if (this.#closed || this.#timer || this.#opts.delayMs === false) return;
    const threshold = this.#opts.pauseThreshold ?? 0.02;
    const bound = this.#lastEnd + this.#lastMs / threshold - Date.now();
    const wait = Math.max(this.#opts.delayMs ?? 100, bound);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#run().catch((err) => this.#opts.onError?.(err));
    }, wait);
    this.#timer.unref();
  }

  /** A collection now (after the one running, if any): what a sync delete waits for. */
  collectNow(): Promise<CollectResult> {
    if (this.#closed) return Promise.reject(new Error("garbage collection scheduler closed"));
    return this.#run();
  }

  /** A lease expires at `at`: a collection then takes what it alone held. */
  expireAt(at: Date): void {
    if (this.#closed || this.#opts.delayMs === false) return;
    // setTimeout's bound (~24.8 days); a later expiry is found by a later collection
    const ms = Math.min(Math.max(at.getTime() - Date.now(), 0) + 10, 2 ** 31 - 1);
    const t = setTimeout(() => {
      this.#expiries.delete(t);
      this.schedule();
    }, ms);
    t.unref();
    this.#expiries.add(t);
  }

  /** Stops scheduling and waits for a collection in progress. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const t of this.#expiries) clearTimeout(t);
    this.#expiries.clear();
    await this.#chain.catch(() => {});
  }

  #run(): Promise<CollectResult> {
    const run = this.#chain
      .catch(() => {})
      .then(async () => {
        const started = Date.now();
        try {
          const r = await collectGarbage(this.#md, this.#opts.collect);
          this.#opts.onCollected?.(r);
          return r;
        } finally {
          this.#lastEnd = Date.now();
          this.#lastMs = this.#lastEnd - started;
        }
      });
    this.#chain = run;
    return run;
  }
}
