/**
 * The tar header model shared by the reader and the writer, and the field codecs
 * (octal, base-256, checksum). Times are nanoseconds since the epoch as bigint,
 * so PAX sub-second times survive; PAX values and xattrs stay raw bytes.
 */

export const BLOCK = 512;

/** The kinds of tar entry. */
export type TarEntryType = "file" | "link" | "symlink" | "char" | "block" | "dir" | "fifo";

/** A tar header as read: every field, PAX records and xattrs decoded. */
export interface TarHeader {
  /** The entry's path as written in the archive (PAX `path` or GNU long name applied). */
  name: string;
  type: TarEntryType;
  /** The raw typeflag character ("0", "7", "5", ...). */
  typeflag: string;
  /** Permission and special bits only (0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of body that follow (0 for everything but files). */
  size: number;
  mtimeNs: bigint;
  atimeNs?: bigint;
  ctimeNs?: bigint;
  /** Hardlink or symlink target. */
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
  /** Extended attributes (PAX SCHILY.xattr.*), values as raw bytes. */
  xattrs: Map<string, Buffer>;
  /** Every PAX record that applied to this entry (global and local), values as raw bytes. */
  pax: Map<string, Buffer>;
  /** Byte offset of this entry's header block (the first of its extension headers) in the archive. */
  offset: number;
}

/** What the writer needs: the rest defaults (uid 0, mtime 0, ...). */
export interface TarHeaderInit {
  name: string;
  type: TarEntryType;
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  mtimeNs?: bigint;
  atimeNs?: bigint;
  linkname?: string;
  uname?: string;
  gname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Map<string, Uint8Array>;
}

export const TYPEFLAG: Record<TarEntryType, string> = {
  file: "0",
  link: "1",
  symlink: "2",
  char: "3",
  block: "4",
  dir: "5",
  fifo: "6",
};

export const NS_PER_S = 1_000_000_000n;

/** Reads a numeric field: octal text (NUL/space padded) or GNU base-256 (high bit set). */
export function parseNumeric(buf: Uint8Array, off: number, len: number): number {
  const first = buf[off];
  if (first & 0x80) {
    // base-256, two's complement, big-endian; the marker bit is not part of the value
    let v = BigInt(first & 0x7f);
    if (first & 0x40) v -= 0x80n; // 0xff...: negative
    for (let i = 1; i < len; i++) v = (v << 8n) | BigInt(buf[off + i]);
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new RangeError("base-256 number out of range");
    }
    return Number(v);
  }
  let i = off;
  const end = off + len;
  while (i < end && (buf[i] === 0x20 || buf[i] === 0)) i++;
  let v = 0;
  for (; i < end; i++) {
    const c = buf[i];
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) throw new RangeError(`invalid octal digit 0x${c.toString(16)}`);
    v = v * 8 + (c - 0x30);
  }
  return v;
}

/** Writes `v` as zero-padded octal with a NUL terminator; false when it does not fit. */
export function formatOctal(buf: Uint8Array, off: number, len: number, v: number): boolean {
  if (v < 0 || !Number.isSafeInteger(v)) return false;
  const s = v.toString(8);
  if (s.length > len - 1) return false;
  const pad = len - 1 - s.length;
  for (let i = 0; i < pad; i++) buf[off + i] = 0x30;
  for (let i = 0; i < s.length; i++) buf[off + pad + i] = s.charCodeAt(i);
  buf[off + len - 1] = 0;
  return true;
}

/** Writes `v` as GNU base-256 (for values too big for octal: device numbers, ids). */
export function formatBase256(buf: Uint8Array, off: number, len: number, v: number): void {
  let x = BigInt(v);
  for (let i = len - 1; i >= 0; i--) {
    buf[off + i] = Number(x & 0xffn);
    x >>= 8n;
  }
  buf[off] |= 0x80;
}

export function fitsOctal(v: number, len: number): boolean {
  return v >= 0 && Number.isSafeInteger(v) && v < 8 ** (len - 1);
}

/** The header checksum: the unsigned sum of all bytes with the checksum field read as spaces. */
export function checksum(block: Uint8Array, off = 0): { unsigned: number; signed: number } {
  let u = 0;
  let high = 0; // bytes >= 128 outside the checksum field, for the signed variant
  for (let i = off, end = off + BLOCK; i < end; i++) {
    const b = block[i];
    u += b;
    if (b > 127) high++;
  }
  for (let i = off + 148; i < off + 156; i++) {
    const b = block[i];
    u -= b;
    if (b > 127) high--;
  }
  u += 8 * 0x20;
  return { unsigned: u, signed: u - 256 * high };
}

export function isZeroBlock(buf: Uint8Array, off: number): boolean {
  for (let i = 0; i < BLOCK; i++) if (buf[off + i] !== 0) return false;
  return true;
}

/** Parses a PAX time ("1700000000.123456789", possibly negative) into ns. */
export function parsePaxTime(s: string): bigint {
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(s);
  if (!m) throw new RangeError(`invalid PAX time "${s}"`);
  const frac = (m[3] ?? "").slice(0, 9).padEnd(9, "0");
  const v = BigInt(m[2]) * NS_PER_S + BigInt(frac);
  return m[1] ? -v : v;
}

export function formatPaxTime(ns: bigint): string {
  const neg = ns < 0n;
  const a = neg ? -ns : ns;
  const sec = a / NS_PER_S;
  const frac = a % NS_PER_S;
  let s = sec.toString();
  if (frac !== 0n) s += `.${frac.toString().padStart(9, "0").replace(/0+$/, "")}`;
  return neg ? `-${s}` : s;
}
