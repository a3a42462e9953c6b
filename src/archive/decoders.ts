/**
 * Decompressors over caller-owned memory, for the decompression worker: Node's
 * zlib (gzip, zstd) driven through its synchronous handle, the interface ISA-L's
 * gzip decoder (isal.ts) shares with it, and how their failures read.
 */
import * as zlib from "node:zlib";
import { DataLossError, wrapError } from "../errors.ts";

/** What a decoder call did: input and output room left. */
export interface DecodeStep {
  availIn: number;
  availOut: number;
}

/**
 * A decompressor writing into memory its caller owns. write() takes input at
 * (inBuf, inOff, inLen) and fills (out, outOff, outLen), returning what is left
 * of each and whether the compressed stream has ended; finish() drains it once
 * no input is left (done: nothing more will come). Corrupt or truncated data
 * throws an error with a zlib code ("Z_DATA_ERROR", "Z_BUF_ERROR"), as Node's
 * zlib does, so zlibFailure reads both decoders alike.
 */
export interface Decoder {
  write(
    inBuf: Buffer,
    inOff: number,
    inLen: number,
    out: Buffer,
    outOff: number,
    outLen: number,
  ): DecodeStep & { ended: boolean };
  finish(out: Buffer, outOff: number, outLen: number): { availOut: number; done: boolean };
  close(): void;
}

/**
 * A zlib failure (an error with a "Z_…" code, from zlib's streams or a
 * Decoder) of `format` ("gzip", "zstd") as one clear DataLossError line naming
 * `what`; other errors unchanged.
 */
export function zlibFailure(err: Error, format: string, what: string): Error {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== "string" || !code.startsWith("Z_")) return err;
  if (/unexpected end/i.test(err.message)) {
    return new DataLossError(`${what}: ${format} stream is truncated (unexpected end of data)`, { cause: err });
  }
  return wrapError(err, `${what}: corrupt ${format} data`, "DataLoss");
}

/** A zlib-style failure of corrupt data. */
export function dataError(message: string): Error {
  return Object.assign(new Error(message), { code: "Z_DATA_ERROR" });
}

/** A zlib-style failure of data that ended too soon. */
export function truncatedError(): Error {
  return Object.assign(new Error("unexpected end of file"), { code: "Z_BUF_ERROR" });
}

/** The undocumented synchronous side of a zlib stream (lib/zlib.js), stable through Node 24. */
interface ZlibHandle {
  writeSync(
    flush: number,
    inBuf: Uint8Array,
    inOff: number,
    inLen: number,
    out: Uint8Array,
    outOff: number,
    outLen: number,
  ): void;
}
type SyncZlib = zlib.Gunzip & {
  _handle?: ZlibHandle;
  /** [availOut, availIn] after the last write. */
  _writeState?: Uint32Array;
  _defaultFlushFlag?: number;
  _finishFlushFlag?: number;
};

const empty = Buffer.alloc(0);

/** Node's zlib, called synchronously: the worker has nothing else to do while it runs. */
export function zlibDecoder(kind: "gzip" | "zstd"): Decoder {
  const z = (kind === "gzip" ? zlib.createGunzip() : zlib.createZstdDecompress()) as SyncZlib;
  // errors are read from z.errored right after each call; the event itself comes later
  z.on("error", () => {});
  const handle = z._handle;
  const state = z._writeState;
  const flush = z._defaultFlushFlag;
  const finishFlush = z._finishFlushFlag;
  if (
    typeof handle?.writeSync !== "function" ||
    state === undefined ||
    flush === undefined ||
    finishFlush === undefined
  ) {
    throw new Error("this Node.js zlib lacks the synchronous handle API (need Node.js 24)");
  }
  return {
    write(inBuf, inOff, inLen, out, outOff, outLen) {
      handle.writeSync(flush, inBuf, inOff, inLen, out, outOff, outLen);
      if (z.errored) throw z.errored;
      const [availOut, availIn] = state;
      // input left over while output room remains: the decompressor reached the stream's end
      return { availIn, availOut, ended: availIn > 0 && availOut > 0 };
    },
    finish(out, outOff, outLen) {
      handle.writeSync(finishFlush, empty, 0, 0, out, outOff, outLen);
      if (z.errored) throw z.errored;
      const availOut = state[0];
      return { availOut, done: availOut !== 0 };
    },
    close() {
      z.close();
    },
  };
}
