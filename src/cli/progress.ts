/**
 * How commands show a long flow: progress on stdout in the mode of
 * `--progress` (a global option, so every command that calls withProgress
 * has it: fetch, pull, push, copy, export, import…), and the notes and
 * warnings the library sends meanwhile, held back until the end: lines
 * printed while the table redraws would break it, and the warnings of an
 * unpack without root (ownership, devices) come by the hundred.
 *
 *   auto   the table on a terminal (not with CI=true or TERM=dumb), else plain
 *   tty    the table, redrawn in place, whatever stdout is
 *   plain  one line per state change
 *   json   one JSON object per event per line, then a summary (progress/events.ts)
 *
 * A command using withProgress needs nothing more; addProgressFlag only
 * makes the option show in its own --help.
 */
import type { Command } from "commander";
import type { Descriptor } from "../descriptor.ts";
import { errorMessage } from "../errors.ts";
import type { ProgressTracker } from "../progress/tracker.ts";
import { UsageError } from "./args.ts";
import { log } from "./log.ts";

export const PROGRESS_MODES = ["auto", "tty", "plain", "json"] as const;
export type ProgressMode = (typeof PROGRESS_MODES)[number];
/** How progress is shown once `auto` is decided. */
export type ProgressStyle = Exclude<ProgressMode, "auto">;

/** The argument parser of --progress. */
export function parseProgressMode(value: string): ProgressMode {
  if ((PROGRESS_MODES as readonly string[]).includes(value)) return value as ProgressMode;
  throw new UsageError(`invalid --progress "${value}": expected ${PROGRESS_MODES.join(", ")}`);
}

export const PROGRESS_HELP = "how progress is shown: auto (a table on a terminal, else plain), tty, plain or json";

/** --progress in a command's own help (it works on every command through the global option anyway). */
export function addProgressFlag(cmd: Command): Command {
  return cmd.option("--progress <mode>", PROGRESS_HELP, parseProgressMode);
}

let requested: ProgressMode = "auto";

/** Set from the command line before the command runs (program.ts). */
export function setProgressMode(mode: ProgressMode | undefined): void {
  requested = mode ?? "auto";
}

/** `auto` decided for stdout. */
export async function progressStyle(mode: ProgressMode = requested): Promise<ProgressStyle> {
  if (mode !== "auto") return mode;
  const { defaultMode } = await import("../progress/render.ts");
  return defaultMode(process.stdout) === "table" ? "tty" : "plain";
}

export interface HeldMessages {
  onNote(desc: Descriptor, message: string): void;
  onWarning(message: string): void;
  /** Prints the notes, then the warnings (a few, then a count). */
  report(): void;
}

export function holdMessages(): HeldMessages {
  const notes: string[] = [];
  const warnings: string[] = [];
  return {
    onNote: (_desc, message) => notes.push(message),
    onWarning: (message) => warnings.push(message),
    report() {
      for (const n of notes.splice(0)) log.info(n);
      reportWarnings(warnings.splice(0));
    },
  };
}

export interface Progress extends Omit<HeldMessages, "report"> {
  tracker: ProgressTracker;
  style: ProgressStyle;
  /**
   * Fields the command adds to the JSON summary line (`images` for fetch and
   * pull, `pushed`, `copied`, `exported`, `imported`). In json mode stdout is
   * the JSON lines only: what a command reports goes here and through `print`.
   */
  summary: Record<string, unknown>;
  /**
   * A line of the command's result for stdout, written once the progress is
   * done and the flow succeeded; left out in json mode, where `summary` says it.
   */
  print(line: string): void;
  /** Marks the flow failed in the JSON summary without ending it (one reference of several failed). */
  fail(error: unknown): void;
}

/**
 * Runs fn with progress on stdout in the --progress mode; however fn ends, the
 * progress is finished (the table's last frame, the plain or JSON summary),
 * then the held notes and warnings printed (stderr), then, when fn succeeded,
 * the result lines it gave `print` (stdout, not in json mode).
 */
export async function withProgress<T>(fn: (progress: Progress) => Promise<T>): Promise<T> {
  const style = await progressStyle();
  const { ProgressTracker } = await import("../progress/tracker.ts");
  const tracker = new ProgressTracker();
  const held = holdMessages();
  let failure: { error: unknown } | undefined;
  const lines: string[] = [];
  const progress: Progress = {
    tracker,
    style,
    summary: {},
    print: (line) => {
      if (style !== "json") lines.push(line);
    },
    onNote: held.onNote,
    onWarning: held.onWarning,
    fail: (error) => {
      failure ??= { error };
    },
  };
  let finish: (error?: unknown) => void;
  if (style === "json") {
    const { JsonProgressWriter } = await import("../progress/json.ts");
    const writer = new JsonProgressWriter(tracker).start();
    finish = (error) => {
      const failed = error === undefined ? failure : { error };
      const outcome = failed ? { error: errorMessage(failed.error).replace(/\s*\n\s*/g, " ") } : {};
      writer.stop(outcome, progress.summary);
    };
  } else {
    const { ProgressRenderer } = await import("../progress/render.ts");
    const renderer = new ProgressRenderer(tracker, { mode: style === "tty" ? "table" : "plain" }).start();
    finish = () => renderer.stop();
  }
  let result: T;
  try {
    result = await fn(progress);
    finish();
  } catch (err) {
    finish(err);
    throw err;
  } finally {
    held.report();
  }
  for (const line of lines) process.stdout.write(`${line}\n`);
  return result;
}

/** At most `max` warnings, then how many more there were. */
function reportWarnings(warnings: string[], max = 5): void {
  for (const w of warnings.slice(0, max)) log.warn(w);
  if (warnings.length > max) log.warn(`… and ${warnings.length - max} more warnings like these`);
}
