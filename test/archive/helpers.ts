/** Shared helpers of the archive tests: temp dirs, python-built layers, tree listings. */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import * as zlib from "node:zlib";
import { typeOf } from "../../src/archive/diff.ts";
import * as sys from "../../src/sys/index.ts";

export const isRoot = process.getuid?.() === 0;
export const FIXTURES = join(import.meta.dirname, "fixtures");

export function tempDir(prefix = "dist-archive-"): string {
  return fs.mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  // a test may leave 0000/0555 directories behind: make them removable first
  try {
    execFileSync("chmod", ["-R", "u+rwx", dir], { stdio: "ignore" });
  } catch {
    // best effort
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Runs test/archive/fixtures/layers.py (python's tarfile) into `out`. */
export function pythonLayers(kind: "edge" | "breakout" | "base", out: string, ...args: string[]): void {
  execFileSync("python3", [join(FIXTURES, "layers.py"), kind, out, ...args], { stdio: "inherit" });
}

/** Runs a python snippet with `tarfile`, `io`, `os` imported and OUT set to the path to write. */
export function pythonTar(out: string, body: string): void {
  const script = `import tarfile, io, os, sys\nOUT = sys.argv[1]\n${body}\n`;
  execFileSync("python3", ["-c", script, out], { stdio: "inherit" });
}

export function fileStream(path: string): Readable {
  return fs.createReadStream(path, { highWaterMark: 1 << 20 });
}

export function bufferStream(b: Uint8Array, chunk = 7919): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < b.length; i += chunk) parts.push(Buffer.from(b.subarray(i, i + chunk)));
  return Readable.from(parts);
}

export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** The kind of file a stat describes, as the tree listings name it: the archive's entry types, or socket. */
export function fileType(st: fs.BigIntStats): string {
  return typeOf(st) ?? (st.isSocket() ? "socket" : "other");
}

export interface TreeEntry {
  type: string;
  mode: string;
  owner: string;
  size?: number;
  hash?: string;
  link?: string;
  rdev?: string;
  mtimeNs?: string;
  xattrs: Record<string, string>;
  inode: string;
}

/**
 * Everything that matters about a tree, path by path (relative to root; root itself excluded).
 * `inode` is normalised to the first path sharing it, so hardlink groups compare across trees.
 */
export function listTree(
  root: string,
  opts: { mtimes?: boolean; dirMtimes?: boolean } = {},
): Record<string, TreeEntry> {
  const out: Record<string, TreeEntry> = {};
  const firstByIno = new Map<string, string>();
  const walk = (rel: string) => {
    const names = fs.readdirSync(rel === "" ? root : join(root, rel)).sort();
    for (const name of names) {
      const r = rel === "" ? name : `${rel}/${name}`;
      const p = join(root, r);
      const st = fs.lstatSync(p, { bigint: true });
      const type = fileType(st);
      const xattrs: Record<string, string> = {};
      for (const n of sys.llistxattr(p).sort()) {
        if (n === "security.selinux") continue;
        xattrs[n] = sys.lgetxattr(p, n)?.toString("hex") ?? "";
      }
      const key = `${st.dev}:${st.ino}`;
      if (!firstByIno.has(key)) firstByIno.set(key, r);
      const e: TreeEntry = {
        type,
        mode: (st.mode & 0o7777n).toString(8),
        owner: `${st.uid}:${st.gid}`,
        xattrs,
        inode: type === "dir" ? "" : firstByIno.get(key)!,
      };
      if (type === "file") {
        e.size = Number(st.size);
        e.hash = sha256(fs.readFileSync(p));
      }
      if (type === "symlink") e.link = fs.readlinkSync(p);
      if (type === "char" || type === "block") e.rdev = `${sys.major(st.rdev)}:${sys.minor(st.rdev)}`;
      if (opts.mtimes && (type !== "dir" || opts.dirMtimes)) e.mtimeNs = st.mtimeNs.toString();
      out[r] = e;
      if (type === "dir") walk(r);
    }
  };
  walk("");
  return out;
}

/** A gzip member with every optional header field (FEXTRA, FNAME, FCOMMENT, FHCRC; RFC 1952 §2.3). */
export function fullHeaderGzip(plain: Buffer): Buffer {
  const gz = zlib.gzipSync(plain);
  const extra = Buffer.from([4, 0, 0x41, 0x42, 0, 0]);
  const head = Buffer.concat([gz.subarray(0, 10), extra, Buffer.from("name.tar\0comment\0")]);
  head[3] = 0x1e; // FEXTRA | FNAME | FCOMMENT | FHCRC
  const crc = zlib.crc32(head) & 0xffff;
  return Buffer.concat([head, Buffer.from([crc & 0xff, crc >> 8]), gz.subarray(10)]);
}
