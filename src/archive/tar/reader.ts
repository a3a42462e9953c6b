/**
 * A streaming tar reader. `TarParser` is a synchronous push parser (feed it chunks,
 * it calls back per entry and per body slice), the fast core the layer applier uses;
 * `readTar` wraps it as an async iterator of `{header, body}`.
 *
 * Understands ustar, GNU long names and links (L/K), PAX local (x) and global (g)
 * headers (values kept as bytes, SCHILY.xattr.* binary-safe), base-256 numbers, and
 * every entry type but sparse files, which are refused. Header checksums are
 * verified; an archive that ends without its end-of-archive blocks is an error.
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

export interface TarHandler {
  /** A new entry; its body (size bytes) follows through data(), then end(). */
  entry(header: TarHeader): void;
  /** A slice of the current entry's body; a view valid for as long as the pushed chunk is. */
  data(chunk: Buffer): void;
  end(): void;
}

/** Extension headers larger than this are refused (a hostile size must not become memory). */
const MAX_EXTENSION = 16 << 20;

const STATE_HEADER = 0;
const STATE_BODY = 1;
const STATE_PAD = 2;
const STATE_EXT = 3;
const STATE_END = 4;

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
        case STATE_HEADER: {
          if (this.#carryLen === 0 && len - p >= BLOCK) {
            this.#header(chunk, p);
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
              this.#header(this.#carry, 0);
            }
          }
          break;
        }
        case STATE_BODY: {
          const n = Math.min(this.#remaining, len - p);
          this.#h.data(chunk.subarray(p, p + n));
          p += n;
          this.#pos += n;
          this.#remaining -= n;
          if (this.#remaining === 0) {
            this.#h.end();
            this.#state = this.#pad > 0 ? STATE_PAD : STATE_HEADER;
          }
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

  /** Call at the end of input: throws DataLossError when the archive is truncated. */
  finish(): void {
    if (this.#state === STATE_END) return;
    if (this.#pos === 0) return; // an empty stream is an empty layer
    if (this.#state === STATE_HEADER && this.#carryLen === 0 && this.#zeroSeen) return; // one zero block, then EOF
    const where =
      this.#state === STATE_BODY || this.#state === STATE_EXT
        ? `inside the entry at offset ${this.#entryOffset} (${this.#remaining} bytes missing)`
        : this.#carryLen > 0
          ? `inside a header block at offset ${this.#pos - this.#carryLen}`
          : `at offset ${this.#pos}: no end-of-archive blocks`;
    throw new DataLossError(`tar: archive truncated ${where}`);
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
    let type = TYPES[flag];
    if (type === undefined) {
      const shown = /[ -~]/.test(flag) ? `"${flag}"` : `0x${b[o + 156].toString(16)}`;
      const why = flag === "S" ? "sparse files are not supported" : "unsupported entry type";
      throw new InvalidArgumentError(`tar: ${why}: type ${shown} for "${name}" at offset ${blockOffset}`);
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
    this.#entryOffset = -1;
    // header-only types carry no body whatever their size field says (as Go reads them)
    size = type === "file" ? h.size : 0;
    if (type !== "file") h.size = 0;
    this.#h.entry(h);
    this.#remaining = size;
    this.#pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if (size === 0) {
      this.#h.end();
      this.#state = this.#pad > 0 ? STATE_PAD : STATE_HEADER;
    } else {
      this.#state = STATE_BODY;
    }
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
          } else if (k.startsWith("GNU.sparse.")) {
            throw new InvalidArgumentError(
              `tar: sparse files are not supported: "${h.name}" at offset ${at} has PAX ${k}`,
            );
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

/** Parses PAX records ("LEN key=value\n") into `into`; values are copied raw bytes. */
export function parsePaxRecords(buf: Buffer, into: Map<string, Buffer>, at = 0): void {
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
    into.set(key, Buffer.from(buf.subarray(eq + 1, end - 1)));
    p = end;
  }
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
