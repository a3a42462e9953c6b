/**
 * writeDiff: a layer tar of the changes from `lower` to `upper`, so that applying
 * it onto a copy of lower gives upper (containerd's archive.WriteDiff).
 *
 * Two directory forms:
 * - lower/upper (or upper alone, for a base layer): both trees are walked in
 *   sorted order; what differs (type, mode, owner, size, mtime to the ns, device,
 *   link target, xattrs, and content when the mtime has no sub-second part) is
 *   written, deletions become `.wh.<name>` entries;
 * - overlay (`{overlay: true}`, lower ignored): the upperdir is the diff; a 0:0
 *   char device becomes `.wh.<name>` and `trusted.overlay.opaque=y` a
 *   `.wh..wh..opq` entry after its directory.
 * The parents of every change are written too (so their metadata survives), files
 * sharing an inode become hardlinks to the first name written, and entries are
 * sorted by name within each directory, directories before their contents.
 */
import { type BigIntStats, createReadStream, lstatSync, readdirSync, readlinkSync } from "node:fs";
import { open } from "node:fs/promises";
import type { Writable } from "node:stream";
import * as sys from "../sys/index.ts";
import { overlayXattrPrefix } from "../sys/userns.ts";
import type { TarEntryType, TarHeaderInit } from "./tar/header.ts";
import { TarWriter } from "./tar/writer.ts";

/** Options of writeDiff. */
export interface DiffOptions {
  /** The upper directory is an overlayfs upperdir: convert its whiteouts and opaque markers. */
  overlay?: boolean;
  signal?: AbortSignal;
  /** End `out` after the end-of-archive blocks (default true). */
  end?: boolean;
}

const SKIP_XATTR = (name: string, overlay: boolean) =>
  name === "security.selinux" || (overlay && (name.startsWith("trusted.overlay.") || name.startsWith("user.overlay.")));

/** The tar entry type of a file (undefined for a socket, which is not archived). */
export function typeOf(st: BigIntStats): TarEntryType | undefined {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "dir";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isCharacterDevice()) return "char";
  if (st.isBlockDevice()) return "block";
  if (st.isFIFO()) return "fifo";
  return undefined; // sockets are not archived
}

function xattrsOf(path: string, overlay: boolean): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  let names: string[];
  try {
    names = sys.llistxattr(path);
  } catch (e) {
    if ((e as { code?: string }).code === "ENOTSUP") return out;
    throw e;
  }
  for (const n of names.sort()) {
    if (SKIP_XATTR(n, overlay)) continue;
    const v = sys.lgetxattr(path, n);
    if (v !== undefined) out.set(n, v);
  }
  return out;
}

function sameXattrs(a: Map<string, Uint8Array>, b: Map<string, Uint8Array>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (!w || Buffer.compare(v, w) !== 0) return false;
  }
  return true;
}

async function sameContent(a: string, b: string): Promise<boolean> {
  const [fa, fb] = await Promise.all([open(a), open(b)]);
  try {
    const ba = Buffer.allocUnsafe(1 << 20);
    const bb = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, ba.length), fb.read(bb, 0, bb.length)]);
      if (ra.bytesRead !== rb.bytesRead) return false;
      if (ra.bytesRead === 0) return true;
      if (ba.subarray(0, ra.bytesRead).compare(bb.subarray(0, rb.bytesRead)) !== 0) return false;
    }
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

const join = (dir: string, name: string) => (dir === "" ? name : `${dir}/${name}`);

/** Writes to `out` a layer tar of the changes from `lower` (undefined for a base layer) to `upper`, so that applying it onto lower gives upper (containerd's archive.WriteDiff). */
export async function writeDiff(
  lower: string | undefined,
  upper: string,
  out: Writable,
  opts: DiffOptions = {},
): Promise<void> {
  const overlay = opts.overlay === true;
  const tw = new TarWriter(out);
  const emitted = new Set<string>([""]);
  const inodes = new Map<string, string>();
  const base = overlay ? undefined : lower;

  const header = (rel: string, abs: string, st: BigIntStats, type: TarEntryType): TarHeaderInit => {
    const h: TarHeaderInit = {
      name: type === "dir" ? `${rel}/` : rel,
      type,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtimeNs: st.mtimeNs,
      xattrs: xattrsOf(abs, overlay),
    };
    if (type === "file") h.size = Number(st.size);
    if (type === "symlink") h.linkname = readlinkSync(abs);
    if (type === "char" || type === "block") {
      h.devmajor = sys.major(st.rdev);
      h.devminor = sys.minor(st.rdev);
    }
    return h;
  };

  /** Writes the directories above `rel` that are not yet in the archive, top down. */
  const parents = async (rel: string) => {
    const parts = rel.split("/");
    for (let i = 1; i < parts.length; i++) {
      const p = parts.slice(0, i).join("/");
      if (emitted.has(p)) continue;
      emitted.add(p);
      const abs = `${upper}/${p}`;
      await tw.add(header(p, abs, lstatSync(abs, { bigint: true }), "dir"));
    }
  };

  const emit = async (rel: string, st: BigIntStats, type: TarEntryType) => {
    opts.signal?.throwIfAborted();
    await parents(rel);
    const abs = `${upper}/${rel}`;
    const h = header(rel, abs, st, type);
    if (type === "dir") emitted.add(rel);
    if (type === "file" && st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`;
      const first = inodes.get(key);
      if (first !== undefined) {
        await tw.add({ ...h, type: "link", size: 0, linkname: first });
        return;
      }
      inodes.set(key, rel);
    }
    if (type === "file" && h.size! > 0) {
      await tw.add(h, createReadStream(abs, { highWaterMark: 1 << 20 }));
    } else {
      await tw.add(h);
    }
  };

  const whiteout = async (dirRel: string, name: string) => {
    const rel = join(dirRel, `.wh.${name}`);
    await parents(rel);
    await tw.add({ name: rel, type: "file", mode: 0, size: 0 });
  };

  const isDir = (path: string): boolean => lstatSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;

  const unchanged = async (rel: string, u: BigIntStats, l: BigIntStats, type: TarEntryType): Promise<boolean> => {
    if (
      u.mode !== l.mode ||
      u.uid !== l.uid ||
      u.gid !== l.gid ||
      u.rdev !== l.rdev ||
      (type !== "dir" && (u.size !== l.size || u.mtimeNs !== l.mtimeNs))
    ) {
      return false;
    }
    if (type === "dir" && u.mtimeNs !== l.mtimeNs) return false;
    const ua = `${upper}/${rel}`;
    const la = `${base}/${rel}`;
    if (type === "symlink" && readlinkSync(ua) !== readlinkSync(la)) return false;
    if (!sameXattrs(xattrsOf(ua, false), xattrsOf(la, false))) return false;
    // a whole-second mtime may come from a filesystem or tool that lost the sub-second part
    if (type === "file" && u.mtimeNs % 1_000_000_000n === 0n) return sameContent(ua, la);
    return true;
  };

  const walk = async (dirRel: string, lowerIsDir: boolean): Promise<void> => {
    const upperNames = readdirSync(dirRel === "" ? upper : `${upper}/${dirRel}`).sort();
    if (base !== undefined && lowerIsDir) {
      const present = new Set(upperNames);
      for (const n of readdirSync(dirRel === "" ? base : `${base}/${dirRel}`).sort()) {
        if (!present.has(n)) await whiteout(dirRel, n);
      }
    }
    for (const name of upperNames) {
      const rel = join(dirRel, name);
      const abs = `${upper}/${rel}`;
      const st = lstatSync(abs, { bigint: true });
      const type = typeOf(st);
      if (type === undefined) continue;
      if (overlay) {
        if (type === "char" && st.rdev === 0n) {
          await whiteout(dirRel, name);
          continue;
        }
        await emit(rel, st, type);
        if (type === "dir") {
          if (sys.lgetxattr(abs, `${overlayXattrPrefix()}opaque`)?.toString() === "y") {
            await tw.add({ name: `${rel}/.wh..wh..opq`, type: "file", mode: 0, size: 0 });
          }
          await walk(rel, false);
        }
        continue;
      }
      const lst =
        base !== undefined && lowerIsDir
          ? lstatSync(`${base}/${rel}`, { bigint: true, throwIfNoEntry: false })
          : undefined;
      const ltype = lst ? typeOf(lst) : undefined;
      if (!lst || ltype !== type || !(await unchanged(rel, st, lst, type))) {
        await emit(rel, st, type);
      }
      if (type === "dir") await walk(rel, ltype === "dir" && base !== undefined && isDir(`${base}/${rel}`));
    }
  };

  await walk("", base !== undefined && isDir(base));
  await tw.finish({ end: opts.end !== false });
}
