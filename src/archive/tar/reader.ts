/**
 * A streaming tar reader. `TarParser` is a synchronous push parser (feed it chunks,
 * it calls back per entry and per body slice), the fast core the layer applier uses;
 * `readTar` wraps it as an async iterator of `{header, body}`.
 *
 * Understands ustar, GNU long names and links (L/K), PAX local (x) and global (g)
 * headers (values kept as bytes, SCHILY.xattr.* binary-safe), base-256 numbers,
 * every entry type, and GNU sparse files in all four of GNU tar's formats
 * (sparse.ts): their holes reach the handler as hole() (or as zeros). Header
 * checksums are verified. An archive may end without its end-of-archive blocks
 * after a whole entry (as GNU tar, Python and Go read it); ending inside an
 * entry or a header is an error.
 */
import { DataLossError, InvalidArgumentError, wrapError } from "../../errors.ts";
import {
  BLOCK,
  checksum,
  isZeroBlock,
  NS_PER_S,
  parseNumeric,
  parsePaxTime,
  type TarEntryType,
  type TarHeader,
} from "./header.ts";
import {
  checkSegments,
  Map10,
  OLD_GNU_EXT_ENTRIES,
  OLD_GNU_HEADER_ENTRIES,
  oldGnuEntries,
  paxMap,
  type Segment,
} from "./sparse.ts";

export interface TarHandler {
  /** A new entry; its body (size bytes) follows through data() and hole(), then end(). */
  entry(header: TarHeader): void;
  /** A slice of the current entry's body; a view valid for as long as the pushed chunk is. */
  data(chunk: Buffer): void;
  /** `length` bytes of a sparse file's hole (zeros); without this method they come to data() as zeros. */
  hole?(length: number): void;
  end(): void;
}

/** Zeros handed to data() for a hole when the handler takes no holes. */
const ZEROS = Buffer.alloc(64 << 10);

/** A sparse file's body being read: its data segments and where the logical file is. */
interface SparseBody {
  segs: Segment[];
  next: number;
  logical: number;
  realSize: number;
}

/** Extension headers larger than this are refused (a hostile size must not become memory). */
const MAX_EXTENSION = 16 << 20;

const STATE_HEADER = 0;
const STATE_BODY = 1;
const STATE_PAD = 2;
const STATE_EXT = 3;
const STATE_END = 4;
/** The old GNU sparse format's extension blocks, after the header. */
const STATE_SPARSE_EXT = 5;
/** The PAX 1.0 sparse map, at the start of the entry's data. */
const STATE_SPARSE_MAP = 6;

const TYPES: Record<string, TarEntryType> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "1": "link",
  "2": "symlink",
  "3": "char",
  "4": "block",
  "5": "dir",
  "6": "fifo",
};

function cstring(buf: Buffer, off: number, len: number): string {
  if (buf[off] === 0) return "";
  let end = off;
  const max = off + len;
  while (end < max && buf[end] !== 0) end++;
  return buf.toString("utf8", off, end);
}

export class TarParser {
  readonly #h: TarHandler;
  #state = STATE_HEADER;
  /** Bytes of the archive consumed so far. */
  #pos = 0;
  readonly #carry = Buffer.alloc(BLOCK);
  #carryLen = 0;
  #remaining = 0;
  #pad = 0;
  #zeroSeen = false;
  #entryOffset = -1;
  #extKind = "";
  #extBuf: Buffer | undefined;
  #extLen = 0;
  #local = new Map<string, Buffer>();
  #global = new Map<string, Buffer>();
  #longName: string | undefined;
  #longLink: string | undefined;
  /** A sparse entry whose map is still being read, and what it has so far. */
  #pending: { h: TarHeader; segs: Segment[]; realSize: number; map10?: Map10 } | undefined;
  #sparse: SparseBody | undefined;

  constructor(handler: TarHandler) {
    this.#h = handler;
  }

  /** True once the end-of-archive blocks were read. */
  get done(): boolean {
    return this.#state === STATE_END;
  }
  get offset(): number {
    return this.#pos;
  }

  push(chunk: Buffer): void {
    const len = chunk.length;
    let p = 0;
    while (p < len) {
      switch (this.#state) {
        case STATE_HEADER:
        case STATE_SPARSE_EXT:
        case STATE_SPARSE_MAP: {
          if (this.#carryLen === 0 && len - p >= BLOCK) {
            this.#block(chunk, p);
            p += BLOCK;
            this.#pos += BLOCK;
          } else {
            const n = Math.min(BLOCK - this.#carryLen, len - p);
            chunk.copy(this.#carry, this.#carryLen, p, p + n);
            this.#carryLen += n;
            p += n;
            this.#pos += n;
            if (this.#carryLen === BLOCK) {
              this.#carryLen = 0;
              this.#block(this.#carry, 0);
            }
          }
          break;
        }
        case STATE_BODY: {
          const n = Math.min(this.#remaining, len - p);
          if (this.#sparse) this.#sparseData(chunk.subarray(p, p + n));
          else this.#h.data(chunk.subarray(p, p + n));
          p += n;
          this.#pos += n;
          this.#remaining -= n;
          if (this.#remaining === 0) this.#endBody();
          break;
        }
        case STATE_PAD: {
          const n = Math.min(this.#pad, len - p);
          p += n;
          this.#pos += n;
          this.#pad -= n;
          if (this.#pad === 0) this.#state = STATE_HEADER;
          break;
        }
        case STATE_EXT: {
          const n = Math.min(this.#remaining, len - p);
          chunk.copy(this.#extBuf!, this.#extLen, p, p + n);
          this.#extLen += n;
          p += n;
          this.#pos += n;
          this.#remaining -= n;
          if (this.#remaining === 0) {
            this.#extension();
            this.#state = this.#pad > 0 ? STATE_PAD : STATE_HEADER;
          }
          break;
        }
        default:
          // after the end-of-archive blocks: padding to the record size, ignored
          this.#pos += len - p;
          p = len;
      }
    }
  }

  /**
   * Call at the end of input: throws DataLossError when the archive ends inside
   * an entry or a header. The end-of-archive blocks may be missing (one, or
   * both after a whole entry: an empty stream is an empty archive).
   */
  finish(): void {
    if (this.#state === STATE_END) return;
    if (this.#state === STATE_HEADER && this.#carryLen === 0) return;
    const where =
      this.#state === STATE_HEADER
        ? `inside a header block at offset ${this.#pos - this.#carryLen}`
        : `inside the entry at offset ${this.#entryOffset} (${this.#remaining} bytes missing)`;
    throw new DataLossError(`tar: archive truncated ${where}`);
  }

  #block(b: Buffer, o: number): void {
    if (this.#state === STATE_HEADER) this.#header(b, o);
    else if (this.#state === STATE_SPARSE_EXT) this.#sparseExtension(b, o);
    else this.#sparseMapBlock(b, o);
  }

  #header(b: Buffer, o: number): void {
    // #pos has not yet been advanced past a block read in place, but has past a carried one
    const blockOffset = b === this.#carry ? this.#pos - BLOCK : this.#pos;
    if (isZeroBlock(b, o)) {
      if (this.#zeroSeen) {
        this.#state = STATE_END;
        return;
      }
      this.#zeroSeen = true;
      return;
    }
    if (this.#zeroSeen) {
      throw new DataLossError(`tar: invalid header at offset ${blockOffset}: data after a zero block`);
    }
    let recorded: number;
    try {
      recorded = parseNumeric(b, o + 148, 8);
    } catch {
      recorded = -1;
    }
    const sum = checksum(b, o);
    if (recorded !== sum.unsigned && recorded !== sum.signed) {
      throw new DataLossError(
        `tar: invalid header checksum at offset ${blockOffset} (recorded ${recorded}, computed ${sum.unsigned})`,
      );
    }
    if (this.#entryOffset < 0) this.#entryOffset = blockOffset;
    const flag = String.fromCharCode(b[o + 156]);
    const num = (off: number, len: number, what: string): number => {
      try {
        return parseNumeric(b, o + off, len);
      } catch (e) {
        throw wrapError(e, `tar: invalid ${what} field in the header at offset ${blockOffset}`, "DataLoss");
      }
    };
    let size = num(124, 12, "size");
    if (flag === "x" || flag === "g" || flag === "L" || flag === "K") {
      if (size > MAX_EXTENSION) {
        throw new InvalidArgumentError(
          `tar: extension header at offset ${blockOffset} is ${size} bytes (limit ${MAX_EXTENSION})`,
        );
      }
      this.#extKind = flag;
      this.#extBuf = Buffer.allocUnsafe(size);
      this.#extLen = 0;
      this.#remaining = size;
      this.#pad = (BLOCK - (size % BLOCK)) % BLOCK;
      this.#state = STATE_EXT;
      if (size === 0) {
        this.#extension();
        this.#state = STATE_HEADER;
      }
      return;
    }
    let name = cstring(b, o, 100);
    const ustar = b[o + 257] === 0x75 && b[o + 258] === 0x73 && b[o + 262] === 0; // "ustar\0": POSIX, has a prefix
    if (ustar) {
      const star = b[o + 508] === 0x74 && b[o + 509] === 0x61 && b[o + 510] === 0x72 && b[o + 511] === 0;
      const prefix = cstring(b, o + 345, star ? 130 : 155);
      if (prefix) name = `${prefix}/${name}`;
    }
    // "S": a sparse file in the old GNU format (a GNU header: "ustar  \0")
    const gnu = b.toString("latin1", o + 257, o + 265) === "ustar  \0";
    let type = flag === "S" && gnu ? "file" : TYPES[flag];
    if (type === undefined) {
      const shown = /[ -~]/.test(flag) ? `"${flag}"` : `0x${b[o + 156].toString(16)}`;
      throw new InvalidArgumentError(
        `tar: unsupported entry type: type ${shown} for "${name}" at offset ${blockOffset}`,
      );
    }
    if (type === "file" && flag !== "7" && name.endsWith("/")) type = "dir"; // old V7 convention
    const mtime = num(136, 12, "mtime");
    const h: TarHeader = {
      name,
      type,
      typeflag: flag === "\0" ? "0" : flag,
      mode: num(100, 8, "mode") & 0o7777,
      uid: num(108, 8, "uid"),
      gid: num(116, 8, "gid"),
      size,
      mtimeNs: BigInt(mtime) * NS_PER_S,
      linkname: cstring(b, o + 157, 100),
      uname: cstring(b, o + 265, 32),
      gname: cstring(b, o + 297, 32),
      devmajor: type === "char" || type === "block" ? num(329, 8, "devmajor") : 0,
      devminor: type === "char" || type === "block" ? num(337, 8, "devminor") : 0,
      xattrs: new Map(),
      pax: this.#global.size > 0 ? new Map(this.#global) : new Map(),
      offset: this.#entryOffset,
    };
    if (this.#local.size > 0) {
      for (const [k, v] of this.#local) h.pax.set(k, v);
      this.#local = new Map();
    }
    if (h.pax.size > 0) this.#applyPax(h, blockOffset);
    if (this.#longName !== undefined) {
      if (!h.pax.has("path")) h.name = this.#longName;
      this.#longName = undefined;
    }
    if (this.#longLink !== undefined) {
      if (!h.pax.has("linkpath")) h.linkname = this.#longLink;
      this.#longLink = undefined;
    }
    // header-only types carry no body whatever their size field says (as Go reads them)
    size = type === "file" ? h.size : 0;
    if (type !== "file") h.size = 0;
    this.#remaining = size;
    this.#pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if (type === "file" && this.#sparseStart(h, b, o, flag)) return;
    this.#entryOffset = -1;
    this.#beginBody(h);
  }

  /** The entry and its body (#remaining bytes stored); a sparse one's map is complete. */
  #beginBody(h: TarHeader): void {
    this.#entryOffset = -1;
    this.#h.entry(h);
    if (this.#remaining === 0) this.#endBody();
    else this.#state = STATE_BODY;
  }

  #endBody(): void {
    const sp = this.#sparse;
    if (sp) {
      this.#sparse = undefined;
      if (sp.logical < sp.realSize) this.#hole(sp.realSize - sp.logical);
    }
    this.#h.end();
    this.#state = this.#pad > 0 ? STATE_PAD : STATE_HEADER;
  }

  /**
   * Starts a sparse file's entry: true when `h` is one (then its size is the
   * file's, and the entry goes out once the map is read: at once, or after the
   * old format's extension blocks or the 1.0 map).
   */
  #sparseStart(h: TarHeader, b: Buffer, o: number, flag: string): boolean {
    const where = `the entry "${h.name}" at offset ${this.#entryOffset}`;
    const rec = (k: string) => h.pax.get(k)?.toString("utf8");
    const segs: Segment[] = [];
    let realSize: number;
    let state = STATE_BODY;
    if (flag === "S") {
      const g = OLD_GNU_HEADER_ENTRIES;
      oldGnuEntries(b, o + g.at, g.count, segs, where);
      try {
        realSize = parseNumeric(b, o + g.realSize, 12);
      } catch {
        throw new DataLossError(`tar: invalid sparse file size in ${where}`);
      }
      if (b[o + g.extended] !== 0) state = STATE_SPARSE_EXT;
    } else {
      const major = rec("GNU.sparse.major");
      const minor = rec("GNU.sparse.minor");
      const map = rec("GNU.sparse.map");
      let v10 = false;
      if (major === "1" && minor === "0") v10 = true;
      else if (major !== undefined || minor !== undefined) {
        if (major !== "0" || (minor !== "0" && minor !== "1")) {
          throw new InvalidArgumentError(`tar: GNU sparse format ${major}.${minor} of ${where} is not supported`);
        }
      } else if (map === undefined) return false;
      const size = rec("GNU.sparse.size") ?? rec("GNU.sparse.realsize");
      realSize = size === undefined ? h.size : Number(size);
      if (!Number.isSafeInteger(realSize) || realSize < 0 || (size !== undefined && !/^\d+$/.test(size))) {
        throw new DataLossError(`tar: invalid sparse file size "${size}" in ${where}`);
      }
      const name = rec("GNU.sparse.name");
      if (name) h.name = name;
      if (v10) state = STATE_SPARSE_MAP;
      else segs.push(...paxMap(map ?? "", rec("GNU.sparse.numblocks"), where));
    }
    h.size = realSize;
    this.#pending = {
      h,
      segs,
      realSize,
      map10: state === STATE_SPARSE_MAP ? new Map10(where, MAX_EXTENSION) : undefined,
    };
    if (state === STATE_BODY) this.#sparseReady();
    else this.#state = state;
    return true;
  }

  /** An extension block of the old GNU sparse format: 21 more entries, and whether another block follows. */
  #sparseExtension(b: Buffer, o: number): void {
    const p = this.#pending!;
    const e = OLD_GNU_EXT_ENTRIES;
    oldGnuEntries(b, o + e.at, e.count, p.segs, `the entry "${p.h.name}" at offset ${this.#entryOffset}`);
    if (b[o + e.extended] === 0) this.#sparseReady();
  }

  /** A block of the 1.0 map, part of the entry's stored data. */
  #sparseMapBlock(b: Buffer, o: number): void {
    const p = this.#pending!;
    if (this.#remaining < BLOCK) {
      throw new DataLossError(`tar: the sparse map of "${p.h.name}" at offset ${this.#entryOffset} runs past its data`);
    }
    this.#remaining -= BLOCK;
    if (p.map10!.push(b.subarray(o, o + BLOCK))) {
      p.segs.push(...p.map10!.segments());
      this.#sparseReady();
    }
  }

  #sparseReady(): void {
    const p = this.#pending!;
    this.#pending = undefined;
    const where = `the entry "${p.h.name}" at offset ${this.#entryOffset}`;
    const segs = checkSegments(p.segs, p.realSize, this.#remaining, where);
    this.#sparse = { segs, next: 0, logical: 0, realSize: p.realSize };
    this.#beginBody(p.h);
  }

  /** Stored bytes of a sparse file: each segment's data, after the hole before it. */
  #sparseData(chunk: Buffer): void {
    const sp = this.#sparse!;
    let p = 0;
    while (p < chunk.length) {
      const seg = sp.segs[sp.next];
      if (sp.logical < seg.offset) {
        this.#hole(seg.offset - sp.logical);
        sp.logical = seg.offset;
      }
      const n = Math.min(seg.offset + seg.length - sp.logical, chunk.length - p);
      this.#h.data(chunk.subarray(p, p + n));
      p += n;
      sp.logical += n;
      if (sp.logical === seg.offset + seg.length) sp.next++;
    }
  }

  #hole(length: number): void {
    if (this.#h.hole) {
      this.#h.hole(length);
      return;
    }
    for (let left = length; left > 0; left -= ZEROS.length)
      this.#h.data(ZEROS.subarray(0, Math.min(left, ZEROS.length)));
  }

  #applyPax(h: TarHeader, at: number): void {
    for (const [k, v] of h.pax) {
      const s = () => v.toString("utf8");
      const int = (): number => {
        const t = s();
        if (!/^\d+$/.test(t)) throw new DataLossError(`tar: invalid PAX ${k}="${t}" for the entry at offset ${at}`);
        const n = Number(t);
        if (!Number.isSafeInteger(n)) throw new DataLossError(`tar: PAX ${k}=${t} out of range at offset ${at}`);
        return n;
      };
      const time = (): bigint => {
        try {
          return parsePaxTime(s());
        } catch {
          throw new DataLossError(`tar: invalid PAX ${k}="${s()}" for the entry at offset ${at}`);
        }
      };
      switch (k) {
        case "path":
          h.name = s();
          break;
        case "linkpath":
          h.linkname = s();
          break;
        case "size":
          if (h.type === "file") h.size = int();
          break;
        case "uid":
          h.uid = int();
          break;
        case "gid":
          h.gid = int();
          break;
        case "uname":
          h.uname = s();
          break;
        case "gname":
          h.gname = s();
          break;
        case "mtime":
          h.mtimeNs = time();
          break;
        case "atime":
          h.atimeNs = time();
          break;
        case "ctime":
          h.ctimeNs = time();
          break;
        default:
          if (k.startsWith("SCHILY.xattr.")) {
            h.xattrs.set(k.slice(13), v);
          } else if (k.startsWith("LIBARCHIVE.xattr.")) {
            h.xattrs.set(decodeURIComponent(k.slice(17)), Buffer.from(v.toString("latin1"), "base64"));
          }
      }
    }
  }

  #extension(): void {
    const buf = this.#extBuf!.subarray(0, this.#extLen);
    this.#extBuf = undefined;
    const at = this.#entryOffset;
    switch (this.#extKind) {
      case "L":
        this.#longName = cstring(buf, 0, buf.length);
        break;
      case "K":
        this.#longLink = cstring(buf, 0, buf.length);
        break;
      case "x":
        parsePaxRecords(buf, this.#local, at);
        break;
      case "g": {
        const g = new Map<string, Buffer>();
        parsePaxRecords(buf, g, at);
        for (const [k, v] of g) {
          // per-entry keys make no sense globally; an empty value deletes the key
          if (k === "path" || k === "linkpath" || k === "size") continue;
          if (v.length === 0) this.#global.delete(k);
          else this.#global.set(k, v);
        }
        this.#entryOffset = -1;
        break;
      }
    }
  }
}

/**
 * Parses PAX records ("LEN key=value\n") into `into`; values are copied raw
 * bytes. GNU's sparse format 0.0 repeats GNU.sparse.offset and
 * GNU.sparse.numbytes: they are gathered, in order, into a GNU.sparse.map
 * record (as 0.1 writes it and Go reads both).
 */
export function parsePaxRecords(buf: Buffer, into: Map<string, Buffer>, at = 0): void {
  const sparse: string[] = [];
  let p = 0;
  while (p < buf.length) {
    if (buf[p] === 0) break; // NUL padding some writers leave
    let sp = p;
    while (sp < buf.length && buf[sp] >= 0x30 && buf[sp] <= 0x39) sp++;
    if (sp === p || buf[sp] !== 0x20)
      throw new DataLossError(`tar: malformed PAX record in the header at offset ${at}`);
    const len = Number(buf.toString("latin1", p, sp));
    const end = p + len;
    if (len <= sp - p + 1 || end > buf.length || buf[end - 1] !== 0x0a) {
      throw new DataLossError(`tar: malformed PAX record length in the header at offset ${at}`);
    }
    const eq = buf.indexOf(0x3d, sp + 1);
    if (eq < 0 || eq >= end)
      throw new DataLossError(`tar: malformed PAX record (no "=") in the header at offset ${at}`);
    const key = buf.toString("utf8", sp + 1, eq);
    const value = Buffer.from(buf.subarray(eq + 1, end - 1));
    if (key === "GNU.sparse.offset" || key === "GNU.sparse.numbytes") {
      if ((key === "GNU.sparse.offset") !== (sparse.length % 2 === 0)) {
        throw new DataLossError(`tar: GNU.sparse.offset and numbytes out of order in the header at offset ${at}`);
      }
      sparse.push(value.toString("latin1"));
    } else {
      into.set(key, value);
    }
    p = end;
  }
  if (sparse.length > 0) into.set("GNU.sparse.map", Buffer.from(sparse.join(",")));
}

/** An entry of readTar: its header and its body (to consume or skip before the next). */
export interface TarEntry {
  header: TarHeader;
  /** The entry's body; skipped automatically when not read before the next entry. */
  body: AsyncIterable<Buffer>;
}

/**
 * Iterates the entries of a tar stream. Each body must be consumed (or abandoned)
 * before asking for the next entry; memory stays at one source chunk.
 */
export async function* readTar(source: AsyncIterable<Uint8Array>): AsyncGenerator<TarEntry> {
  type Ev = { h?: TarHeader; d?: Buffer; e?: boolean };
  let q: Ev[] = [];
  let qi = 0;
  const parser = new TarParser({
    entry: (h) => q.push({ h }),
    data: (d) => q.push({ d }),
    end: () => q.push({ e: true }),
  });
  const it = source[Symbol.asyncIterator]();
  let srcDone = false;
  const fill = async (): Promise<boolean> => {
    while (qi >= q.length) {
      if (srcDone || parser.done) return false;
      q = [];
      qi = 0;
      const r = await it.next();
      if (r.done) {
        srcDone = true;
        parser.finish();
        continue;
      }
      const v = r.value;
      parser.push(Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength));
    }
    return true;
  };
  try {
    while (await fill()) {
      const ev = q[qi++];
      if (!ev.h) continue; // the rest of a body the consumer did not read
      let bodyDone = false;
      const body = {
        async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
          while (!bodyDone && (await fill())) {
            const e = q[qi];
            if (e.h) break;
            qi++;
            if (e.e) break;
            yield e.d!;
          }
          bodyDone = true;
        },
      };
      yield { header: ev.h, body };
      bodyDone = true;
    }
    // drain what follows the end blocks, so a caller hashing the source sees all of it
    if (!srcDone) {
      for (;;) {
        const r = await it.next();
        if (r.done) break;
      }
    }
  } finally {
    if (!srcDone) await it.return?.();
  }
}
