/**
 * Per-ref ingest locks, held within the process (a map) and across processes
 * (flock(2) on `<content>/locks/<sha256(ref)>`). The kernel drops a flock when
 * its holder dies, so a SIGKILLed writer never leaves a stale lock behind.
 * Lock files are removed on release; an acquirer checks, after locking, that
 * the file it locked is still the one at the path, so unlinking is safe.
 */
import { closeSync, fstatSync, mkdirSync, openSync, statSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import koffi from "koffi";
import { errorMessage, UnavailableError } from "../../errors.ts";

const LOCK_EX = 2;
const LOCK_NB = 4;

type FlockFn = (fd: number, op: number) => number;
let flockFn: FlockFn | null | undefined;

/** flock(2) from libc; null where it cannot be loaded (then only in-process locks apply). */
function flock(): FlockFn | null {
  if (flockFn === undefined) {
    try {
      const lib = koffi.load("libc.so.6");
      flockFn = lib.func("int flock(int fd, int op)") as FlockFn;
    } catch {
      flockFn = null;
    }
  }
  return flockFn;
}

/** Refs locked by this process, with when they were taken (for the error message). */
const held = new Map<string, number>();

export interface RefLock {
  readonly ref: string;
  release(): void;
}

export interface AcquireOptions {
  /** How long to wait for a busy ref, in milliseconds (0: fail at once). */
  timeout?: number;
  signal?: AbortSignal;
  /** Polled while waiting; when it returns true the wait ends with that outcome. */
  giveUp?: () => boolean;
}

export const DEFAULT_LOCK_TIMEOUT = 60_000;

/** Thrown (internally) when giveUp() ended a wait. */
export class GaveUp extends Error {}

/**
 * Takes the lock of `ref` (file `path` under `dir`), waiting with randomised
 * exponential backoff (16 ms doubling to 1 s) while another writer holds it.
 */
export async function acquireRefLock(
  dir: string,
  name: string,
  ref: string,
  opts: AcquireOptions = {},
): Promise<RefLock> {
  const timeout = opts.timeout ?? DEFAULT_LOCK_TIMEOUT;
  const deadline = Date.now() + timeout;
  let delay = 16;
  for (;;) {
    opts.signal?.throwIfAborted();
    const lock = tryLock(dir, name, ref);
    if (lock) return lock;
    if (opts.giveUp?.()) throw new GaveUp();
    const now = Date.now();
    if (now >= deadline) {
      const since = held.get(ref);
      const who = since === undefined ? "another process" : `this process since ${new Date(since).toISOString()}`;
      throw new UnavailableError(
        `ref ${ref} locked: still held by ${who} after waiting ${Math.round(timeout / 1000)}s`,
      );
    }
    const wait = Math.min(delay, deadline - now) * (0.5 + Math.random() / 2);
    await sleep(wait, undefined, { signal: opts.signal });
    delay = Math.min(delay * 2, 1000);
  }
}

/** One attempt; null when the ref is busy. */
export function tryLock(dir: string, name: string, ref: string): RefLock | null {
  if (held.has(ref)) return null;
  const fl = flock();
  const path = join(dir, name);
  if (!fl) {
    held.set(ref, Date.now());
    return makeLock(ref, -1, path);
  }
  mkdirSync(dir, { recursive: true });
  for (;;) {
    const fd = openSync(path, "a+", 0o600);
    if (fl(fd, LOCK_EX | LOCK_NB) !== 0) {
      closeSync(fd);
      return null;
    }
    // the holder we waited for may have unlinked the file before we locked it
    let same = false;
    try {
      same = statSync(path).ino === fstatSync(fd).ino;
    } catch {
      same = false;
    }
    if (same) {
      held.set(ref, Date.now());
      return makeLock(ref, fd, path);
    }
    closeSync(fd);
  }
}

function makeLock(ref: string, fd: number, path: string): RefLock {
  let released = false;
  return {
    ref,
    release() {
      if (released) return;
      released = true;
      if (fd >= 0) {
        try {
          unlinkSync(path);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
            process.emitWarning(`removing lock ${path}: ${errorMessage(err)}`);
          }
        }
        closeSync(fd);
      }
      held.delete(ref);
    },
  };
}
