/**
 * Progress as data: the events of a ProgressTracker as plain objects, the
 * ones `--progress json` prints one per line and the library hands to a
 * listener (`tracker.on("event", …)`). A stable interface: fields are only
 * ever added (README, "Progress as JSON").
 *
 *   tracker.on("event", (e) => console.log(e.object, e.state, e.offset, e.total));
 */
import type { ProgressEntry, ProgressState, ProgressTracker } from "./tracker.ts";

/** One object's state, bytes and times after a change. */
export interface ProgressEvent {
  type: "progress";
  /** The object's key: an image reference, or `<kind>-<digest>` (`layer-sha256:52f1…`). */
  object: string;
  /** `reference` for an image reference; else the descriptor's kind: manifest, index, config, layer, attestation, unknown. */
  kind: string;
  /** The object's digest (not for a reference). */
  digest?: string;
  state: ProgressState;
  /** Bytes done so far (a resumed download counts from the start of the blob). */
  offset: number;
  /** The object's size in bytes; 0 while unknown. */
  total: number;
  /** When this happened (RFC 3339, UTC, milliseconds). */
  time: string;
  /** When the object first became active (resolving, downloading…); absent while it waits. */
  started?: string;
}

/** The last line: how the whole flow went. */
export interface ProgressSummary {
  type: "summary";
  status: "ok" | "error";
  /** The error's one-line message (status "error"). */
  error?: string;
  time: string;
  /** When the flow started. */
  started: string;
  elapsedMs: number;
  /** Bytes moved over the network in this run (objects that existed already count nothing). */
  transferred: number;
  /** How many objects ended in each state (done, exists, skipped…). */
  objects: Partial<Record<ProgressState, number>>;
  /** What the command adds: `images` for fetch and pull (name, digest, unpacked platforms). */
  [extra: string]: unknown;
}

/** `<kind>-<algorithm>:<hex>`, the keys of refKey (images/mediatypes.ts). */
export const DIGEST_KEY = /^([a-z][a-z0-9]*)-([a-z0-9]+:[0-9a-f]{12,})$/;

const iso = (ms: number) => new Date(ms).toISOString();

/** The event of an entry as it is now. */
export function progressEvent(e: Readonly<ProgressEntry>): ProgressEvent {
  const m = DIGEST_KEY.exec(e.key);
  return {
    type: "progress",
    object: e.key,
    kind: m ? m[1] : "reference",
    ...(m ? { digest: m[2] } : {}),
    state: e.state,
    offset: e.offset,
    total: e.total,
    time: iso(e.updatedAt),
    ...(e.startedAt === undefined ? {} : { started: iso(e.startedAt) }),
  };
}

/** The summary of a tracker's flow; `extra` fields are added (they cannot replace the standard ones). */
export function progressSummary(
  tracker: ProgressTracker,
  outcome: { error?: string } = {},
  extra: Record<string, unknown> = {},
): ProgressSummary {
  const objects: Partial<Record<ProgressState, number>> = {};
  for (const e of tracker.entries()) {
    if (DIGEST_KEY.test(e.key)) objects[e.state] = (objects[e.state] ?? 0) + 1;
  }
  const now = tracker.now();
  const summary: ProgressSummary = {
    type: "summary",
    status: outcome.error === undefined ? "ok" : "error",
    ...(outcome.error === undefined ? {} : { error: outcome.error }),
    time: iso(now),
    started: iso(tracker.startedAt),
    elapsedMs: now - tracker.startedAt,
    transferred: tracker.transferred(),
    objects,
  };
  for (const [k, v] of Object.entries(extra)) if (!(k in summary) && k !== "error") summary[k] = v;
  return summary;
}
