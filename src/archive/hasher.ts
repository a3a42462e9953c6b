/**
 * SHA-256 off the calling thread. Hashing the uncompressed layer costs about as
 * much main-thread time as making the files (~150 ms per 250 MiB here), so it
 * runs in one shared, lazily started worker (plain JavaScript: no TypeScript
 * loader, a few MiB) fed through a fixed pool of shared 1 MiB slots. The worker
 * is unref'd: it never keeps the process alive.
 */
import { Worker } from "node:worker_threads";
import type { Algorithm, Digest } from "../digest.ts";

const SLOTS = 6;
const SLOT_SIZE = 1 << 20;

const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const { createHash } = require("node:crypto");
const mem = new Uint8Array(workerData.shared);
const hashes = new Map();
parentPort.on("message", (m) => {
  if (m.op === "init") {
    hashes.set(m.id, createHash(m.algorithm));
  } else if (m.op === "data") {
    hashes.get(m.id).update(mem.subarray(m.slot * workerData.slotSize, m.slot * workerData.slotSize + m.length));
    parentPort.postMessage({ free: m.slot });
  } else if (m.op === "digest") {
    const h = hashes.get(m.id);
    hashes.delete(m.id);
    parentPort.postMessage({ id: m.id, hex: h ? h.digest("hex") : null });
  } else if (m.op === "drop") {
    hashes.delete(m.id);
  }
});
`;

interface Pool {
  worker: Worker;
  mem: Uint8Array;
  free: number[];
  waiters: (() => void)[];
  results: Map<number, (hex: string | null) => void>;
  failure?: Error;
  nextId: number;
  /** Digests in progress: the worker is ref'd only while there are some. */
  active: number;
}

function hold(p: Pool, delta: 1 | -1): void {
  p.active += delta;
  if (p.active === 1 && delta === 1) p.worker.ref();
  else if (p.active === 0) p.worker.unref();
}

let pool: Pool | undefined;

function getPool(): Pool {
  if (pool && !pool.failure) return pool;
  const shared = new SharedArrayBuffer(SLOTS * SLOT_SIZE);
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { shared, slotSize: SLOT_SIZE } });
  const p: Pool = {
    worker,
    mem: new Uint8Array(shared),
    free: Array.from({ length: SLOTS }, (_, i) => i),
    waiters: [],
    results: new Map(),
    nextId: 1,
    active: 0,
  };
  const fail = (e: Error) => {
    p.failure = e;
    for (const w of p.waiters.splice(0)) w();
    for (const r of p.results.values()) r(null);
    p.results.clear();
  };
  worker.on("message", (m: { free?: number; id?: number; hex?: string | null }) => {
    if (m.free !== undefined) {
      p.free.push(m.free);
      p.waiters.shift()?.();
    } else if (m.id !== undefined) {
      const r = p.results.get(m.id);
      p.results.delete(m.id);
      r?.(m.hex ?? null);
    }
  });
  worker.on("error", fail);
  worker.on("exit", (code) => fail(new Error(`hash worker exited (code ${code})`)));
  // idle until a digest starts (after the listeners: adding one refs the worker again)
  worker.unref();
  pool = p;
  return p;
}

/** A running digest whose hashing happens on the shared hash worker, in order. */
export class OffThreadDigester {
  readonly algorithm: Algorithm;
  readonly #pool: Pool;
  readonly #id: number;
  #done = false;

  constructor(algorithm: Algorithm = "sha256") {
    this.algorithm = algorithm;
    this.#pool = getPool();
    this.#id = this.#pool.nextId++;
    hold(this.#pool, 1);
    this.#pool.worker.postMessage({ op: "init", id: this.#id, algorithm });
  }

  /** Copies `chunk` into shared slots (waiting for one when all are busy); the caller may reuse it at once. */
  async update(chunk: Uint8Array): Promise<void> {
    const p = this.#pool;
    let off = 0;
    while (off < chunk.length) {
      if (p.failure) throw p.failure;
      if (p.free.length === 0) {
        await new Promise<void>((r) => p.waiters.push(r));
        continue;
      }
      const slot = p.free.pop()!;
      const n = Math.min(SLOT_SIZE, chunk.length - off);
      p.mem.set(chunk.subarray(off, off + n), slot * SLOT_SIZE);
      p.worker.postMessage({ op: "data", id: this.#id, slot, length: n });
      off += n;
    }
  }

  async digest(): Promise<Digest> {
    const p = this.#pool;
    if (this.#done) throw new Error("digest() called twice");
    if (p.failure) throw p.failure;
    this.#done = true;
    const hex = await new Promise<string | null>((resolve) => {
      p.results.set(this.#id, resolve);
      p.worker.postMessage({ op: "digest", id: this.#id });
    }).finally(() => hold(p, -1));
    if (hex === null) throw p.failure ?? new Error("hash worker lost the digest");
    return `${this.algorithm}:${hex}`;
  }

  /** Forgets an unfinished digest (after a failure). */
  dispose(): void {
    if (this.#done || this.#pool.failure) return;
    this.#done = true;
    this.#pool.worker.postMessage({ op: "drop", id: this.#id });
    hold(this.#pool, -1);
  }
}
