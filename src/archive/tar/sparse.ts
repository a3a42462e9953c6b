/**
 * GNU sparse files, as GNU tar writes them (`tar --sparse`) and Go's
 * archive/tar reads them: the old GNU format (type "S", the map in the header
 * and in extension blocks after it), and the PAX formats 0.0 (repeated
 * GNU.sparse.offset / GNU.sparse.numbytes records), 0.1 (GNU.sparse.map) and
 * 1.0 (the map in decimal lines at the start of the entry's data). The stored
 * data is the file's data segments one after another; what lies between them
 * is a hole.
 */
import { DataLossError, InvalidArgumentError } from "../../errors.ts";
import { parseNumeric } from "./header.ts";

/** A data segment of a sparse file: `length` bytes stored for logical offset `offset`. */
export interface Segment {
  offset: number;
  length: number;
}

/** Old GNU format: entries in a header (4, at 386) and in extension blocks (21, at 0). */
export const OLD_GNU_HEADER_ENTRIES = { at: 386, count: 4, extended: 482, realSize: 483 } as const;
export const OLD_GNU_EXT_ENTRIES = { at: 0, count: 21, extended: 504 } as const;

/** Reads up to `count` (offset, length) pairs of 12-byte numbers from `at`, stopping at an empty one. */
export function oldGnuEntries(b: Buffer, at: number, count: number, into: Segment[], where: string): void {
  for (let i = 0; i < count; i++) {
    const e = at + i * 24;
    if (b[e] === 0) return; // as GNU and BSD tar: the first empty entry ends the list
    try {
      into.push({ offset: parseNumeric(b, e, 12), length: parseNumeric(b, e + 12, 12) });
    } catch {
      throw new DataLossError(`tar: invalid sparse map entry in ${where}`);
    }
  }
}

/** The map of PAX 0.0 / 0.1 (GNU.sparse.map "off,len,…" and GNU.sparse.numblocks). */
export function paxMap(map: string, numBlocks: string | undefined, where: string): Segment[] {
  const fields = map === "" ? [] : map.split(",");
  if (fields.length % 2 !== 0 || (numBlocks !== undefined && Number(numBlocks) * 2 !== fields.length)) {
    throw new DataLossError(`tar: invalid GNU.sparse.map in ${where}`);
  }
  const out: Segment[] = [];
  for (let i = 0; i < fields.length; i += 2)
    out.push({ offset: decimal(fields[i], where), length: decimal(fields[i + 1], where) });
  return out;
}

function decimal(s: string, where: string): number {
  const n = Number(s);
  if (!/^\d+$/.test(s) || !Number.isSafeInteger(n))
    throw new DataLossError(`tar: invalid sparse map number "${s}" in ${where}`);
  return n;
}

/** The 1.0 map at the start of the data: "N\n", then N (offset, length) pairs, one number a line, in whole blocks. */
export class Map10 {
  readonly #where: string;
  readonly #limit: number;
  #text = "";
  #lines = 0;
  #want = 1;
  #count = -1;

  constructor(where: string, limit: number) {
    this.#where = where;
    this.#limit = limit;
  }

  /** Takes one block of the data; true once the map is complete (its last block included). */
  push(block: Buffer): boolean {
    const s = block.toString("latin1");
    this.#text += s;
    if (this.#text.length > this.#limit) {
      throw new InvalidArgumentError(`tar: the sparse map of ${this.#where} is over ${this.#limit} bytes`);
    }
    for (let i = s.indexOf("\n"); i >= 0; i = s.indexOf("\n", i + 1)) this.#lines++;
    if (this.#count < 0 && this.#lines >= 1) {
      this.#count = decimal(this.#text.slice(0, this.#text.indexOf("\n")), this.#where);
      this.#want = 1 + 2 * this.#count;
    }
    return this.#count >= 0 && this.#lines >= this.#want;
  }

  segments(): Segment[] {
    const lines = this.#text.split("\n").slice(1, this.#want);
    const out: Segment[] = [];
    for (let i = 0; i < lines.length; i += 2) {
      out.push({ offset: decimal(lines[i], this.#where), length: decimal(lines[i + 1], this.#where) });
    }
    return out;
  }
}

/**
 * Checks a map against the file's size and the data stored (as Go and BSD tar
 * do: in order, not overlapping, inside the file, and the stored bytes exactly
 * the segments'); returns the segments that hold data.
 */
export function checkSegments(segs: Segment[], realSize: number, stored: number, where: string): Segment[] {
  let end = 0;
  let sum = 0;
  for (const s of segs) {
    if (s.offset < end || s.offset + s.length > realSize) {
      throw new DataLossError(`tar: the sparse map of ${where} has segments out of order or past its size`);
    }
    end = s.offset + s.length;
    sum += s.length;
  }
  if (sum !== stored) {
    throw new DataLossError(`tar: the sparse map of ${where} covers ${sum} bytes, the entry stores ${stored}`);
  }
  return segs.filter((s) => s.length > 0);
}
