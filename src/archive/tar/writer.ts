/**
 * A streaming tar writer following Go archive/tar's PAX conventions (the format
 * containerd and most image builders emit): a ustar header, preceded by a PAX `x`
 * header named `<dir>/PaxHeaders.0/<base>` when a field does not fit ustar (long or
 * non-ASCII names, big sizes or ids, sub-second times, xattrs). PAX records are
 * sorted by key; xattr values are written as raw bytes.
 */
import { once } from "node:events";
import type { Writable } from "node:stream";
import { InvalidArgumentError } from "../../errors.ts";
import {
  BLOCK,
  checksum,
  fitsOctal,
  formatBase256,
  formatOctal,
  formatPaxTime,
  NS_PER_S,
  type TarHeaderInit,
  TYPEFLAG,
} from "./header.ts";

const isAscii = (s: string): boolean => /^[\x01-\x7f]*$/.test(s);

/** Writes `s` into a field; false when it needs PAX (too long or not ASCII). */
function putString(buf: Buffer, off: number, len: number, s: string): boolean {
  const ok = isAscii(s) && s.length <= len;
  // best effort in the ustar field even when PAX carries the real value
  buf.write(ok ? s : s.replace(/[^\x01-\x7f]/g, "_").slice(0, len), off, len, "latin1");
  return ok;
}

/** Splits a long name into ustar prefix/name at a slash, or undefined when it cannot. */
function splitUstar(name: string): [string, string] | undefined {
  if (!isAscii(name) || name.length <= 100 || name.length > 256) return undefined;
  let i = name.length - 1;
  if (name.endsWith("/")) i--;
  for (i = Math.min(i, 155); i > 0; i--) {
    if (name[i] === "/") {
      const prefix = name.slice(0, i);
      const rest = name.slice(i + 1);
      if (rest.length > 0 && rest.length <= 100 && prefix.length <= 155) return [prefix, rest];
    }
  }
  return undefined;
}

function paxRecord(key: string, value: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, "utf8"), value, Buffer.from("\n")]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len), "latin1"), body]);
}

function basicBlock(
  name: string,
  typeflag: string,
  fields: { mode?: number; uid?: number; gid?: number; size?: number; mtime?: number },
): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(name, 0, 100, "latin1");
  formatOctal(b, 100, 8, fields.mode ?? 0);
  formatOctal(b, 108, 8, fields.uid ?? 0);
  formatOctal(b, 116, 8, fields.gid ?? 0);
  formatOctal(b, 124, 12, fields.size ?? 0);
  formatOctal(b, 136, 12, fields.mtime ?? 0);
  b[156] = typeflag.charCodeAt(0);
  b.write("ustar\x0000", 257, 8, "latin1");
  return b;
}

function finishBlock(b: Buffer): Buffer {
  const sum = checksum(b).unsigned;
  // Go's format: six octal digits, NUL, space
  b.write(sum.toString(8).padStart(6, "0"), 148, 6, "latin1");
  b[154] = 0;
  b[155] = 0x20;
  return b;
}

function pad(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** Encodes an entry's header blocks (PAX header and body first when needed, then ustar). */
export function encodeHeader(h: TarHeaderInit): Buffer {
  const pax = new Map<string, Uint8Array>();
  const b = Buffer.alloc(BLOCK);
  const type = h.type;
  const size = type === "file" ? (h.size ?? 0) : 0;
  if (!Number.isSafeInteger(size) || size < 0)
    throw new InvalidArgumentError(`tar: invalid size ${size} for "${h.name}"`);

  if (!putString(b, 0, 100, h.name)) {
    const split = splitUstar(h.name);
    if (split) {
      b.fill(0, 0, 100);
      b.write(split[1], 0, 100, "latin1");
      b.write(split[0], 345, 155, "latin1");
    } else {
      pax.set("path", Buffer.from(h.name, "utf8"));
    }
  }
  formatOctal(b, 100, 8, (h.mode ?? 0) & 0o7777);
  for (const [key, off, v] of [
    ["uid", 108, h.uid ?? 0],
    ["gid", 116, h.gid ?? 0],
  ] as const) {
    if (!formatOctal(b, off, 8, v)) {
      pax.set(key, Buffer.from(String(v)));
      formatOctal(b, off, 8, 0);
    }
  }
  if (!formatOctal(b, 124, 12, size)) {
    pax.set("size", Buffer.from(String(size)));
    formatOctal(b, 124, 12, 0);
  }
  const mtimeNs = h.mtimeNs ?? 0n;
  const mtimeSec = mtimeNs >= 0n ? mtimeNs / NS_PER_S : (mtimeNs - NS_PER_S + 1n) / NS_PER_S;
  if (mtimeNs % NS_PER_S !== 0n || !fitsOctal(Number(mtimeSec), 12)) {
    pax.set("mtime", Buffer.from(formatPaxTime(mtimeNs)));
  }
  formatOctal(b, 136, 12, fitsOctal(Number(mtimeSec), 12) ? Number(mtimeSec) : 0);
  if (h.atimeNs !== undefined) pax.set("atime", Buffer.from(formatPaxTime(h.atimeNs)));
  b[156] = TYPEFLAG[type].charCodeAt(0);
  const linkname = h.linkname ?? "";
  if (!putString(b, 157, 100, linkname)) pax.set("linkpath", Buffer.from(linkname, "utf8"));
  b.write("ustar\x0000", 257, 8, "latin1");
  if (!putString(b, 265, 32, h.uname ?? "")) pax.set("uname", Buffer.from(h.uname ?? "", "utf8"));
  if (!putString(b, 297, 32, h.gname ?? "")) pax.set("gname", Buffer.from(h.gname ?? "", "utf8"));
  if (type === "char" || type === "block") {
    for (const [off, v] of [
      [329, h.devmajor ?? 0],
      [337, h.devminor ?? 0],
    ] as const) {
      if (!formatOctal(b, off, 8, v)) formatBase256(b, off, 8, v);
    }
  }
  if (h.xattrs) for (const [k, v] of h.xattrs) pax.set(`SCHILY.xattr.${k}`, v);
  finishBlock(b);
  if (pax.size === 0) return b;

  const records = Buffer.concat([...pax.keys()].sort().map((k) => paxRecord(k, pax.get(k)!)));
  const slash = h.name.replace(/\/+$/, "").lastIndexOf("/");
  const dir = slash >= 0 ? h.name.slice(0, slash) : ".";
  const base = h.name.replace(/\/+$/, "").slice(slash + 1);
  let paxName = `${dir === "." ? "" : `${dir}/`}PaxHeaders.0/${base}`;
  paxName = Buffer.from(paxName.replace(/[^\x01-\x7f]/g, "_"), "latin1")
    .subarray(0, 100)
    .toString("latin1");
  const xh = finishBlock(basicBlock(paxName, "x", { size: records.length }));
  return Buffer.concat([xh, records, Buffer.alloc(pad(records.length)), b]);
}

/** The end of an archive: two zero blocks. */
export const END_OF_ARCHIVE: Buffer = Buffer.alloc(2 * BLOCK);

/** Writes entries to a Writable with backpressure. */
export class TarWriter {
  readonly #out: Writable;
  /** Bytes written so far. */
  bytes = 0;
  constructor(out: Writable) {
    this.#out = out;
  }

  async #write(b: Uint8Array): Promise<void> {
    this.bytes += b.length;
    if (!this.#out.write(b)) await once(this.#out, "drain");
  }

  /** Adds an entry; a file's body must supply exactly `size` bytes. */
  async add(h: TarHeaderInit, body?: Uint8Array | AsyncIterable<Uint8Array>): Promise<void> {
    await this.#write(encodeHeader(h));
    const size = h.type === "file" ? (h.size ?? 0) : 0;
    let n = 0;
    if (body instanceof Uint8Array) {
      n = body.length;
      if (n > 0) await this.#write(body);
    } else if (body) {
      for await (const chunk of body) {
        n += chunk.length;
        if (n > size) break;
        await this.#write(chunk);
      }
    }
    if (n !== size) {
      throw new InvalidArgumentError(`tar: body of "${h.name}" is ${n} bytes, header says ${size}`);
    }
    const p = pad(size);
    if (p > 0) await this.#write(Buffer.alloc(p));
  }

  /**
   * Adds a file entry whose body `fill` hands over chunk by chunk through the
   * function it is given, which resolves once the chunk is written out: the
   * caller may then reuse its buffer (a large body copied through a few reused
   * buffers leaves no garbage behind). The body must be exactly `size` bytes.
   */
  async addWritten(
    h: TarHeaderInit,
    fill: (write: (chunk: Uint8Array) => Promise<void>) => Promise<void>,
  ): Promise<void> {
    await this.#write(encodeHeader(h));
    const size = h.type === "file" ? (h.size ?? 0) : 0;
    let n = 0;
    await fill(async (chunk) => {
      n += chunk.length;
      if (n > size) throw new InvalidArgumentError(`tar: body of "${h.name}" is over the ${size} bytes of its header`);
      this.bytes += chunk.length;
      await new Promise<void>((resolve, reject) => {
        this.#out.write(chunk, (err) => (err ? reject(err) : resolve()));
      });
    });
    if (n !== size) {
      throw new InvalidArgumentError(`tar: body of "${h.name}" is ${n} bytes, header says ${size}`);
    }
    const p = pad(size);
    if (p > 0) await this.#write(Buffer.alloc(p));
  }

  /** Writes the end-of-archive blocks and ends the output stream. */
  async finish(opts: { end?: boolean } = {}): Promise<void> {
    await this.#write(END_OF_ARCHIVE);
    if (opts.end !== false) {
      const done = once(this.#out, "finish");
      this.#out.end();
      await done;
    }
  }
}
