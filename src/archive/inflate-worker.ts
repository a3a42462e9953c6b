/**
 * The decompression worker (started by inflater.ts): decompresses each job's
 * input slots (or the file range it names) straight into shared output slots
 * and hashes the output there, the diffID. The decoders run synchronously: this
 * thread has nothing else to do. A job's failure goes back by kind (a corrupt
 * or truncated stream is DataLoss, naming the job's source).
 */
import { createHash, type Hash } from "node:crypto";
import * as fs from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import { DataLossError, errorToData, FailedPreconditionError } from "../errors.ts";
import type { Compression } from "./compression.ts";
import { type Decoder, zlibDecoder, zlibFailure } from "./decoders.ts";
import type { FromWorker, InflateWorkerData, ToWorker } from "./inflate-protocol.ts";
import { isalDecoder, loadIsal } from "./isal.ts";

if (!parentPort) throw new Error("inflate-worker.ts runs as a worker thread (see inflater.ts)");
const port = parentPort;
const data = workerData as InflateWorkerData;
const SLOT_SIZE = data.slotSize;
const inMem = Buffer.from(data.inShared);
const outMem = Buffer.from(data.outShared);
const post = (m: FromWorker) => port.postMessage(m);

/** Bytes of a job's input: a slot of inMem, or the job's own file buffer (slot -1). */
interface Input {
  mem: Buffer;
  base: number;
  slot: number;
  off: number;
  len: number;
}

interface FileInput {
  fd: number;
  buf: Buffer;
  start: number;
  pos: number;
  end: number;
}

interface Job {
  id: number;
  compression: Compression;
  what: string;
  decoder: Decoder | null;
  /**
   * The gzip stream ended (only zero padding follows): anything after it is
   * ignored. A zstd stream never ends before its input (decoders.ts).
   */
  decoded: boolean;
  hash: Hash;
  size: number;
  inq: Input[];
  /** The output slot being filled, -1 for none. */
  out: number;
  fill: number;
  /** No more input will come. */
  ended: boolean;
  reported: boolean;
  file: FileInput | null;
}

const freeOut: number[] = [];
for (let i = 0; i < data.outSlots; i++) freeOut.push(i);
const jobs = new Map<number, Job>();
/** Jobs waiting for a free output slot, served in turn. */
const starving: Job[] = [];

/** "isa-l", "zlib", or why a forced ISA-L is unusable (then every gzip job fails with it). */
let gzipBackend = "zlib";
if (data.gzip !== "zlib") {
  try {
    loadIsal();
    gzipBackend = "isa-l";
  } catch (e) {
    if (data.gzip === "isa-l") {
      gzipBackend = `DIST_GZIP=isa-l but ISA-L (libisal.so.2) is not usable: ${(e as Error).message}`;
    }
  }
}
post({ op: "backend", gzip: gzipBackend });

function decoder(kind: Compression): Decoder | null {
  if (kind === "none") return null;
  if (kind === "gzip" && gzipBackend !== "zlib") {
    if (gzipBackend !== "isa-l") throw new FailedPreconditionError(gzipBackend);
    return isalDecoder();
  }
  return zlibDecoder(kind);
}

/** Ends a job: its slots and file go back, and m (if any) tells the main thread how it ended. */
function report(job: Job, m?: FromWorker): void {
  job.reported = true;
  jobs.delete(job.id);
  const i = starving.indexOf(job);
  if (i >= 0) starving.splice(i, 1);
  for (const it of job.inq.splice(0)) if (it.slot >= 0) post({ op: "free-in", slot: it.slot });
  if (job.out >= 0) freeOut.push(job.out);
  job.out = -1;
  job.decoder?.close();
  if (job.file) fs.closeSync(job.file.fd);
  job.file = null;
  if (m) post(m);
}

/** A decoder's failure as DataLoss naming the source; any other error as it is. */
function fail(job: Job, e: unknown): void {
  const err = e instanceof Error ? zlibFailure(e, job.compression, job.what) : e;
  report(job, { op: "error", id: job.id, error: errorToData(err) });
}

/**
 * Decompresses what the job has into its output slot, straight into shared
 * memory, posting each full slot. Stops when input runs out or no output slot
 * is free.
 */
function pump(job: Job): void {
  while (!job.reported) {
    if (job.file && job.inq.length === 0 && !job.ended) {
      // a file-fed job reads its own input: nobody has to feed it
      const f = job.file;
      const n = f.end - f.pos;
      if (n > 0) {
        let got: number;
        try {
          got = fs.readSync(f.fd, f.buf, 0, Math.min(SLOT_SIZE, n), f.pos);
        } catch (e) {
          fail(job, e);
          return;
        }
        if (got === 0) {
          const at = f.pos - f.start;
          fail(job, new DataLossError(`${job.what}: the file ended early (${at} of ${f.end - f.start} bytes)`));
          return;
        }
        f.pos += got;
        job.inq.push({ mem: f.buf, base: 0, slot: -1, off: 0, len: got });
      } else {
        job.ended = true;
      }
    }
    const finishing = job.ended && job.inq.length === 0;
    if (job.inq.length === 0 && !finishing) return;
    if (job.out < 0) {
      const slot = freeOut.pop();
      if (slot === undefined) {
        if (!starving.includes(job)) starving.push(job);
        return;
      }
      job.out = slot;
      job.fill = 0;
    }
    const outOff = job.out * SLOT_SIZE + job.fill;
    const outLen = SLOT_SIZE - job.fill;
    let produced = 0;
    let done = false;
    if (finishing) {
      if (job.decoder && !job.decoded) {
        let r: { availOut: number; done: boolean };
        try {
          r = job.decoder.finish(outMem, outOff, outLen);
        } catch (e) {
          fail(job, e);
          return;
        }
        produced = outLen - r.availOut;
        done = r.done;
      } else {
        done = true;
      }
    } else {
      const it = job.inq[0];
      if (job.decoded) {
        // bytes after the end of the compressed stream are not part of the layer
        it.len = 0;
        if (job.file) job.file.pos = job.file.end;
      } else if (!job.decoder) {
        produced = Math.min(it.len, outLen);
        it.mem.copy(outMem, outOff, it.base + it.off, it.base + it.off + produced);
        it.off += produced;
        it.len -= produced;
      } else {
        let r: { availIn: number; availOut: number; ended: boolean };
        try {
          r = job.decoder.write(it.mem, it.base + it.off, it.len, outMem, outOff, outLen);
        } catch (e) {
          fail(job, e);
          return;
        }
        produced = outLen - r.availOut;
        it.off += it.len - r.availIn;
        it.len = r.availIn;
        if (r.ended) job.decoded = true;
      }
      if (it.len === 0) {
        job.inq.shift();
        if (it.slot >= 0) post({ op: "free-in", slot: it.slot });
      }
    }
    if (produced > 0) {
      job.hash.update(outMem.subarray(outOff, outOff + produced));
      job.size += produced;
      job.fill += produced;
    }
    // a slot goes out when full, and whenever the input runs dry: whoever feeds the job may be waiting on its reader
    if (job.fill === SLOT_SIZE || (job.fill > 0 && (done || (job.inq.length === 0 && !job.file)))) {
      const read = job.file ? job.file.pos - job.file.start : undefined;
      post({ op: "out", id: job.id, slot: job.out, length: job.fill, read });
      job.out = -1;
    }
    if (done) {
      report(job, { op: "done", id: job.id, hex: job.hash.digest("hex"), size: job.size });
      return;
    }
  }
}

function serveStarving(): void {
  while (freeOut.length > 0) {
    const job = starving.shift();
    if (!job) return;
    pump(job);
  }
}

port.on("message", (m: ToWorker) => {
  switch (m.op) {
    case "start": {
      const job: Job = {
        id: m.id,
        compression: m.compression,
        what: m.what,
        decoder: null,
        decoded: false,
        hash: createHash("sha256"),
        size: 0,
        inq: [],
        out: -1,
        fill: 0,
        ended: false,
        reported: false,
        file: null,
      };
      jobs.set(m.id, job);
      try {
        job.decoder = decoder(m.compression);
        if (m.file) {
          const { path, offset, length } = m.file;
          const fd = fs.openSync(path, "r");
          job.file = { fd, buf: Buffer.allocUnsafe(SLOT_SIZE), start: offset, pos: offset, end: offset + length };
        }
      } catch (e) {
        fail(job, e);
        return;
      }
      if (job.file) pump(job);
      return;
    }
    case "in": {
      const job = jobs.get(m.id);
      if (!job) {
        post({ op: "free-in", slot: m.slot });
        return;
      }
      job.inq.push({ mem: inMem, base: m.slot * SLOT_SIZE, slot: m.slot, off: 0, len: m.length });
      pump(job);
      return;
    }
    case "end": {
      const job = jobs.get(m.id);
      if (!job) return;
      job.ended = true;
      pump(job);
      return;
    }
    case "free-out":
      freeOut.push(m.slot);
      serveStarving();
      return;
    case "drop": {
      const job = jobs.get(m.id);
      // the main thread closed the job: nothing to tell it
      if (job) report(job);
      serveStarving();
      return;
    }
  }
});
