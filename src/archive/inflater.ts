/**
 * Decompression and the diffID hash off the main thread. One shared, lazily
 * started worker (inflate-worker.ts) takes a layer's compressed bytes through a
 * few shared 512 KiB input slots and gunzips (or zstd-decompresses) them
 * straight into shared 512 KiB output slots, hashing them there; the applier
 * reads the output slots in place. A job can instead name a file range (a
 * stored blob): the worker then reads it itself and the main thread only makes
 * the files (a 1 GiB pull: main-thread GC 409 -> 146 ms, 3.39 -> 3.2 s).
 *
 * Why: with zlib on the main thread's streams every MiB of output is a fresh
 * 1 MiB Buffer; V8 counts them against the old generation and ran ~105 full
 * mark-compacts during a 1 GiB pull (~1 s of the main thread, which also makes
 * the files). The worker drives zlib's handle synchronously (it has nothing
 * else to do) with shared memory as the output, so neither thread allocates
 * per chunk: measured on 120 MiB of gzip, the stream version left ~12 MiB more
 * RSS behind (dead output buffers and malloc fragmentation). The worker is
 * unref'd while no job runs: it never keeps the process alive.
 *
 * gzip goes through ISA-L (isal.ts) where it loads and passes a self-test: the
 * four layers of the 1 GiB bench image inflate in 1.0 s against zlib's 1.86 s,
 * the critical path of an unpack. Otherwise, or with DIST_GZIP=zlib, through
 * Node's zlib; DIST_GZIP=isa-l makes its absence an error. Both take the same
 * input and fail alike (trailing zero padding ignored, anything else after a
 * member read as another member).
 */
import { extname } from "node:path";
import { Worker } from "node:worker_threads";
import type { Digest } from "../digest.ts";
import { errorFromData } from "../errors.ts";
import type { Compression } from "./compression.ts";
import type { FromWorker, GzipChoice, InflateFile, InflateWorkerData, ToWorker } from "./inflate-protocol.ts";

export type { InflateFile } from "./inflate-protocol.ts";

const IN_SLOTS = 4;
const OUT_SLOTS = 4;
// 4 × 512 KiB each way: measured -5 MiB peak RSS on a pull against 1 MiB slots, no slower
const SLOT_SIZE = 512 << 10;

/**
 * The worker's module, next to this one and with its extension: .ts run by
 * Node's type stripping in the checkout, .js once compiled. In the checkout it
 * starts as fast as a script would only with a compile cache (bin/dist sets
 * NODE_COMPILE_CACHE); without one, the worker instantiates a type stripper of
 * its own (measured: +45 ms and +14 MiB to the first inflated bytes).
 */
const WORKER_URL = new URL(`./inflate-worker${extname(new URL(import.meta.url).pathname)}`, import.meta.url);

interface JobState {
  queue: { slot: number; length: number }[];
  /** A file-fed job: bytes of the file read so far. */
  read: number;
  wake?: () => void;
  done?: { hex: string; size: number };
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
  /** Which gzip decoder the worker uses ("isa-l" or "zlib"; otherwise why a forced one failed). */
  gzip: Promise<string>;
}

let pool: Pool | undefined;

const post = (p: Pool, m: ToWorker) => p.worker.postMessage(m);

function gzipChoice(): GzipChoice {
  const v = process.env.DIST_GZIP;
  return v === "isa-l" || v === "zlib" ? v : "auto";
}

function getPool(): Pool {
  if (pool && !pool.failure) return pool;
  const inShared = new SharedArrayBuffer(IN_SLOTS * SLOT_SIZE);
  const outShared = new SharedArrayBuffer(OUT_SLOTS * SLOT_SIZE);
  const worker = new Worker(WORKER_URL, {
    workerData: {
      inShared,
      outShared,
      outSlots: OUT_SLOTS,
      slotSize: SLOT_SIZE,
      gzip: gzipChoice(),
    } satisfies InflateWorkerData,
  });
  let backend!: (name: string) => void;
  const p: Pool = {
    worker,
    inMem: new Uint8Array(inShared),
    outShared,
    freeIn: Array.from({ length: IN_SLOTS }, (_, i) => i),
    inWaiters: [],
    jobs: new Map(),
    nextId: 1,
    active: 0,
    gzip: new Promise<string>((r) => {
      backend = r;
    }),
  };
  const fail = (e: Error) => {
    p.failure ??= e;
    for (const w of p.inWaiters.splice(0)) w();
    for (const j of p.jobs.values()) {
      j.error ??= p.failure;
      j.wake?.();
    }
  };
  worker.on("message", (m: FromWorker) => {
    if (m.op === "backend") {
      backend(m.gzip);
      return;
    }
    if (m.op === "free-in") {
      p.freeIn.push(m.slot);
      p.inWaiters.shift()?.();
      return;
    }
    const j = p.jobs.get(m.id);
    if (m.op === "out") {
      if (!j || j.closed) post(p, { op: "free-out", slot: m.slot });
      else j.queue.push({ slot: m.slot, length: m.length });
      if (j && m.read !== undefined) j.read = m.read;
    } else if (m.op === "done" && j) {
      j.done = { hex: m.hex, size: m.size };
    } else if (m.op === "error" && j) {
      // the worker's error, of the same kind (DataLoss for a corrupt or truncated stream)
      j.error ??= errorFromData(m.error);
    }
    j?.wake?.();
  });
  worker.on("error", fail);
  worker.on("exit", (code) => fail(new Error(`decompression worker exited (code ${code})`)));
  worker.unref();
  pool = p;
  return p;
}

/**
 * The gzip decoder layers go through: "isa-l" where libisal.so.2 loads and
 * passes its self-test, else "zlib". DIST_GZIP=zlib|isa-l forces one.
 */
export async function gzipBackend(): Promise<string> {
  const p = getPool();
  // an idle worker is unref'd: hold it while waiting for its answer
  p.worker.ref();
  try {
    return await p.gzip;
  } finally {
    if (p.active === 0) p.worker.unref();
  }
}

/**
 * One layer's decompression: write the compressed bytes in (or name a file the
 * worker reads on its own), read the uncompressed ones out.
 */
export class InflateJob {
  readonly #p: Pool;
  readonly #id: number;
  readonly #state: JobState = { queue: [], read: 0, closed: false };

  constructor(compression: Compression, what = "layer", file?: InflateFile) {
    this.#p = getPool();
    this.#id = this.#p.nextId++;
    this.#p.jobs.set(this.#id, this.#state);
    this.#p.active++;
    if (this.#p.active === 1) this.#p.worker.ref();
    post(this.#p, { op: "start", id: this.#id, compression, what, file });
  }

  #error(): Error | undefined {
    return this.#state.error ?? this.#p.failure;
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
      post(p, { op: "in", id: this.#id, slot, length: n });
      off += n;
    }
  }

  /** No more input. */
  end(): void {
    if (!this.#state.closed) post(this.#p, { op: "end", id: this.#id });
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
          post(this.#p, { op: "free-out", slot: held });
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
      if (held >= 0) post(this.#p, { op: "free-out", slot: held });
      this.#close();
    }
  }

  /** A file-fed job: bytes of the file decompressed so far (as of the last chunk out). */
  get bytesRead(): number {
    return this.#state.read;
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
    for (const q of s.queue.splice(0)) post(this.#p, { op: "free-out", slot: q.slot });
    if (!s.done) post(this.#p, { op: "drop", id: this.#id });
    this.#p.jobs.delete(this.#id);
    this.#p.active--;
    if (this.#p.active === 0) this.#p.worker.unref();
  }
}
