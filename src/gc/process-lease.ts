/**
 * A lease held for the life of a process (a pull, a fetch, an unpack, a run),
 * so that what it writes is safe from garbage collection until its own
 * records reference it, and garbage as soon as the process is gone, however it
 * ends: released at the end, and, if the process dies first (kill -9), seen as
 * dead by the next collection.
 *
 * Two marks say it lives, as containerd's clients give theirs an expiry:
 * `containerd.io/gc.expire` (renewed while the process runs; what other tools
 * read) and a flock(2) on `<root>/leases/<hash>.lock`, taken before the lease
 * exists and dropped by the kernel when the process dies. A lease labelled
 * `dist.process` (the holder's pid) is live exactly while its lock is held.
 */
import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import { acquireRefLock, type RefLock, tryLock } from "../content/local/lock.ts";
import { isNotFound } from "../errors.ts";
import type { Metadata } from "../metadata/metadata.ts";
import { expiryLabel, GC_EXPIRE } from "./labels.ts";

/** The label of a process lease: the pid of the process that holds it. */
export const PROCESS_LABEL = "dist.process";

/** How long a process lease claims to last, and how often it is renewed while the process runs. */
const EXPIRY_MS = 60 * 60_000;
const RENEW_MS = 10 * 60_000;

/** A lease held while this process runs. */
export interface ProcessLease {
  readonly id: string;
  readonly namespace: string;
  /** Deletes the lease (what it held is garbage unless referenced by then); idempotent. */
  release(): void;
}

function lockDir(root: string): string {
  return join(root, "leases");
}

function lockName(namespace: string, id: string): string {
  return `${createHash("sha256").update(`${namespace}\0${id}`).digest("hex")}.lock`;
}

function lockRef(namespace: string, id: string): string {
  return `lease:${namespace}/${id}`;
}

/** Options of holdProcessLease. */
export interface ProcessLeaseOptions {
  /** Extra labels for the lease. */
  labels?: Record<string, string>;
}

/**
 * Creates a lease in `namespace` held while this process lives (see the module
 * comment). Stores opened with `{ lease: lease.id }` put what they create on it.
 *
 * @example
 * ```ts
 * const lease = await holdProcessLease(md, "default");
 * try {
 *   await pull({ content: md.content("default", { lease: lease.id }), ... });
 * } finally {
 *   lease.release();
 * }
 * ```
 */
export async function holdProcessLease(
  md: Metadata,
  namespace: string,
  opts: ProcessLeaseOptions = {},
): Promise<ProcessLease> {
  const id = `dist-${process.pid}-${randomBytes(6).toString("hex")}`;
  // the lock before the lease: a collection never sees the lease without its holder
  const lock: RefLock = await acquireRefLock(lockDir(md.root), lockName(namespace, id), lockRef(namespace, id), {
    timeout: 0,
  });
  const leases = md.leases(namespace);
  try {
    leases.create(id, { ...opts.labels, [GC_EXPIRE]: expiryLabel(EXPIRY_MS), [PROCESS_LABEL]: String(process.pid) });
  } catch (err) {
    lock.release();
    throw err;
  }
  const renew = setInterval(() => {
    try {
      leases.update(id, { [GC_EXPIRE]: expiryLabel(EXPIRY_MS) });
    } catch {
      // deleted by someone else: nothing left to renew
      clearInterval(renew);
    }
  }, RENEW_MS);
  renew.unref();
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    clearInterval(renew);
    try {
      leases.delete(id);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    } finally {
      lock.release();
    }
  };
  // at exit the database may be closed already: the lock, dropped with the process, says it is over
  const atExit = () => {
    try {
      release();
    } catch {}
  };
  process.on("exit", atExit);
  return {
    id,
    namespace,
    release() {
      process.off("exit", atExit);
      release();
    },
  };
}

/**
 * Whether the process holding a process lease still lives: its lock is held.
 * Taking the lock proves the holder gone (and the lock is let go at once).
 */
export function processLeaseLive(root: string, namespace: string, id: string): boolean {
  const lock = tryLock(lockDir(root), lockName(namespace, id), lockRef(namespace, id));
  if (!lock) return true;
  lock.release();
  return false;
}
