/**
 * A cross-process lock per key (a ChainID): flock(2) on `<dir>/<key>.lock`.
 * The kernel drops it when the holder dies, so a crashed pull never leaves a
 * stale lock. Polled with LOCK_NB so waiting never blocks the event loop.
 */
import { closeSync, mkdirSync, openSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { flock, LOCK_EX, LOCK_NB, LOCK_UN } from "../sys/index.ts";

export interface Lock {
  release(): void;
}

export async function acquireLock(dir: string, key: string, signal?: AbortSignal): Promise<Lock> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const fd = openSync(join(dir, `${key.replace(/[^A-Za-z0-9_.-]/g, "_")}.lock`), "a", 0o600);
  try {
    let wait = 5;
    for (;;) {
      try {
        flock(fd, LOCK_EX | LOCK_NB);
        break;
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code !== "EWOULDBLOCK" && code !== "EAGAIN") throw err;
      }
      await sleep(wait, undefined, { signal });
      wait = Math.min(wait * 2, 100);
    }
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      try {
        flock(fd, LOCK_UN);
      } finally {
        closeSync(fd);
      }
    },
  };
}
