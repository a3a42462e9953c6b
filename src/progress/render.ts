/**
 * The terminal renderer for a ProgressTracker. On a TTY it redraws a table in
 * place every 100 ms, fitted to the terminal's width (read at each frame, and
 * redrawn at once when the terminal is resized): objects by their short name
 * (`layer 52f171f769a7`), the bar narrowed or dropped before the byte counts
 * are, so no line ever wraps. Elsewhere (pipes, CI=true) it prints one plain
 * line per state change, full keys and all. Both end with
 * `elapsed: … total: … (rate)`.
 */
import { formatBytes } from "../format.ts";
import { DIGEST_KEY } from "./events.ts";
import type { ProgressEntry, ProgressTracker } from "./tracker.ts";

/** Where a ProgressRenderer writes (a tty stream or anything with write). */
export interface ProgressOutput {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
  rows?: number;
  /** A TTY stream says "resize" when the terminal's size changed (SIGWINCH). */
  on?(event: "resize", listener: () => void): unknown;
  off?(event: "resize", listener: () => void): unknown;
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

/**
 * A TTY stream's [columns, rows] from the kernel now (TIOCGWINSZ through its
 * handle, which Node's own resize handling uses; `columns` and `rows` are only
 * refreshed when SIGWINCH is handled).
 */
function liveSize(out: ProgressOutput): [number, number] | undefined {
  const handle = (out as { _handle?: { getWindowSize?(size: number[]): number } })._handle;
  const size: number[] = [];
  try {
    if (handle?.getWindowSize?.(size) === 0 && size[0] > 0 && size[1] > 0) return [size[0], size[1]];
  } catch {}
  return undefined;
}

/** Narrower than this (borders included), a bar says too little to be worth its room. */
const MIN_BAR_WIDTH = 12;
/** The width assumed for a terminal that does not say its own. */
const DEFAULT_COLUMNS = 80;

/** A key as the table shows it: the kind and the digest's first 12 hex (`layer 52f171f769a7`), as docker does; a reference as it is. */
export function shortKey(key: string): string {
  const m = DIGEST_KEY.exec(key);
  return m ? `${m[1]} ${m[2].slice(m[2].indexOf(":") + 1, m[2].indexOf(":") + 13)}` : key;
}

/** `elapsed: 1.6 s  total: 12.3 MiB (7.7 MiB/s)` */
export function summaryLine(tracker: ProgressTracker): string {
  const ms = tracker.elapsed();
  const bytes = tracker.transferred();
  const rate = ms > 0 ? (bytes * 1000) / ms : 0;
  return `elapsed: ${(ms / 1000).toFixed(1)} s  total: ${formatBytes(bytes)} (${formatBytes(rate)}/s)`;
}

/** The plain line for a state change. */
export function plainLine(e: ProgressEntry): string {
  if (ACTIVE.has(e.state) && e.total > 0)
    return `${e.key}: ${e.state} ${formatBytes(e.offset)}/${formatBytes(e.total)}`;
  if ((e.state === "done" || e.state === "exists") && e.total > 0)
    return `${e.key}: ${e.state} ${formatBytes(e.total)}`;
  return `${e.key}: ${e.state}`;
}

function visibleLength(s: string): number {
  return s.replace(/\x1b\[[0-9;]*m/g, "").length;
}

/** The first `width` visible characters of a line (colour codes kept whole, colour reset at a cut). */
function clip(s: string, width: number): string {
  if (visibleLength(s) <= width) return s;
  let out = "";
  let n = 0;
  for (let i = 0; i < s.length && n < width; ) {
    const esc = /^\x1b\[[0-9;]*m/.exec(s.slice(i));
    if (esc) {
      out += esc[0];
      i += esc[0].length;
      continue;
    }
    out += s[i++];
    n++;
  }
  return s.includes("\x1b[") ? `${out}\x1b[0m` : out;
}

/** A name cut to `width`, its end kept (a tag or digest tells more than the registry's host): `…/redis:latest`. */
function cutName(name: string, width: number): string {
  if (name.length <= width) return name;
  if (width <= 1) return name.slice(0, Math.max(0, width));
  return `…${name.slice(name.length - width + 1)}`;
}

/** An object's short name in `width`: `layer 52f171f769a7`, else the 12 hex alone (docker's ids), else their start. */
function objectName(key: string, width: number): string {
  const name = shortKey(key);
  if (name.length <= width) return name;
  const hex = name.slice(name.indexOf(" ") + 1);
  return hex.slice(0, Math.max(1, width));
}

const pad = (s: string, width: number) => s + " ".repeat(Math.max(0, width - visibleLength(s)));

/**
 * The table's lines for `entries` in a terminal `columns` wide: none longer than
 * `columns - 1` (the last column is left alone: a character there leaves some
 * terminals about to wrap). Objects (digest keys) line up in columns: name,
 * state, bar, bytes while active; what gives way, in order: the bar narrows to
 * MIN_BAR_WIDTH, then goes; the byte counts lose their total, then go; names
 * are cut at their start; a line is cut last. A reference is its name and state.
 */
export function tableLines(entries: readonly ProgressEntry[], columns: number, color = false): string[] {
  const room = Math.max(1, columns - 1);
  const objects = entries.filter((e) => DIGEST_KEY.test(e.key));
  const layout = objectLayout(objects, room);
  return entries.map((e) => {
    if (!DIGEST_KEY.test(e.key)) return clip(`${cutName(e.key, room - e.state.length - 2)}  ${e.state}`, room);
    const cells = [pad(objectName(e.key, layout.nameW), layout.nameW), pad(e.state, layout.stateW)];
    if (layout.barW > 0) cells.push(bar(fractionOf(e), layout.barW, color));
    const bytes = layout.bytes(e);
    if (bytes) cells.push(bytes);
    return clip(cells.join("  ").trimEnd(), room);
  });
}

interface ObjectLayout {
  nameW: number;
  stateW: number;
  /** 0: no bar. */
  barW: number;
  bytes(e: ProgressEntry): string;
}

function objectLayout(objects: readonly ProgressEntry[], room: number): ObjectLayout {
  const widest = (cells: string[]) => cells.reduce((w, c) => Math.max(w, c.length), 0);
  const activeOnes = objects.filter((e) => ACTIVE.has(e.state));
  const full = (e: ProgressEntry) => `${formatBytes(e.offset).padStart(8)}/${formatBytes(e.total)}`;
  const short = (e: ProgressEntry) => formatBytes(e.offset).padStart(8);
  const none = () => "";
  const stateW = widest(objects.map((e) => e.state));
  let nameW = widest(objects.map((e) => shortKey(e.key)));
  // the room left for a bar (and its separator) beside the byte counts `b`
  const barRoom = (b: (e: ProgressEntry) => string) => {
    const bw = widest(activeOnes.map(b));
    return room - (nameW + 2 + stateW + 2) - (bw > 0 ? bw + 2 : 0);
  };
  let bytes = full;
  let barW = Math.min(BAR_WIDTH, barRoom(bytes));
  if (barW < MIN_BAR_WIDTH) {
    barW = 0;
    const fits = (b: typeof full) => barRoom(b) + 2 >= 0;
    if (!fits(bytes)) bytes = short;
    if (!fits(bytes)) bytes = none;
    if (!fits(bytes)) nameW = Math.max(1, nameW + barRoom(bytes) + 2);
  }
  return { nameW, stateW, barW, bytes: (e) => (ACTIVE.has(e.state) ? bytes(e) : "") };
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
  /** The visible lengths of the lines last drawn: how far up the next frame starts. */
  #drawn: number[] = [];
  #stopped = false;
  readonly #onChange = (e: Readonly<ProgressEntry>, stateChanged: boolean) => {
    // committing is a moment between the last byte and done: not worth a line of its own
    if (stateChanged && e.state !== "committing") this.#out.write(`${plainLine(e)}\n`);
  };
  readonly #onResize = () => {
    if (!this.#stopped) this.#draw();
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
      this.#timer = setInterval(() => this.#draw(), this.#interval);
      this.#timer.unref();
      this.#out.on?.("resize", this.#onResize);
      this.#draw();
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
      this.#out.off?.("resize", this.#onResize);
      this.#draw();
    }
  }

  /**
   * The terminal's width, asked of the kernel at each frame: a frame drawn after a
   * resize but before its SIGWINCH reaches us (a timer can fire first) must
   * already know it, the old lines being rewrapped. For a table forced onto
   * something else, $COLUMNS or 80.
   */
  #columns(): number {
    const c = liveSize(this.#out)?.[0] || this.#out.columns || Number(process.env.COLUMNS);
    return c && c > 0 ? c : DEFAULT_COLUMNS;
  }

  /** The table frame as text (without cursor movement). */
  frame(): string {
    let entries = [...this.#tracker.entries()];
    // a frame taller than the terminal cannot be redrawn in place: finished objects make room first
    const rows = liveSize(this.#out)?.[1] ?? this.#out.rows;
    const room = rows && rows > 3 ? rows - 2 : Number.POSITIVE_INFINITY;
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
    const columns = this.#columns();
    const lines = [...tableLines(entries, columns, this.#color), clip(summaryLine(this.#tracker), columns - 1)];
    return `${lines.join("\n")}\n`;
  }

  /**
   * Moves up over the last frame and writes the new one line by line, each line
   * erased first (EL), rows the new frame does not use erased after it. Never an
   * erase of the screen's end (ED): from the top row, tmux and others take that
   * for clearing the screen and keep the old screen in their history.
   */
  #draw(): void {
    const text = this.frame();
    // the lines of the last frame, as the terminal holds them now: a narrower terminal rewraps them
    const cols = this.#columns();
    const up = this.#drawn.reduce((n, len) => n + Math.max(1, Math.ceil(len / cols)), 0);
    const lines = text.split("\n").slice(0, -1);
    this.#drawn = lines.map(visibleLength);
    let out = up > 0 ? `\r\x1b[${up}A` : "";
    for (const line of lines) out += `\x1b[2K${line}\n`;
    const left = up - lines.length;
    if (left > 0) out += `${"\x1b[2K\n".repeat(left)}\x1b[${left}A`;
    this.#out.write(out);
  }
}
