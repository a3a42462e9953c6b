/**
 * gzip through ISA-L's igzip (libisal.so.2, bound through src/sys/ffi.ts), when
 * present: about twice zlib's speed here (1 GiB of layers: 1.0 s against
 * 1.86 s). Its inflate_state is allocated by the caller, so its layout is part
 * of the library's ABI (fixed for soname 2); loadIsal's self-test checks it
 * before it is trusted.
 *
 * ISA-L is given only the deflate data and the trailer it checks: the gzip
 * header is read here (gzipHeader), because ISA-L's own header reader fails on
 * a header CRC (FHCRC) split across two inputs.
 */
import * as zlib from "node:zlib";
import { addressOf, loadLibrary } from "../sys/ffi.ts";
import { type Decoder, type DecodeStep, dataError, truncatedError } from "./decoders.ts";

/** Offsets in struct inflate_state (isal 2.x, x86-64) and its size. */
const STATE = { size: 87368, nextOut: 0, availOut: 8, nextIn: 16, availIn: 32, blockState: 21160, crcFlag: 21172 };
const ISAL_GZIP_NO_HDR_VER = 6;
const ISAL_BLOCK_FINISH = 5;
const ISAL_ERRORS: Record<number, string> = {
  [-1]: "invalid deflate block",
  [-2]: "invalid deflate symbol",
  [-3]: "invalid lookback distance",
  [-4]: "invalid gzip header",
  [-5]: "unsupported compression method",
  [-6]: "incorrect data check",
};

interface Isal {
  init: (state: Buffer) => void;
  inflate: (state: Buffer) => number;
}
let isal: Isal | undefined;

/**
 * Binds ISA-L and checks the state layout on real data: two members (the first
 * with a named header) come out whole, a bad CRC fails. Throws where the
 * library is missing or the check fails.
 */
export function loadIsal(): void {
  if (isal) return;
  const lib = loadLibrary("libisal.so.2");
  isal = {
    init: lib.func("void isal_inflate_init(void *state)") as Isal["init"],
    inflate: lib.func("int isal_inflate(void *state)") as Isal["inflate"],
  };
  try {
    selfTest();
  } catch (e) {
    isal = undefined;
    throw e;
  }
}

function selfTest(): void {
  // bytes (i * 7919) >> 5, which repeat every 8192: one period, copied on (this runs before the first inflate)
  const period = Buffer.alloc(8192);
  for (let i = 0; i < period.length; i++) period[i] = (i * 7919) >> 5;
  const plain = Buffer.alloc(200000).fill(period);
  const second = zlib.gzipSync(plain.subarray(70000));
  const two = Buffer.concat([zlib.gzipSync(plain.subarray(0, 70000)), second]);
  two[3] |= 8; // FNAME, with an empty name inserted after the 10-byte header
  const gz = Buffer.concat([two.subarray(0, 10), Buffer.from([0x61, 0]), two.subarray(10)]);
  const inflateAll = (input: Buffer): Buffer | null => {
    const out = Buffer.alloc(plain.length + 1);
    const d = isalDecoder();
    let inOff = 0;
    let outOff = 0;
    try {
      for (;;) {
        const r = d.write(input, inOff, input.length - inOff, out, outOff, out.length - outOff);
        outOff = out.length - r.availOut;
        inOff = input.length - r.availIn;
        if (r.ended || r.availIn === 0) break;
      }
      const f = d.finish(out, outOff, out.length - outOff);
      return f.done ? out.subarray(0, out.length - f.availOut) : null;
    } finally {
      d.close();
    }
  };
  if (!inflateAll(gz)?.equals(plain)) throw new Error("ISA-L self-test: wrong output");
  const bad = Buffer.from(second);
  bad[bad.length - 8] ^= 1;
  try {
    inflateAll(bad);
  } catch (e) {
    if ((e as { code?: string }).code === "Z_DATA_ERROR") return;
    throw e;
  }
  throw new Error("ISA-L self-test: a bad CRC went unnoticed");
}

type HeaderPhase = "fixed" | "xlen" | "extra" | "name" | "comment" | "hcrc";

/** A gzip member's header (RFC 1952), read as its bytes arrive. */
export interface GzipHeader {
  readonly done: boolean;
  /** Consumes header bytes of buf[off, off + len); returns how many it took. */
  take(buf: Buffer, off: number, len: number): number;
}

export function gzipHeader(): GzipHeader {
  const FHCRC = 2;
  const FEXTRA = 4;
  const FNAME = 8;
  const FCOMMENT = 16;
  const fixed = Buffer.alloc(10);
  const phases: HeaderPhase[] = ["fixed"];
  let done = false;
  let have = 0;
  let skip = 0;
  let crc = 0;
  return {
    get done() {
      return done;
    },
    take(buf, off, len) {
      const end = off + len;
      let i = off;
      while (i < end && !done) {
        const phase = phases[0];
        let n: number;
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
        if (phases.length === 0) done = true;
      }
      return i - off;
    },
  };
}

const empty = Buffer.alloc(0);

/** A gzip decoder through ISA-L; loadIsal() must have succeeded. */
export function isalDecoder(): Decoder {
  const lib = isal;
  if (!lib) throw new Error("ISA-L is not loaded");
  const st = Buffer.alloc(STATE.size);
  const at = (buf: Buffer, off: number) => addressOf(buf) + BigInt(off);
  let header = gzipHeader();
  let ended = false; // a member ended: the next byte says whether another follows
  const begin = () => {
    lib.init(st);
    st.writeUInt32LE(ISAL_GZIP_NO_HDR_VER, STATE.crcFlag);
    header = gzipHeader();
    ended = false;
  };
  begin();
  const step = (inBuf: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number) => {
    st.writeBigUInt64LE(inLen > 0 ? at(inBuf, inOff) : 0n, STATE.nextIn);
    st.writeUInt32LE(inLen, STATE.availIn);
    st.writeBigUInt64LE(at(out, outOff), STATE.nextOut);
    st.writeUInt32LE(outLen, STATE.availOut);
    const r = lib.inflate(st);
    if (r < 0) throw dataError(ISAL_ERRORS[r] ?? `ISA-L error ${r}`);
    ended = st.readUInt32LE(STATE.blockState) === ISAL_BLOCK_FINISH;
    return { availIn: st.readUInt32LE(STATE.availIn), availOut: st.readUInt32LE(STATE.availOut) };
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
      const r: Pick<DecodeStep, "availOut"> = header.done
        ? step(empty, 0, 0, out, outOff, outLen)
        : { availOut: outLen };
      if (!ended && r.availOut === outLen) throw truncatedError();
      return { availOut: r.availOut, done: ended && r.availOut > 0 };
    },
    close() {},
  };
}
