/**
 * How commands show a long flow: the progress table of fetch and pull (a
 * tracker the library reports to, drawn on stdout) and the notes and warnings
 * the library sends meanwhile, held back until the end: lines printed while
 * the table redraws would break it, and the warnings of an unpack without root
 * (ownership, devices) come by the hundred.
 */
import type { Descriptor } from "../descriptor.ts";
import type { ProgressTracker } from "../progress/tracker.ts";
import { log } from "./log.ts";

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
}

/** Runs fn with the progress table on stdout; however fn ends, the table is finished, then the held lines printed. */
export async function withProgress<T>(fn: (progress: Progress) => Promise<T>): Promise<T> {
  const [{ ProgressRenderer }, { ProgressTracker }] = await Promise.all([
    import("../progress/render.ts"),
    import("../progress/tracker.ts"),
  ]);
  const tracker = new ProgressTracker();
  const renderer = new ProgressRenderer(tracker).start();
  const held = holdMessages();
  try {
    return await fn({ tracker, onNote: held.onNote, onWarning: held.onWarning });
  } finally {
    renderer.stop();
    held.report();
  }
}

/** At most `max` warnings, then how many more there were. */
function reportWarnings(warnings: string[], max = 5): void {
  for (const w of warnings.slice(0, max)) log.warn(w);
  if (warnings.length > max) log.warn(`… and ${warnings.length - max} more warnings like these`);
}
