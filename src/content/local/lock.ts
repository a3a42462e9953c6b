/**
 * Named locks, held within the process (a map) and across processes (flock(2)
 * on a file: `<content>/locks/<sha256(ref)>` for ingests, a ChainID's file for
 * unpacking, see unpack/lock.ts). The kernel drops a flock when its holder dies,
 * so a SIGKILLed writer never leaves a stale lock behind. Lock files are removed
 * on release; an acquirer checks, after locking, that the file it locked is still
 * the one at the path, so unlinking is safe.
 */
import { closeSync, fstatSync, mkdirSync, openSync, statSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { errorMessage, UnavailableError } from "../../errors.ts";
import { flock, LOCK_EX, LOCK_NB } from "../../sys/index.ts";

/** flock(LOCK_EX | LOCK_NB): false when another open file holds the lock. */
function tryFlock(fd: number): boolean {
  try {
    flock(fd, LOCK_EX | LOCK_NB);
    return true;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "EWOULDBLOCK" || code === "EAGAIN") return false;
    throw err;
  }
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
  const path = join(dir, name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (;;) {
    const fd = openSync(path, "a+", 0o600);
    let locked: boolean;
    try {
      locked = tryFlock(fd);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    if (!locked) {
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
      try {
        unlinkSync(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
          process.emitWarning(`removing lock ${path}: ${errorMessage(err)}`);
        }
      }
      closeSync(fd);
      held.delete(ref);
    },
  };
}
