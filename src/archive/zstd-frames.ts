/**
 * Where the frames of a zstd stream end (RFC 8878 §3.1), found from their
 * headers as the bytes arrive: a zstd frame is a header, blocks whose 3-byte
 * headers give their sizes, and an optional checksum; a skippable frame is a
 * magic number, a 4-byte size and that many bytes. Nothing is decoded here.
 *
 * Why: Node's zstd stream hands libzstd each written chunk in one call, and
 * libzstd returns at the end of a frame; Node takes that for the end of the
 * data and drops the rest of the chunk. Written one frame at a time, a stream
 * of any number of frames decodes whole with one decoder (libzstd goes on to
 * the next frame by itself), at the speed of a single frame.
 */
import { DataLossError } from "../errors.ts";

const ZSTD_MAGIC = 0xfd2fb528;
/** Skippable frames: magic 0x184D2A50..0x184D2A5F. */
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
const RESERVED_BLOCK = 3;
const RLE_BLOCK = 1;

type Phase = "magic" | "descriptor" | "skippable-size" | "block-header";

export interface ZstdFrameSplitter {
  /** The chunk cut after each frame that ends in it (the last piece may end inside a frame). */
  split(chunk: Buffer): Buffer[];
  /** Throws DataLoss if the stream ended inside a frame. */
  end(): void;
}

/**
 * A scanner of one zstd stream. Bytes where a frame should start that are not a
 * frame's magic number (junk after the last frame), or a block of the reserved
 * type, are a DataLossError naming `what` and the offset.
 */
export function zstdFrameSplitter(what: string): ZstdFrameSplitter {
  let phase: Phase = "magic";
  /** Bytes of the current header field gathered so far, and how many it has. */
  const field = Buffer.alloc(4);
  let want = 4;
  let have = 0;
  /** Bytes to pass over before the next field; then the frame ends if frameEnds. */
  let skip = 0;
  let frameEnds = false;
  let checksum = false;
  /** Offset in the stream of the chunk being scanned, for error messages. */
  let offset = 0;
  let frameStart = 0;

  const corrupt = (at: number, why: string) =>
    new DataLossError(`${what}: corrupt zstd data: ${why} at byte ${at} of the stream`);

  /** Offsets in `chunk` where a frame ends. */
  const scan = (chunk: Buffer): number[] => {
    const ends: number[] = [];
    const end = chunk.length;
    let i = 0;
    const close = () => {
      ends.push(i);
      frameEnds = false;
      phase = "magic";
      want = 4;
    };
    while (i < end) {
      if (skip > 0) {
        const n = Math.min(skip, end - i);
        i += n;
        skip -= n;
        if (skip === 0 && frameEnds) close();
        continue;
      }
      if (have === 0 && phase === "magic") frameStart = offset + i;
      const n = Math.min(want - have, end - i);
      chunk.copy(field, have, i, i + n);
      have += n;
      i += n;
      if (have < want) break;
      have = 0;
      switch (phase) {
        case "magic": {
          const magic = field.readUInt32LE(0);
          if (magic === ZSTD_MAGIC) {
            phase = "descriptor";
            want = 1;
          } else if ((magic & SKIPPABLE_MASK) >>> 0 === SKIPPABLE_MAGIC) {
            phase = "skippable-size";
            want = 4;
          } else {
            throw corrupt(frameStart, "no frame starts");
          }
          break;
        }
        case "descriptor": {
          const fhd = field[0];
          if (fhd & 0x08) throw corrupt(frameStart + 4, "reserved bit set in a frame header");
          const singleSegment = (fhd & 0x20) !== 0;
          const fcsFlag = fhd >> 6;
          checksum = (fhd & 0x04) !== 0;
          const window = singleSegment ? 0 : 1;
          const dictionary = [0, 1, 2, 4][fhd & 0x03];
          const contentSize = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag];
          skip = window + dictionary + contentSize;
          phase = "block-header";
          want = 3;
          break;
        }
        case "skippable-size": {
          skip = field.readUInt32LE(0);
          frameEnds = true;
          if (skip === 0) close();
          break;
        }
        case "block-header": {
          const h = field[0] | (field[1] << 8) | (field[2] << 16);
          const type = (h >> 1) & 3;
          if (type === RESERVED_BLOCK) throw corrupt(offset + i - 3, "a block of the reserved type");
          skip = type === RLE_BLOCK ? 1 : h >>> 3;
          if (h & 1) {
            // the last block, then the checksum if the frame has one
            if (checksum) skip += 4;
            frameEnds = true;
            if (skip === 0) close();
          }
          break;
        }
      }
    }
    offset += end;
    return ends;
  };

  return {
    split(chunk) {
      const ends = scan(chunk);
      const pieces: Buffer[] = [];
      let from = 0;
      for (const e of ends) {
        if (e > from) pieces.push(chunk.subarray(from, e));
        from = e;
      }
      if (from < chunk.length) pieces.push(chunk.subarray(from));
      return pieces;
    },
    end() {
      if (phase !== "magic" || have > 0 || skip > 0) {
        throw new DataLossError(`${what}: zstd stream is truncated (unexpected end of data)`);
      }
    },
  };
}
