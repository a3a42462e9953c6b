/**
 * The terminal renderer for a ProgressTracker. On a TTY it redraws the seed's
 * table in place every 100 ms; elsewhere (pipes, CI=true) it prints one plain
 * line per state change. Both end with `elapsed: … total: … (rate)`.
 */
import { formatBytes } from "../format.ts";
import type { ProgressEntry, ProgressTracker } from "./tracker.ts";

/** Where a ProgressRenderer writes (a tty stream or anything with write). */
export interface ProgressOutput {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
  rows?: number;
}

/** Options of new ProgressRenderer. */
export interface RendererOptions {
  out?: ProgressOutput;
  /** Force table or plain mode; by default a table on a TTY unless CI=true. */
  mode?: "table" | "plain";
  /** Redraw period in ms (table mode). */
  interval?: number;
  /** Colour the bar (TTY only). */
  color?: boolean;
}

const BAR_WIDTH = 40;
const ACTIVE = new Set(["downloading", "extracting", "uploading", "committing", "importing", "exporting"]);

/** containerd's progress.Bar: `|+++---|`, width including the borders, value clamped to [0,1]. */
export function bar(fraction: number, width = BAR_WIDTH, color = false): string {
  const inner = width - 2;
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
  const filled = Math.round(f * inner);
  const plus = "+".repeat(filled);
  return `|${color && filled > 0 ? `\x1b[32m${plus}\x1b[0m` : plus}${"-".repeat(inner - filled)}|`;
}

function fractionOf(e: ProgressEntry): number {
  if (e.state === "resolving" || e.state === "waiting") return 0;
  if (ACTIVE.has(e.state)) return e.total > 0 ? e.offset / e.total : 0;
  return 1;
}

/** The cells of one line: key, status, bar, and bytes while active. */
export function rowOf(e: ProgressEntry, color = false): string[] {
  const cells = [`${e.key}:`, e.state, bar(fractionOf(e), BAR_WIDTH, color)];
  if (ACTIVE.has(e.state)) cells.push(`${formatBytes(e.offset).padStart(8)}/${formatBytes(e.total)}`);
  return cells;
}

/** The summary as table cells: elapsed under the keys, total under the states, the rate under the bars. */
function summaryCells(tracker: ProgressTracker): string[] {
  const ms = tracker.elapsed();
  const bytes = tracker.transferred();
  const rate = ms > 0 ? (bytes * 1000) / ms : 0;
  return [`elapsed: ${(ms / 1000).toFixed(1)} s`, `total: ${formatBytes(bytes)}`, `(${formatBytes(rate)}/s)`];
}

/** `elapsed: 1.6 s  total: 12.3 MiB (7.7 MiB/s)` */
export function summaryLine(tracker: ProgressTracker): string {
  const [elapsed, total, rate] = summaryCells(tracker);
  return `${elapsed}  ${total} ${rate}`;
}

/** The plain line for a state change. */
export function plainLine(e: ProgressEntry): string {
  if (ACTIVE.has(e.state) && e.total > 0)
    return `${e.key}: ${e.state} ${formatBytes(e.offset)}/${formatBytes(e.total)}`;
  if ((e.state === "done" || e.state === "exists") && e.total > 0)
    return `${e.key}: ${e.state} ${formatBytes(e.total)}`;
  return `${e.key}: ${e.state}`;
}

/** Aligns rows like Go's tabwriter with padding 1 (two spaces between columns here). */
function align(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, visibleLength(c));
    });
  }
  return rows.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c + " ".repeat((widths[i] ?? 0) - visibleLength(c))))
      .join("  ")
      .trimEnd(),
  );
}

function visibleLength(s: string): number {
  return s.replace(/\x1b\[[0-9;]*m/g, "").length;
}

export function defaultMode(out: ProgressOutput): "table" | "plain" {
  const ci = process.env.CI;
  if (ci && ci !== "false" && ci !== "0") return "plain";
  if (process.env.TERM === "dumb") return "plain";
  return out.isTTY ? "table" : "plain";
}

/** Draws a ProgressTracker: the redrawn table on a terminal, one plain line per state change elsewhere. */
export class ProgressRenderer {
  readonly #tracker: ProgressTracker;
  readonly #out: ProgressOutput;
  readonly mode: "table" | "plain";
  readonly #interval: number;
  readonly #color: boolean;
  #timer: NodeJS.Timeout | undefined;
  #lines = 0;
  #stopped = false;
  readonly #onChange = (e: Readonly<ProgressEntry>, stateChanged: boolean) => {
    // committing is a moment between the last byte and done: not worth a line of its own
    if (stateChanged && e.state !== "committing") this.#out.write(`${plainLine(e)}\n`);
  };

  constructor(tracker: ProgressTracker, opts: RendererOptions = {}) {
    this.#tracker = tracker;
    this.#out = opts.out ?? process.stdout;
    this.mode = opts.mode ?? defaultMode(this.#out);
    this.#interval = opts.interval ?? 100;
    this.#color = opts.color ?? (this.mode === "table" && !process.env.NO_COLOR);
  }

  start(): this {
    if (this.mode === "plain") {
      for (const e of this.#tracker.entries()) this.#onChange(e, true);
      this.#tracker.on("change", this.#onChange);
    } else {
      this.#timer = setInterval(() => this.#draw(false), this.#interval);
      this.#timer.unref();
      this.#draw(false);
    }
    return this;
  }

  /** Stops redrawing and prints the final frame (table) and the summary line. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    if (this.mode === "plain") {
      this.#tracker.off("change", this.#onChange);
      this.#out.write(`${summaryLine(this.#tracker)}\n`);
    } else {
      this.#draw(true);
    }
  }

  /** The table frame as text (without cursor movement). */
  frame(): string {
    let entries = [...this.#tracker.entries()];
    // a frame taller than the terminal cannot be redrawn in place: finished objects make room first
    const room = this.#out.rows && this.#out.rows > 3 ? this.#out.rows - 2 : Number.POSITIVE_INFINITY;
    if (entries.length > room) {
      let drop = entries.length - room;
      entries = entries.filter((e, i) => {
        if (drop > 0 && i > 0 && (e.state === "done" || e.state === "exists")) {
          drop--;
          return false;
        }
        return true;
      });
      if (entries.length > room) entries = [entries[0], ...entries.slice(entries.length - room + 1)];
    }
    const rows = entries.map((e) => rowOf(e, this.#color));
    const lines = align([...rows, summaryCells(this.#tracker)]);
    return `${lines.join("\n")}\n`;
  }

  #draw(_final: boolean): void {
    const text = this.frame();
    let clear = "";
    if (this.#lines > 0) clear = `\x1b[${this.#lines}F\x1b[J`;
    const cols = this.#out.columns && this.#out.columns > 0 ? this.#out.columns : 0;
    let n = 0;
    for (const line of text.split("\n").slice(0, -1)) {
      const len = visibleLength(line);
      n += cols > 0 ? Math.max(1, Math.ceil(len / cols)) : 1;
    }
    this.#lines = n;
    this.#out.write(clear + text);
  }
}
