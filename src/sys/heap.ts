/**
 * Keeps a long transfer's memory flat: young-generation collections and
 * malloc_trim paced by the bytes that stream through.
 *
 * Streams hand out a fresh Buffer per chunk (a socket read, a file read): the
 * bytes live outside the JS heap and V8 sees only their small handles, so the
 * young generation fills slowly and dead chunks pile up by the tens of MiB
 * until its external-memory heuristic starts a full collection; and glibc keeps
 * the pages of freed chunks in its heaps. Measured on a 1 GiB pull (peak RSS,
 * median of 4): 184 MiB with neither; 163 with a minor GC every 8 MiB; 148 with
 * one every 2 MiB; 134 adding a malloc_trim every 64 MiB. A minor GC of the
 * 1 MiB semi-space takes ~0.25 ms: every 2 MiB cost nothing measurable, every
 * 1 MiB cost 0.5 s.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { mallocTrim } from "./index.ts";

/** Bytes of chunks between two young-generation collections. */
export const COLLECT_EVERY = 2 << 20;
/** Collections between two malloc_trim calls (64 MiB). */
const TRIM_EVERY = 32;

type Gc = (options: { type: "minor" }) => void;
let gc: Gc | null | undefined;
let since = 0;
let collections = 0;

function collector(): Gc | null {
  if (gc !== undefined) return gc;
  try {
    const exposed = (globalThis as { gc?: Gc }).gc;
    if (typeof exposed === "function") {
      gc = exposed;
    } else {
      // exposes gc to contexts created from now on only: the process's own globals stay as they were
      setFlagsFromString("--expose-gc");
      gc = runInNewContext("gc") as Gc;
    }
  } catch {
    gc = null;
  }
  return gc;
}

/** Counts `bytes` of short-lived chunks just handled; collects and trims as they add up. */
export function chunksHandled(bytes: number): void {
  since += bytes;
  if (since < COLLECT_EVERY) return;
  since = 0;
  collector()?.({ type: "minor" });
  if (++collections % TRIM_EVERY === 0) mallocTrim();
}
