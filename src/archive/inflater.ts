/**
 * Decompression and the diffID hash off the main thread. One shared, lazily
 * started worker (plain JavaScript: no TypeScript loader) takes a layer's
 * compressed bytes through a few shared 1 MiB input slots, gunzips (or
 * zstd-decompresses) and hashes them, and hands the uncompressed bytes back
 * through shared output slots that the applier reads in place.
 *
 * Why: with zlib on the main thread's streams every MiB of output is a fresh
 * 1 MiB Buffer; V8 counts them against the old generation and ran ~105 full
 * mark-compacts during a 1 GiB pull (~1 s of the main thread, which also makes
 * the files). Here the main thread allocates nothing per chunk, and the
 * worker's garbage is collected on its own thread. The worker is unref'd while
 * no job runs: it never keeps the process alive.
 */
import { Worker } from "node:worker_threads";
import type { Digest } from "../digest.ts";
import { type Compression, zlibFailure } from "./compression.ts";

const IN_SLOTS = 4;
const OUT_SLOTS = 4;
const SLOT_SIZE = 1 << 20;

const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const zlib = require("node:zlib");
const { createHash } = require("node:crypto");
const { PassThrough } = require("node:stream");
// zlib's 1 MiB output buffers die young but V8 only sees their few-byte handles:
// without a young collection every few MiB they pile up by the tens of MiB
// (not named gc: with --expose-gc a global gc exists, and redeclaring it fails the whole worker)
require("node:v8").setFlagsFromString("--expose-gc");
const minorGc = require("node:vm").runInNewContext("gc");
let sinceGc = 0;
const SZ = workerData.slotSize;
const inMem = Buffer.from(workerData.inShared);
const outMem = Buffer.from(workerData.outShared);
const freeOut = [];
for (let i = 0; i < workerData.outSlots; i++) freeOut.push(i);
const jobs = new Map();
const waiting = [];
function unqueue(job) {
  const i = waiting.indexOf(job);
  if (i >= 0) waiting.splice(i, 1);
  job.queued = false;
}
function finishIfDone(job) {
  if (job.ended && job.pending.length === 0 && !job.reported) {
    job.reported = true;
    jobs.delete(job.id);
    parentPort.postMessage({ op: "done", id: job.id, hex: job.hash.digest("hex"), size: job.size });
  }
}
function flush() {
  while (freeOut.length > 0 && waiting.length > 0) {
    const job = waiting[0];
    const chunk = job.pending.shift();
    const slot = freeOut.pop();
    chunk.copy(outMem, slot * SZ);
    parentPort.postMessage({ op: "out", id: job.id, slot, length: chunk.length });
    if (job.pending.length === 0) {
      unqueue(job);
      job.z.resume();
      finishIfDone(job);
    }
  }
}
parentPort.on("message", (m) => {
  if (m.op === "start") {
    const z = m.compression === "gzip" ? zlib.createGunzip({ chunkSize: SZ })
      : m.compression === "zstd" ? zlib.createZstdDecompress({ chunkSize: SZ })
      : new PassThrough({ highWaterMark: SZ });
    const job = { id: m.id, z, hash: createHash("sha256"), size: 0, pending: [], queued: false, ended: false, reported: false };
    jobs.set(m.id, job);
    z.on("data", (c) => {
      job.hash.update(c);
      job.size += c.length;
      sinceGc += c.length;
      if (sinceGc >= 8 * SZ) {
        sinceGc = 0;
        minorGc({ type: "minor" });
      }
      for (let o = 0; o < c.length; o += SZ) job.pending.push(c.subarray(o, o + SZ));
      if (!job.queued) {
        job.queued = true;
        waiting.push(job);
      }
      flush();
      if (job.pending.length > 0) z.pause();
    });
    z.on("end", () => {
      job.ended = true;
      finishIfDone(job);
    });
    z.on("error", (e) => {
      if (job.reported) return;
      job.reported = true;
      jobs.delete(job.id);
      unqueue(job);
      parentPort.postMessage({ op: "error", id: job.id, message: String(e && e.message), code: e && e.code });
    });
  } else if (m.op === "in") {
    const job = jobs.get(m.id);
    const slot = m.slot;
    if (!job || job.reported) {
      parentPort.postMessage({ op: "free-in", slot });
      return;
    }
    // zlib is done with its input at the write callback; a PassThrough would keep it: copy
    const view = inMem.subarray(slot * SZ, slot * SZ + m.length);
    const b = job.z instanceof PassThrough ? Buffer.from(view) : view;
    // the slot is free once the decompressor took the bytes: that is the backpressure
    job.z.write(b, () => parentPort.postMessage({ op: "free-in", slot }));
  } else if (m.op === "end") {
    jobs.get(m.id)?.z.end();
  } else if (m.op === "free-out") {
    freeOut.push(m.slot);
    flush();
  } else if (m.op === "drop") {
    const job = jobs.get(m.id);
    if (!job) return;
    job.reported = true;
    jobs.delete(m.id);
    unqueue(job);
    job.z.destroy();
  }
});
`;

interface JobState {
  queue: { slot: number; length: number }[];
  wake?: () => void;
  done?: { hex: string; size: number };
  /** The worker's report of a decompression failure, turned into an error by the job. */
  raw?: { message: string; code?: string };
  error?: Error;
  closed: boolean;
}

interface Pool {
  worker: Worker;
  inMem: Uint8Array;
  outShared: SharedArrayBuffer;
  freeIn: number[];
  inWaiters: (() => void)[];
  jobs: Map<number, JobState>;
  failure?: Error;
  nextId: number;
  active: number;
}

let pool: Pool | undefined;

function getPool(): Pool {
  if (pool && !pool.failure) return pool;
  const inShared = new SharedArrayBuffer(IN_SLOTS * SLOT_SIZE);
  const outShared = new SharedArrayBuffer(OUT_SLOTS * SLOT_SIZE);
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { inShared, outShared, slotSize: SLOT_SIZE, outSlots: OUT_SLOTS },
  });
  const p: Pool = {
    worker,
    inMem: new Uint8Array(inShared),
    outShared,
    freeIn: Array.from({ length: IN_SLOTS }, (_, i) => i),
    inWaiters: [],
    jobs: new Map(),
    nextId: 1,
    active: 0,
  };
  const fail = (e: Error) => {
    p.failure ??= e;
    for (const w of p.inWaiters.splice(0)) w();
    for (const j of p.jobs.values()) {
      j.error ??= p.failure;
      j.wake?.();
    }
  };
  worker.on(
    "message",
    (m: {
      op: string;
      id?: number;
      slot?: number;
      length?: number;
      hex?: string;
      size?: number;
      message?: string;
      code?: string;
    }) => {
      if (m.op === "free-in") {
        p.freeIn.push(m.slot!);
        p.inWaiters.shift()?.();
        return;
      }
      const j = p.jobs.get(m.id!);
      if (m.op === "out") {
        if (!j || j.closed) worker.postMessage({ op: "free-out", slot: m.slot });
        else j.queue.push({ slot: m.slot!, length: m.length! });
      } else if (m.op === "done" && j) {
        j.done = { hex: m.hex!, size: m.size! };
      } else if (m.op === "error" && j) {
        j.raw = { message: m.message ?? "", code: m.code };
      }
      j?.wake?.();
    },
  );
  worker.on("error", fail);
  worker.on("exit", (code) => fail(new Error(`decompression worker exited (code ${code})`)));
  worker.unref();
  pool = p;
  return p;
}

/** One layer's decompression: write the compressed bytes in, read the uncompressed ones out. */
export class InflateJob {
  readonly #p: Pool;
  readonly #id: number;
  readonly #state: JobState = { queue: [], closed: false };
  readonly #compression: Compression;
  readonly #what: string;
  #released = false;

  constructor(compression: Compression, what = "layer") {
    this.#p = getPool();
    this.#id = this.#p.nextId++;
    this.#compression = compression;
    this.#what = what;
    this.#p.jobs.set(this.#id, this.#state);
    this.#p.active++;
    if (this.#p.active === 1) this.#p.worker.ref();
    this.#p.worker.postMessage({ op: "start", id: this.#id, compression });
  }

  #error(): Error | undefined {
    const s = this.#state;
    if (s.raw && !s.error) s.error = zlibFailure(s.raw, this.#compression, this.#what);
    return s.error ?? this.#p.failure;
  }

  /** Copies `chunk` into input slots (waiting for free ones); the caller may reuse it at once. */
  async write(chunk: Uint8Array): Promise<void> {
    const p = this.#p;
    let off = 0;
    while (off < chunk.length) {
      const e = this.#error();
      if (e || this.#state.closed) throw e ?? new Error("decompression ended");
      if (p.freeIn.length === 0) {
        await new Promise<void>((r) => p.inWaiters.push(r));
        continue;
      }
      const slot = p.freeIn.pop()!;
      const n = Math.min(SLOT_SIZE, chunk.length - off);
      p.inMem.set(chunk.subarray(off, off + n), slot * SLOT_SIZE);
      p.worker.postMessage({ op: "in", id: this.#id, slot, length: n });
      off += n;
    }
  }

  /** No more input. */
  end(): void {
    if (!this.#state.closed) this.#p.worker.postMessage({ op: "end", id: this.#id });
  }

  /**
   * The uncompressed bytes in order, as views of shared memory: each is valid
   * until the next one is asked for (use it, do not keep it).
   */
  async *chunks(): AsyncGenerator<Buffer> {
    const s = this.#state;
    let held = -1;
    try {
      for (;;) {
        if (held >= 0) {
          this.#p.worker.postMessage({ op: "free-out", slot: held });
          held = -1;
        }
        while (s.queue.length === 0 && !s.done && !this.#error()) {
          await new Promise<void>((r) => {
            s.wake = r;
          });
          s.wake = undefined;
        }
        const e = this.#error();
        if (e) throw e;
        const next = s.queue.shift();
        if (!next) return;
        held = next.slot;
        yield Buffer.from(this.#p.outShared, next.slot * SLOT_SIZE, next.length);
      }
    } finally {
      if (held >= 0) this.#p.worker.postMessage({ op: "free-out", slot: held });
      this.#close();
    }
  }

  /** The diffID and size, once chunks() has ended without error. */
  result(): { diffID: Digest; size: number } {
    const d = this.#state.done;
    if (!d) throw this.#error() ?? new Error("decompression did not finish");
    return { diffID: `sha256:${d.hex}`, size: d.size };
  }

  /** Stops the job (after a failure elsewhere); chunks() then throws `reason`. */
  abort(reason: unknown): void {
    const s = this.#state;
    s.error ??= reason instanceof Error ? reason : new Error(String(reason));
    s.wake?.();
    for (const w of this.#p.inWaiters.splice(0)) w();
    this.#close();
  }

  #close(): void {
    const s = this.#state;
    if (s.closed) return;
    s.closed = true;
    for (const q of s.queue.splice(0)) this.#p.worker.postMessage({ op: "free-out", slot: q.slot });
    if (!s.done) this.#p.worker.postMessage({ op: "drop", id: this.#id });
    this.#p.jobs.delete(this.#id);
    if (!this.#released) {
      this.#released = true;
      this.#p.active--;
      if (this.#p.active === 0) this.#p.worker.unref();
    }
  }
}
