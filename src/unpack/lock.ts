/**
 * A cross-process lock per key (a ChainID), so two pulls never extract the same
 * layer at once: the named locks of content/local/lock.ts (flock(2), dropped by
 * the kernel when the holder dies), on `<dir>/<key>.lock`, waited for until the
 * signal aborts.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { acquireRefLock } from "../content/local/lock.ts";

export interface Lock {
  release(): void;
}

export function acquireLock(dir: string, key: string, signal?: AbortSignal): Promise<Lock> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const name = `${key.replace(/[^A-Za-z0-9_.-]/g, "_")}.lock`;
  // in-process, locks are told apart by name: the lock file path, which no ingest ref spells
  return acquireRefLock(dir, name, join(dir, name), { timeout: Number.POSITIVE_INFINITY, signal });
}
