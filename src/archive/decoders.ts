/**
 * Decompressors over caller-owned memory, for the decompression worker: Node's
 * zlib (gzip, zstd) driven through its synchronous handle, the interface ISA-L's
 * gzip decoder (isal.ts) shares with it, and how their failures read.
 */
import * as zlib from "node:zlib";
import { DataLossError, InvalidArgumentError, wrapError } from "../errors.ts";

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
 * A zlib failure (an error with a "Z_…" or "ZSTD_error_…" code, from zlib's
 * streams or a Decoder) of `format` ("gzip", "zstd") as one clear DataLossError line naming
 * `what`; other errors unchanged.
 */
export function zlibFailure(err: Error, format: string, what: string): Error {
  const code = (err as { code?: unknown }).code;
  // zlib's codes, and libzstd's (ZSTD_error_checksum_wrong, ZSTD_error_prefix_unknown, …)
  if (typeof code !== "string" || !(code.startsWith("Z_") || code.startsWith("ZSTD_error_"))) return err;
  if (code === "ZSTD_error_frameParameter_windowTooLarge") {
    return new InvalidArgumentError(
      `${what}: a zstd frame needs a window over ${2 ** (ZSTD_WINDOW_LOG_MAX - 20)} MiB, more than dist accepts`,
      { cause: err },
    );
  }
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

/**
 * The largest zstd window accepted, as a power of two: 512 MiB, the limit of
 * containerd's decoder (klauspost/compress), above libzstd's default of 128 MiB
 * (`zstd --long=28` and `--long=29` write valid streams that need it). The
 * window is how far back a frame may refer; its buffer is allocated at the
 * frame's start but its pages cost memory only once written, and never more
 * than the frame's content when the header gives the content size.
 */
export const ZSTD_WINDOW_LOG_MAX = 29;

/**
 * Node's zlib, called synchronously: the worker has nothing else to do while it runs.
 *
 * A zstd stream is any number of frames, skippable frames among them (RFC 8878
 * §3.1). libzstd's decoder goes on from one frame to the next by itself, but
 * each call stops at the end of a frame: Node's own streams take that for the
 * end of the data and drop the rest. Here a call that stops with input and
 * output room left is simply made again, so no frame boundary is ever an end:
 * the data ends where the input does (finish() says whether that was inside a
 * frame), and bytes after the last frame must be another frame.
 */
export function zlibDecoder(kind: "gzip" | "zstd"): Decoder {
  const z = (
    kind === "gzip"
      ? zlib.createGunzip()
      : zlib.createZstdDecompress({ params: { [zlib.constants.ZSTD_d_windowLogMax]: ZSTD_WINDOW_LOG_MAX } })
  ) as SyncZlib;
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
      for (;;) {
        handle.writeSync(flush, inBuf, inOff, inLen, out, outOff, outLen);
        if (z.errored) throw z.errored;
        const [availOut, availIn] = state;
        // input left over while output room remains: the end of a gzip stream, or of one zstd frame
        const stopped = availIn > 0 && availOut > 0;
        if (!stopped || kind === "gzip") return { availIn, availOut, ended: stopped };
        if (availIn === inLen && availOut === outLen) throw dataError("zstd decoding made no progress");
        inOff += inLen - availIn;
        inLen = availIn;
        outOff += outLen - availOut;
        outLen = availOut;
      }
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
