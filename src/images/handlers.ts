/**
 * The handler model: a handler looks at one descriptor and returns the
 * children to visit next. Fetching, filtering, unpacking and progress are all
 * handlers or wrappers of handlers; `dispatch` and `walk` drive them over a tree.
 */
import type { Descriptor } from "../descriptor.ts";

/** Looks at one descriptor and returns the children to visit next (containerd's images.Handler); throw SKIP to prune its subtree. */
export type Handler = (desc: Descriptor, signal: AbortSignal) => Promise<Descriptor[]>;

/** Thrown by a handler to prune its own subtree without failing the walk (containerd's ErrSkipDesc). */
export class SkipError extends Error {
  constructor() {
    super("skip descriptor");
    this.name = "SkipError";
  }
}
/** Thrown by a handler to skip the descriptor's subtree without failing the walk. */
export const SKIP: SkipError = new SkipError();

export function isSkip(err: unknown): boolean {
  return err instanceof SkipError;
}

/** Runs handlers in order on each descriptor; children are their concatenation. A SKIP stops the rest. */
export function handlers(...hs: Handler[]): Handler {
  return async (desc, signal) => {
    const children: Descriptor[] = [];
    for (const h of hs) {
      signal.throwIfAborted();
      children.push(...(await h(desc, signal)));
    }
    return children;
  };
}

/** Blobs downloaded at once when the caller sets no limit (containerd's default too). */
export const DEFAULT_MAX_CONCURRENT_DOWNLOADS = 3;

/** A counting semaphore whose waiters leave the queue when their signal aborts. */
export class Limiter {
  #free: number;
  readonly #queue: Array<() => void> = [];
  constructor(limit: number) {
    if (!(limit >= 1)) throw new RangeError(`limit must be at least 1, got ${limit}`);
    this.#free = limit;
  }
  async acquire(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const grant = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = () => {
        const i = this.#queue.indexOf(grant);
        if (i >= 0) this.#queue.splice(i, 1);
        reject(signal?.reason);
      };
      this.#queue.push(grant);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
  release(): void {
    const next = this.#queue.shift();
    if (next) next();
    else this.#free++;
  }
  /** Runs fn holding one slot. */
  async run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    await this.acquire(signal);
    try {
      return await fn();
    } finally {
      this.release();
    }
  }
}

/** Options of dispatch: how many handlers run at once, and a signal. */
export interface DispatchOptions {
  /** Handlers running at once; unbounded when absent. A slot is held only while a handler runs. */
  limit?: number;
  /** Or a limiter shared with other dispatches (takes precedence over limit). */
  limiter?: Limiter;
  signal?: AbortSignal;
}

/**
 * Visits descriptors and, recursively, their children, siblings concurrently.
 * The first error aborts the others (through the signal handed to handlers);
 * dispatch waits for every started handler to settle, then throws that error.
 */
export async function dispatch(handler: Handler, descs: Descriptor[], opts: DispatchOptions = {}): Promise<void> {
  const ctrl = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, ctrl.signal]) : ctrl.signal;
  const limiter =
    opts.limiter ??
    (opts.limit === undefined || opts.limit === Number.POSITIVE_INFINITY ? undefined : new Limiter(opts.limit));
  let failure: { err: unknown } | undefined;

  const fail = (err: unknown) => {
    if (isSkip(err) || failure) return;
    failure = { err };
    ctrl.abort(err);
  };

  const visit = async (desc: Descriptor): Promise<void> => {
    let children: Descriptor[];
    try {
      signal.throwIfAborted();
      await limiter?.acquire(signal);
    } catch (err) {
      fail(err);
      return;
    }
    try {
      // a waiter granted the slot just before an abort must not start
      signal.throwIfAborted();
      children = await handler(desc, signal);
    } catch (err) {
      // record the failure before the slot is released, so no waiter starts after it
      fail(err);
      return;
    } finally {
      limiter?.release();
    }
    await Promise.all(children.map(visit));
  };

  await Promise.all(descs.map(visit));
  if (failure) throw failure.err;
}

/** Visits depth-first, one descriptor at a time, in order. SKIP prunes only that subtree. */
export async function walk(handler: Handler, descs: Descriptor[], opts: { signal?: AbortSignal } = {}): Promise<void> {
  const signal = opts.signal ?? new AbortController().signal;
  for (const desc of descs) {
    signal.throwIfAborted();
    let children: Descriptor[];
    try {
      children = await handler(desc, signal);
    } catch (err) {
      if (isSkip(err)) continue;
      throw err;
    }
    await walk(handler, children, { signal });
  }
}
