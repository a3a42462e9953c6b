/**
 * `--progress json`: a tracker's events (events.ts) as JSON lines, then the
 * summary. Every state change is a line; while bytes move, an object gets a
 * line at most every `interval` ms (a download changes at every chunk); one
 * held back is written before the summary if no state change came after it.
 */
import { type ProgressEvent, progressSummary } from "./events.ts";
import type { ProgressOutput } from "./render.ts";
import type { ProgressTracker } from "./tracker.ts";

/** Options of new JsonProgressWriter. */
export interface JsonProgressOptions {
  out?: Pick<ProgressOutput, "write">;
  /** The least time between two byte-count lines of one object, in ms (default 100). */
  interval?: number;
}

/** Writes a ProgressTracker's events as JSON lines, then its summary (`--progress json`). */
export class JsonProgressWriter {
  readonly #tracker: ProgressTracker;
  readonly #out: Pick<ProgressOutput, "write">;
  readonly #interval: number;
  /** Per object: when its last line was written, and a byte-count event held back since. */
  readonly #last = new Map<string, { at: number; held?: ProgressEvent }>();
  #stopped = false;
  readonly #onEvent = (e: ProgressEvent, stateChanged: boolean) => {
    const last = this.#last.get(e.object);
    const now = Date.parse(e.time);
    if (!stateChanged && last && now - last.at < this.#interval) {
      last.held = e;
      return;
    }
    this.#write(e);
    this.#last.set(e.object, { at: now });
  };

  constructor(tracker: ProgressTracker, opts: JsonProgressOptions = {}) {
    this.#tracker = tracker;
    this.#out = opts.out ?? process.stdout;
    this.#interval = opts.interval ?? 100;
  }

  #write(e: object): void {
    this.#out.write(`${JSON.stringify(e)}\n`);
  }

  start(): this {
    this.#tracker.on("event", this.#onEvent);
    return this;
  }

  /** Stops listening and writes the summary line, with the command's `extra` fields. */
  stop(outcome: { error?: string } = {}, extra: Record<string, unknown> = {}): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#tracker.off("event", this.#onEvent);
    for (const { held } of this.#last.values()) if (held) this.#write(held);
    this.#write(progressSummary(this.#tracker, outcome, extra));
  }
}
