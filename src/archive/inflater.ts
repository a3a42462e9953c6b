/**
 * Decompression and the diffID hash off the main thread. One shared, lazily
 * started worker (plain JavaScript: no TypeScript loader) takes a layer's
 * compressed bytes through a few shared 512 KiB input slots and gunzips (or
 * zstd-decompresses) them straight into shared 512 KiB output slots, hashing
 * them there; the applier reads the output slots in place. A job can instead
 * name a file range (a stored blob): the worker then reads it itself and the
 * main thread only makes the files (a 1 GiB pull: main-thread GC 409 -> 146 ms,
 * 3.39 -> 3.2 s).
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
 * gzip goes through ISA-L (libisal.so.2, through koffi) where it loads and
 * passes a self-test: the four layers of the 1 GiB bench image inflate in
 * 1.0 s against zlib's 1.86 s, the critical path of an unpack. Otherwise, or
 * with DIST_GZIP=zlib, through Node's zlib; DIST_GZIP=isa-l makes its absence
 * an error. Both take the same input and fail alike (trailing zero padding
 * ignored, anything else after a member read as another member).
 */
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { Digest } from "../digest.ts";
import { type Compression, zlibFailure } from "./compression.ts";

const IN_SLOTS = 4;
const OUT_SLOTS = 4;
// 4 × 512 KiB each way: measured -5 MiB peak RSS on a pull against 1 MiB slots, no slower
const SLOT_SIZE = 512 << 10;

const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const zlib = require("node:zlib");
const { createHash } = require("node:crypto");
const fs = require("node:fs");
const SZ = workerData.slotSize;
const inMem = Buffer.from(workerData.inShared);
const outMem = Buffer.from(workerData.outShared);
const empty = Buffer.alloc(0);
const freeOut = [];
for (let i = 0; i < workerData.outSlots; i++) freeOut.push(i);
const jobs = new Map();
/** Jobs waiting for a free output slot, served in turn. */
const starving = [];
/**
 * A decompressor over caller-owned memory: write() takes input at (inBuf, inOff,
 * inLen) and fills (out, outOff, outLen), returning what is left of each and
 * whether the compressed stream has ended; finish() drains it once no input is
 * left (done: nothing more will come). Failures throw {message, code: "Z_..."}.
 */
function zlibCodec(kind) {
  const z = kind === "gzip" ? zlib.createGunzip() : zlib.createZstdDecompress();
  // errors are read from z.errored right after each call; the event itself comes later
  z.on("error", () => {});
  if (typeof z._handle?.writeSync !== "function" || !z._writeState || z._finishFlushFlag === undefined) {
    throw new Error("this Node.js zlib lacks the synchronous handle API (need Node.js 24)");
  }
  return {
    write(inBuf, inOff, inLen, out, outOff, outLen) {
      z._handle.writeSync(z._defaultFlushFlag, inBuf, inOff, inLen, out, outOff, outLen);
      if (z.errored) throw z.errored;
      const [availOut, availIn] = z._writeState;
      // input left over while output room remains: the decompressor reached the stream's end
      return { availIn, availOut, ended: availIn > 0 && availOut > 0 };
    },
    finish(out, outOff, outLen) {
      z._handle.writeSync(z._finishFlushFlag, empty, 0, 0, out, outOff, outLen);
      if (z.errored) throw z.errored;
      const availOut = z._writeState[0];
      return { availOut, done: availOut !== 0 };
    },
    close() {
      z.close();
    },
  };
}
/**
 * gzip through ISA-L's igzip (libisal.so.2), when present: about twice zlib's
 * speed here (1 GiB of layers: 1.0 s against 1.86 s). Its inflate_state is
 * allocated by the caller, so its layout is part of the library's ABI (fixed
 * for soname 2); a self-test at load checks it before it is trusted.
 */
const ISAL = { size: 87368, nextOut: 0, availOut: 8, nextIn: 16, availIn: 32, blockState: 21160, crcFlag: 21172 };
const ISAL_GZIP_NO_HDR_VER = 6;
const ISAL_BLOCK_FINISH = 5;
const ISAL_ERRORS = { [-1]: "invalid deflate block", [-2]: "invalid deflate symbol", [-3]: "invalid lookback distance", [-4]: "invalid gzip header", [-5]: "unsupported compression method", [-6]: "incorrect data check" };
let isal = null;
function loadIsal() {
  const koffi = require(workerData.koffi);
  const lib = koffi.load("libisal.so.2");
  isal = {
    koffi,
    init: lib.func("void isal_inflate_init(void *state)"),
    inflate: lib.func("int isal_inflate(void *state)"),
  };
  // the layout check: two members (the first with a named header) come out whole, a bad CRC fails
  const plain = Buffer.alloc(200000);
  for (let i = 0; i < plain.length; i++) plain[i] = (i * 7919) >> 5;
  const two = Buffer.concat([zlib.gzipSync(plain.subarray(0, 70000)), zlib.gzipSync(plain.subarray(70000))]);
  two[3] |= 8; // FNAME, with an empty name inserted after the 10-byte header
  const gz = Buffer.concat([two.subarray(0, 10), Buffer.from([0x61, 0]), two.subarray(10)]);
  const inflateAll = (input) => {
    const out = Buffer.alloc(plain.length + 1);
    const c = isalCodec();
    let inOff = 0;
    let outOff = 0;
    try {
      for (;;) {
        const r = c.write(input, inOff, input.length - inOff, out, outOff, out.length - outOff);
        outOff = out.length - r.availOut;
        inOff = input.length - r.availIn;
        if (r.ended || r.availIn === 0) break;
      }
      const f = c.finish(out, outOff, out.length - outOff);
      return f.done ? out.subarray(0, out.length - f.availOut) : null;
    } finally {
      c.close();
    }
  };
  if (!inflateAll(gz)?.equals(plain)) throw new Error("ISA-L self-test: wrong output");
  const bad = zlib.gzipSync(plain);
  bad[bad.length - 8] ^= 1;
  try {
    inflateAll(bad);
  } catch (e) {
    if (e.code === "Z_DATA_ERROR") return;
    throw e;
  }
  throw new Error("ISA-L self-test: a bad CRC went unnoticed");
}
const dataError = (message) => Object.assign(new Error(message), { code: "Z_DATA_ERROR" });
/**
 * A gzip member's header (RFC 1952), read as its bytes arrive: ISA-L is given
 * only the deflate data and the trailer it checks, because its own header
 * reader fails on a header CRC (FHCRC) split across two inputs.
 */
function gzipHeader() {
  const FHCRC = 2, FEXTRA = 4, FNAME = 8, FCOMMENT = 16;
  const fixed = Buffer.alloc(10);
  const phases = ["fixed"];
  let have = 0;
  let skip = 0;
  let crc = 0;
  const h = {
    done: false,
    /** Consumes header bytes of buf[off, off + len); returns how many it took. */
    take(buf, off, len) {
      const end = off + len;
      let i = off;
      while (i < end && !h.done) {
        const phase = phases[0];
        let n;
        if (phase === "name" || phase === "comment") {
          const z = buf.subarray(i, end).indexOf(0);
          n = z >= 0 ? z + 1 : end - i;
          if (z >= 0) phases.shift();
        } else if (phase === "extra") {
          n = Math.min(skip, end - i);
          skip -= n;
          if (skip === 0) phases.shift();
        } else {
          // fixed-size fields: the 10-byte header, XLEN, the header CRC
          const want = phase === "fixed" ? 10 : 2;
          n = Math.min(want - have, end - i);
          buf.copy(fixed, have, i, i + n);
          have += n;
          if (have === want) {
            have = 0;
            phases.shift();
            if (phase === "fixed") {
              if (fixed[0] !== 0x1f || fixed[1] !== 0x8b) throw dataError("incorrect header check");
              if (fixed[2] !== 8) throw dataError("unknown compression method");
              const flags = fixed[3];
              if (flags & 0xe0) throw dataError("unknown header flags set");
              if (flags & FEXTRA) phases.push("xlen");
              if (flags & FNAME) phases.push("name");
              if (flags & FCOMMENT) phases.push("comment");
              if (flags & FHCRC) phases.push("hcrc");
            } else if (phase === "xlen") {
              skip = fixed.readUInt16LE(0);
              if (skip > 0) phases.unshift("extra");
            } else if ((crc & 0xffff) !== fixed.readUInt16LE(0)) {
              throw dataError("header crc mismatch");
            }
          }
        }
        // the header CRC covers every byte before it
        if (phase !== "hcrc") crc = zlib.crc32(buf.subarray(i, i + n), crc);
        i += n;
        if (phases.length === 0) h.done = true;
      }
      return i - off;
    },
  };
  return h;
}
function isalCodec() {
  const st = Buffer.alloc(ISAL.size);
  const at = (buf, off) => isal.koffi.address(buf) + BigInt(off);
  let header;
  let ended = false; // a member ended: the next byte says whether another follows
  const begin = () => {
    isal.init(st);
    st.writeUInt32LE(ISAL_GZIP_NO_HDR_VER, ISAL.crcFlag);
    header = gzipHeader();
    ended = false;
  };
  begin();
  const step = (inBuf, inOff, inLen, out, outOff, outLen) => {
    st.writeBigUInt64LE(inLen > 0 ? at(inBuf, inOff) : 0n, ISAL.nextIn);
    st.writeUInt32LE(inLen, ISAL.availIn);
    st.writeBigUInt64LE(at(out, outOff), ISAL.nextOut);
    st.writeUInt32LE(outLen, ISAL.availOut);
    const r = isal.inflate(st);
    if (r < 0) throw dataError(ISAL_ERRORS[r] ?? "ISA-L error " + r);
    ended = st.readUInt32LE(ISAL.blockState) === ISAL_BLOCK_FINISH;
    return { availIn: st.readUInt32LE(ISAL.availIn), availOut: st.readUInt32LE(ISAL.availOut) };
  };
  return {
    write(inBuf, inOff, inLen, out, outOff, outLen) {
      if (ended) {
        // another member may follow; zero padding after the last one is ignored (as Node's zlib does)
        if (inLen === 0 || inBuf[inOff] === 0) return { availIn: inLen, availOut: outLen, ended: true };
        begin();
      }
      if (!header.done) {
        const n = header.take(inBuf, inOff, inLen);
        inOff += n;
        inLen -= n;
        if (inLen === 0) return { availIn: 0, availOut: outLen, ended: false };
      }
      const r = step(inBuf, inOff, inLen, out, outOff, outLen);
      if (!ended && r.availIn > 0 && r.availOut > 0) throw dataError("decompression made no progress");
      return { ...r, ended: false };
    },
    finish(out, outOff, outLen) {
      if (ended) return { availOut: outLen, done: true };
      const r = header.done ? step(empty, 0, 0, out, outOff, outLen) : { availOut: outLen };
      if (!ended && r.availOut === outLen) {
        throw Object.assign(new Error("unexpected end of file"), { code: "Z_BUF_ERROR" });
      }
      return { availOut: r.availOut, done: ended && r.availOut > 0 };
    },
    close() {},
  };
}
let gzipBackend = "zlib";
if (workerData.gzip !== "zlib") {
  try {
    loadIsal();
    gzipBackend = "isa-l";
  } catch (e) {
    isal = null;
    if (workerData.gzip === "isa-l") gzipBackend = "DIST_GZIP=isa-l but ISA-L (libisal.so.2) is not usable: " + e.message;
  }
}
parentPort.postMessage({ op: "backend", gzip: gzipBackend });
function codec(kind) {
  if (kind === "none") return null;
  if (kind === "gzip" && gzipBackend !== "zlib") {
    if (!isal) throw new Error(gzipBackend);
    return isalCodec();
  }
  return zlibCodec(kind);
}
/** Ends a job: its slots and file go back, and m (if any) tells the main thread how it ended. */
function report(job, m) {
  job.reported = true;
  jobs.delete(job.id);
  const i = starving.indexOf(job);
  if (i >= 0) starving.splice(i, 1);
  for (const it of job.inq.splice(0)) if (it.slot >= 0) parentPort.postMessage({ op: "free-in", slot: it.slot });
  if (job.out >= 0) freeOut.push(job.out);
  job.out = -1;
  job.z?.close();
  if (job.file) fs.closeSync(job.file.fd);
  job.file = null;
  if (m) parentPort.postMessage(m);
}
function fail(job, e) {
  report(job, { op: "error", id: job.id, message: String(e && e.message), code: e && e.code });
}
/**
 * Decompresses what the job has into its output slot, straight into shared
 * memory (the codec, synchronously: this thread does nothing else), posting
 * each full slot. Stops when input runs out or no output slot is free.
 */
function pump(job) {
  while (!job.reported) {
    if (job.file && job.inq.length === 0 && !job.ended) {
      // a file-fed job reads its own input: nobody has to feed it
      const f = job.file;
      const n = f.end - f.pos;
      if (n > 0) {
        let got;
        try {
          got = fs.readSync(f.fd, f.buf, 0, Math.min(SZ, n), f.pos);
        } catch (e) {
          return fail(job, e);
        }
        if (got === 0) return fail(job, Object.assign(new Error("the file ended early"), { code: "EOF" }));
        f.pos += got;
        job.inq.push({ mem: f.buf, base: 0, slot: -1, off: 0, len: got });
      } else {
        job.ended = true;
      }
    }
    const finishing = job.ended && job.inq.length === 0;
    if (job.inq.length === 0 && !finishing) return;
    if (job.out < 0) {
      if (freeOut.length === 0) {
        if (!starving.includes(job)) starving.push(job);
        return;
      }
      job.out = freeOut.pop();
      job.fill = 0;
    }
    const outOff = job.out * SZ + job.fill;
    const outLen = SZ - job.fill;
    let produced = 0;
    let done = false;
    if (finishing) {
      if (job.z && !job.zDone) {
        let r;
        try {
          r = job.z.finish(outMem, outOff, outLen);
        } catch (e) {
          return fail(job, e);
        }
        produced = outLen - r.availOut;
        done = r.done;
      } else {
        done = true;
      }
    } else {
      const it = job.inq[0];
      if (job.zDone) {
        // bytes after the end of the compressed stream are not part of the layer
        it.len = 0;
        if (job.file) job.file.pos = job.file.end;
      } else if (!job.z) {
        produced = Math.min(it.len, outLen);
        it.mem.copy(outMem, outOff, it.base + it.off, it.base + it.off + produced);
        it.off += produced;
        it.len -= produced;
      } else {
        let r;
        try {
          r = job.z.write(it.mem, it.base + it.off, it.len, outMem, outOff, outLen);
        } catch (e) {
          return fail(job, e);
        }
        produced = outLen - r.availOut;
        it.off += it.len - r.availIn;
        it.len = r.availIn;
        if (r.ended) job.zDone = true;
      }
      if (it.len === 0) {
        job.inq.shift();
        if (it.slot >= 0) parentPort.postMessage({ op: "free-in", slot: it.slot });
      }
    }
    if (produced > 0) {
      job.hash.update(outMem.subarray(outOff, outOff + produced));
      job.size += produced;
      job.fill += produced;
    }
    // a slot goes out when full, and whenever the input runs dry: whoever feeds the job may be waiting on its reader
    if (job.fill === SZ || (job.fill > 0 && (done || (job.inq.length === 0 && !job.file)))) {
      parentPort.postMessage({ op: "out", id: job.id, slot: job.out, length: job.fill, read: job.file ? job.file.pos - job.file.start : undefined });
      job.out = -1;
    }
    if (done) return report(job, { op: "done", id: job.id, hex: job.hash.digest("hex"), size: job.size });
  }
}
function serveStarving() {
  while (freeOut.length > 0 && starving.length > 0) pump(starving.shift());
}
parentPort.on("message", (m) => {
  if (m.op === "start") {
    const job = { id: m.id, z: null, zDone: false, hash: createHash("sha256"), size: 0, inq: [], out: -1, fill: 0, ended: false, reported: false, file: null };
    jobs.set(m.id, job);
    try {
      job.z = codec(m.compression);
      if (m.file) {
        const fd = fs.openSync(m.file.path, "r");
        job.file = { fd, buf: Buffer.allocUnsafe(SZ), start: m.file.offset, pos: m.file.offset, end: m.file.offset + m.file.length };
      }
    } catch (e) {
      return fail(job, e);
    }
    if (job.file) pump(job);
  } else if (m.op === "in") {
    const job = jobs.get(m.id);
    if (!job) {
      parentPort.postMessage({ op: "free-in", slot: m.slot });
      return;
    }
    job.inq.push({ mem: inMem, base: m.slot * SZ, slot: m.slot, off: 0, len: m.length });
    pump(job);
  } else if (m.op === "end") {
    const job = jobs.get(m.id);
    if (!job) return;
    job.ended = true;
    pump(job);
  } else if (m.op === "free-out") {
    freeOut.push(m.slot);
    serveStarving();
  } else if (m.op === "drop") {
    const job = jobs.get(m.id);
    // the main thread closed the job: nothing to tell it
    if (job) report(job);
    serveStarving();
  }
});
`;

interface JobState {
  queue: { slot: number; length: number }[];
  /** A file-fed job: bytes of the file read so far. */
  read: number;
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
  /** Which gzip decoder the worker uses ("isa-l" or "zlib"; otherwise why a forced one failed). */
  gzip: Promise<string>;
}

let pool: Pool | undefined;

function getPool(): Pool {
  if (pool && !pool.failure) return pool;
  const inShared = new SharedArrayBuffer(IN_SLOTS * SLOT_SIZE);
  const outShared = new SharedArrayBuffer(OUT_SLOTS * SLOT_SIZE);
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: {
      inShared,
      outShared,
      slotSize: SLOT_SIZE,
      outSlots: OUT_SLOTS,
      koffi: createRequire(import.meta.url).resolve("koffi"),
      gzip: process.env.DIST_GZIP ?? "auto",
    },
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
  worker.on(
    "message",
    (m: {
      op: string;
      id?: number;
      slot?: number;
      length?: number;
      read?: number;
      hex?: string;
      size?: number;
      message?: string;
      code?: string;
      gzip?: string;
    }) => {
      if (m.op === "backend") {
        backend(m.gzip!);
        return;
      }
      if (m.op === "free-in") {
        p.freeIn.push(m.slot!);
        p.inWaiters.shift()?.();
        return;
      }
      const j = p.jobs.get(m.id!);
      if (m.op === "out") {
        if (!j || j.closed) worker.postMessage({ op: "free-out", slot: m.slot });
        else j.queue.push({ slot: m.slot!, length: m.length! });
        if (j && m.read !== undefined) j.read = m.read;
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

/** A range of a file the worker reads itself (a blob in the content store). */
export interface InflateFile {
  path: string;
  offset: number;
  length: number;
}

/**
 * One layer's decompression: write the compressed bytes in (or name a file the
 * worker reads on its own), read the uncompressed ones out.
 */
export class InflateJob {
  readonly #p: Pool;
  readonly #id: number;
  readonly #state: JobState = { queue: [], read: 0, closed: false };
  readonly #compression: Compression;
  readonly #what: string;

  constructor(compression: Compression, what = "layer", file?: InflateFile) {
    this.#p = getPool();
    this.#id = this.#p.nextId++;
    this.#compression = compression;
    this.#what = what;
    this.#p.jobs.set(this.#id, this.#state);
    this.#p.active++;
    if (this.#p.active === 1) this.#p.worker.ref();
    this.#p.worker.postMessage({ op: "start", id: this.#id, compression, file });
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
    for (const q of s.queue.splice(0)) this.#p.worker.postMessage({ op: "free-out", slot: q.slot });
    if (!s.done) this.#p.worker.postMessage({ op: "drop", id: this.#id });
    this.#p.jobs.delete(this.#id);
    this.#p.active--;
    if (this.#p.active === 0) this.#p.worker.unref();
  }
}
