/**
 * Retry decisions: which statuses are transient, how long to wait (exponential
 * backoff with jitter, or the server's Retry-After), and an abortable sleep.
 */

export interface BackoffOptions {
  /** First delay, in ms (default 250). */
  baseMs?: number;
  /** Longest delay, in ms (default 10 s). */
  maxMs?: number;
  /** A number in [0, 1); Math.random by default (tests pass a fixed one). */
  random?: () => number;
}

export const DEFAULT_RETRIES = 4;
/** Longest wait honoured from a Retry-After header. */
export const RETRY_AFTER_CAP_MS = 60_000;

/** Statuses worth another attempt: timeouts, rate limits, transient server errors. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status === 500 || status === 502 || status === 503 || status === 504;
}

/**
 * The delay before retry number `attempt` (0 for the first retry): base·2^attempt
 * capped at max, with "equal jitter" (half fixed, half random) so that clients
 * started together spread out but never retry at once.
 */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}): number {
  const base = opts.baseMs ?? 250;
  const max = opts.maxMs ?? 10_000;
  const random = opts.random ?? Math.random;
  const exp = Math.min(max, base * 2 ** Math.min(attempt, 30));
  return Math.round(exp / 2 + random() * (exp / 2));
}

/**
 * Retry-After as milliseconds: delta-seconds or an HTTP date; undefined when absent or
 * unreadable; capped at `cap` and never negative.
 */
export function parseRetryAfter(
  value: string | string[] | undefined,
  now: number = Date.now(),
  cap = RETRY_AFTER_CAP_MS,
): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return undefined;
  const s = v.trim();
  if (s === "") return undefined;
  let ms: number;
  if (/^\d+$/.test(s)) ms = Number(s) * 1000;
  else {
    const t = Date.parse(s);
    if (Number.isNaN(t)) return undefined;
    ms = t - now;
  }
  return Math.max(0, Math.min(cap, ms));
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
