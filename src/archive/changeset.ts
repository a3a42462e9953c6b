/**
 * The synchronous core of layer application: a TarHandler that turns tar entries
 * into filesystem changes under `root` following the OCI changeset rules. It does
 * only synchronous syscalls (the fastest way to make many small files); apply.ts
 * feeds it the decompressed chunks on the calling thread.
 *
 * Path safety. Entry names are cleaned like Go's path.Clean; a leading "/" is
 * dropped (absolute names are root-relative, as containerd treats them) and a name
 * that climbs above the root with ".." is refused with an error. Parent directories
 * are resolved component by component without ever leaving the root: a symlink met
 * on the way is expanded inside the root (an absolute target restarts at the root,
 * ".." stops at the root), like containerd's fs.RootPath. The last component is
 * never followed (O_NOFOLLOW|O_EXCL, lchown, lsetxattr, utimensat NOFOLLOW), so an
 * entry replaces a symlink rather than writing through it. Hardlink targets are
 * resolved the same way, so they always name a file inside the root.
 */
import * as fs from "node:fs";
import { InvalidArgumentError, wrapError } from "../errors.ts";
import * as sys from "../sys/index.ts";
import { overlayXattrPrefix } from "../sys/userns.ts";
import type { TarHeader } from "./tar/header.ts";
import type { TarHandler } from "./tar/reader.ts";

export interface ChangesetOptions {
  /** Apply numeric ownership from the headers (needs root). */
  sameOwner: boolean;
  /** Write overlayfs whiteouts (0:0 char devices, trusted.overlay.opaque=y; user.overlay. in a user namespace) instead of deleting. */
  convertWhiteout?: "overlay";
  /** Overlay: the lower layers' directories, immediate parent first. */
  lowerDirs?: string[];
  /** The process umask (workers cannot change theirs): bits it strips are restored with chmod. */
  umask: number;
  /** May create device nodes (root outside a user namespace). */
  privileged: boolean;
  onWarning: (message: string) => void;
}

/** Errors that already name their layer entry. */
const entryErrors = new WeakSet<object>();

const WH_PREFIX = ".wh.";
const WH_OPAQUE = ".wh..wh..opq";
const WH_META = ".wh..wh.";
const MAX_LINKS = 40;

const O_FILE = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;

interface DirFix {
  mode: number;
  atimeNs?: bigint;
  mtimeNs?: bigint;
}

function code(e: unknown): string | undefined {
  return (e as { code?: string } | null)?.code;
}

function isWhiteoutDevice(st: fs.Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

/** Cleans an entry name into path components; throws "<what> escapes the root directory" when it climbs out. */
export function cleanName(name: string, what: string): string[] {
  const out: string[] = [];
  for (const c of name.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") {
      if (out.length === 0) throw new InvalidArgumentError(`${what} escapes the root directory`);
      out.pop();
      continue;
    }
    out.push(c);
  }
  return out;
}

export class ChangesetApplier implements TarHandler {
  readonly #root: string;
  readonly #o: ChangesetOptions;
  readonly #overlay: boolean;
  readonly #lowers: string[];
  /** Resolved paths (relative to root) this layer created: an opaque marker keeps them. */
  readonly #unpacked = new Set<string>();
  /** Parent path as named in the archive → its resolved path relative to root. */
  #dirCache = new Map<string, string>();
  readonly #dirs = new Map<string, DirFix>();
  /**
   * Directories that were there before this layer and that it changes without
   * naming them (a later layer adding /data under a root it has no "./" entry
   * for): their times before the change, put back at the end as umoci does.
   */
  readonly #keepTimes = new Map<string, { atimeNs: bigint; mtimeNs: bigint }>();
  /** Directories made writable for a non-root apply, with the mode to put back. */
  readonly #restore = new Map<string, number>();
  readonly #opaqueUpper = new Set<string>();
  readonly #opaqueLower = new Map<string, boolean>();
  #fd = -1;
  /** The file being written ends in a hole: its size must be set. */
  #holeAtEnd = false;
  #cur: { h: TarHeader; path: string } | undefined;
  /** Uncompressed bytes of file bodies written. */
  bytes = 0;

  constructor(root: string, opts: ChangesetOptions) {
    this.#root = root.replace(/\/+$/, "") || "/";
    this.#o = opts;
    this.#overlay = opts.convertWhiteout === "overlay";
    this.#lowers = opts.lowerDirs ?? [];
  }

  #abs(rel: string): string {
    return rel === "" ? this.#root : `${this.#root}/${rel}`;
  }

  /** Throws `e` naming the entry it failed on, once (an error that already names one goes on as it is). */
  #fail(h: TarHeader, e: unknown): never {
    if (entryErrors.has(e as object)) throw e;
    const err = wrapError(e, `layer entry "${h.name}" (offset ${h.offset})`);
    entryErrors.add(err);
    throw err;
  }

  entry(h: TarHeader): void {
    try {
      this.#entry(h);
    } catch (e) {
      this.#closeFd();
      this.#fail(h, e);
    }
  }

  data(chunk: Buffer): void {
    if (this.#fd < 0) return;
    try {
      let off = 0;
      while (off < chunk.length) off += fs.writeSync(this.#fd, chunk, off, chunk.length - off);
      this.bytes += chunk.length;
      this.#holeAtEnd = false;
    } catch (e) {
      const h = this.#cur!.h;
      this.#closeFd();
      this.#fail(h, e);
    }
  }

  /** A sparse file's hole: skipped over, so the file gets a hole too (its size is set at the end). */
  hole(length: number): void {
    if (this.#fd < 0) return;
    try {
      sys.lseek(this.#fd, length, sys.SEEK_CUR);
      this.#holeAtEnd = true;
    } catch (e) {
      const h = this.#cur!.h;
      this.#closeFd();
      this.#fail(h, e);
    }
  }

  end(): void {
    if (this.#fd < 0) return;
    const { h, path } = this.#cur!;
    try {
      const fd = this.#fd;
      if (this.#holeAtEnd) fs.ftruncateSync(fd, sys.lseek(fd, 0, sys.SEEK_CUR));
      if (this.#o.sameOwner) this.#chown(path, h, () => fs.fchownSync(fd, h.uid, h.gid));
      for (const [k, v] of h.xattrs) this.#xattr(path, k, v, fd);
      if (h.mode & 0o7000 || h.mode & this.#o.umask) fs.fchmodSync(fd, h.mode);
      sys.futimens(fd, atimeOf(h), h.mtimeNs);
    } catch (e) {
      this.#closeFd();
      this.#fail(h, e);
    }
    this.#closeFd();
  }

  #closeFd(): void {
    this.#holeAtEnd = false;
    if (this.#fd >= 0) {
      const fd = this.#fd;
      this.#fd = -1;
      fs.closeSync(fd);
    }
    this.#cur = undefined;
  }

  #entry(h: TarHeader): void {
    const comps = cleanName(h.name, "the name");
    if (comps.length === 0) {
      if (h.type !== "dir") throw new InvalidArgumentError(`a ${h.type} entry cannot replace the root directory`);
      this.#dirMeta("", h);
      return;
    }
    const base = comps[comps.length - 1];
    const parentComps = comps.slice(0, -1);
    if (base.startsWith(WH_PREFIX)) {
      if (base === WH_OPAQUE) {
        this.#opaque(parentComps);
        return;
      }
      if (base.startsWith(WH_META)) return; // AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): not content
      const victim = base.slice(WH_PREFIX.length);
      if (victim === "" || victim === "." || victim === "..") {
        throw new InvalidArgumentError(`invalid whiteout name "${base}"`);
      }
      this.#whiteout(parentComps, victim);
      return;
    }
    const parentRel = this.#resolveDir(parentComps, true)!;
    this.#noteParent(parentRel);
    const rel = parentRel === "" ? base : `${parentRel}/${base}`;
    const path = this.#abs(rel);
    if (!this.#overlay) this.#unpacked.add(rel);
    switch (h.type) {
      case "file":
        this.#fd = this.#create(path, () => fs.openSync(path, O_FILE, h.mode & 0o777));
        this.#cur = { h, path };
        return;
      case "dir":
        this.#mkdir(path);
        this.#dirMeta(rel, h);
        return;
      case "symlink":
        this.#create(path, () => fs.symlinkSync(h.linkname, path));
        this.#meta(path, h, false);
        return;
      case "link":
        this.#hardlink(path, h);
        return;
      case "fifo":
        this.#create(path, () => sys.mknod(path, sys.S_IFIFO | (h.mode & 0o777)));
        this.#meta(path, h, true);
        return;
      case "char":
      case "block": {
        if (!this.#o.privileged) {
          this.#o.onWarning(
            `skipped ${h.type} device "${h.name}" (${h.devmajor}:${h.devminor}): creating devices needs root`,
          );
          return;
        }
        const kind = h.type === "char" ? sys.S_IFCHR : sys.S_IFBLK;
        try {
          this.#create(path, () => sys.mknod(path, kind | (h.mode & 0o777), h.devmajor, h.devminor));
        } catch (e) {
          if (code(e) !== "EPERM") throw e;
          this.#o.onWarning(`skipped ${h.type} device "${h.name}": mknod not permitted (user namespace?)`);
          return;
        }
        this.#meta(path, h, true);
        return;
      }
    }
  }

  /** Before a change inside the directory at `rel`: remember its times unless this layer sets them. */
  #noteParent(rel: string): void {
    const path = this.#abs(rel);
    if (this.#keepTimes.has(path) || this.#dirs.has(path)) return;
    if (this.#overlay && rel === "" && this.#lowers.length > 0) return; // finish() copies the lower root's
    const st = fs.lstatSync(path, { bigint: true, throwIfNoEntry: false });
    if (st?.isDirectory()) this.#keepTimes.set(path, { atimeNs: st.atimeNs, mtimeNs: st.mtimeNs });
  }

  /** Runs a create; an existing entry in the way is removed first (dir over dir never gets here). */
  #create<T>(path: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (code(e) === "EEXIST") {
        this.#remove(path);
        return fn();
      }
      if (code(e) === "EACCES" && !this.#o.sameOwner && this.#makeWritable(path)) return fn();
      throw e;
    }
  }

  /** Non-root: a read-only directory of a lower layer cannot take new entries until we lend it u+w. */
  #makeWritable(path: string): boolean {
    const dir = path.slice(0, path.lastIndexOf("/")) || "/";
    if (!dir.startsWith(this.#root) || this.#restore.has(dir)) return false;
    const st = fs.lstatSync(dir);
    if ((st.mode & 0o700) === 0o700) return false;
    this.#restore.set(dir, st.mode & 0o7777);
    fs.chmodSync(dir, (st.mode & 0o7777) | 0o700);
    return true;
  }

  #remove(path: string): void {
    const st = fs.lstatSync(path, { throwIfNoEntry: false });
    if (!st) return;
    if (!st.isDirectory()) {
      try {
        fs.unlinkSync(path);
      } catch (e) {
        if (!(code(e) === "EACCES" && !this.#o.sameOwner && this.#makeWritable(path))) throw e;
        fs.unlinkSync(path);
      }
      // a cached parent resolution may have gone through this symlink
      if (st.isSymbolicLink()) this.#dirCache = new Map();
      return;
    }
    fs.rmSync(path, { recursive: true, force: true });
    this.#dirCache = new Map();
    const under = `${path}/`;
    for (const d of this.#dirs.keys()) if (d === path || d.startsWith(under)) this.#dirs.delete(d);
    for (const d of this.#keepTimes.keys()) if (d === path || d.startsWith(under)) this.#keepTimes.delete(d);
  }

  #mkdir(path: string): void {
    try {
      fs.mkdirSync(path, 0o755);
      return;
    } catch (e) {
      if (code(e) === "EACCES" && !this.#o.sameOwner && this.#makeWritable(path)) {
        fs.mkdirSync(path, 0o755);
        return;
      }
      if (code(e) !== "EEXIST") throw e;
    }
    const st = fs.lstatSync(path);
    if (st.isDirectory()) return; // directory over directory: merge, metadata only
    this.#remove(path);
    fs.mkdirSync(path, 0o755);
  }

  /** Directory metadata: ownership and xattrs now, mode and times at the end. */
  #dirMeta(rel: string, h: TarHeader): void {
    const path = this.#abs(rel);
    if (this.#o.sameOwner) this.#chown(path, h, () => fs.lchownSync(path, h.uid, h.gid));
    for (const [k, v] of h.xattrs) this.#xattr(path, k, v);
    this.#dirs.set(path, { mode: h.mode, atimeNs: atimeOf(h), mtimeNs: h.mtimeNs });
  }

  /** Metadata of a non-directory, non-file entry (symlink, device, fifo). */
  #meta(path: string, h: TarHeader, chmod: boolean): void {
    if (this.#o.sameOwner) this.#chown(path, h, () => fs.lchownSync(path, h.uid, h.gid));
    for (const [k, v] of h.xattrs) this.#xattr(path, k, v);
    if (chmod) fs.chmodSync(path, h.mode);
    sys.lutimens(path, atimeOf(h), h.mtimeNs);
  }

  /**
   * An entry's owner; in a user namespace that has no id for it (EINVAL: a rootless
   * run with few ids mapped) the entry keeps ours, with a warning, as without root.
   */
  #chown(path: string, h: TarHeader, chown: () => void): void {
    try {
      chown();
    } catch (e) {
      if (code(e) !== "EINVAL") throw e;
      this.#o.onWarning(
        `kept the owner of "${path.slice(this.#root.length + 1)}": ${h.uid}:${h.gid} has no id in this user namespace`,
      );
    }
  }

  #xattr(path: string, name: string, value: Buffer, fd?: number): void {
    try {
      if (fd !== undefined) sys.fsetxattr(fd, name, value);
      else sys.lsetxattr(path, name, value);
    } catch (e) {
      const c = code(e);
      const privileged = name.startsWith("trusted.") || name.startsWith("security.");
      if (
        c === "ENOTSUP" ||
        c === "EOPNOTSUPP" ||
        ((c === "EPERM" || c === "EACCES") && (privileged || !this.#o.sameOwner || name.startsWith("user.")))
      ) {
        this.#o.onWarning(`ignored xattr ${name} on "${path.slice(this.#root.length + 1)}": ${c}`);
        return;
      }
      throw e;
    }
  }

  #hardlink(path: string, h: TarHeader): void {
    const comps = cleanName(h.linkname, `hardlink target "${h.linkname}"`);
    if (comps.length === 0) throw new InvalidArgumentError(`hardlink to the root directory`);
    const parentRel = this.#resolveDir(comps.slice(0, -1), false);
    const base = comps[comps.length - 1];
    const missing = () =>
      new InvalidArgumentError(`hardlink target "${h.linkname}" does not exist in the layer or below`);
    if (parentRel === undefined) throw missing();
    const rel = parentRel === "" ? base : `${parentRel}/${base}`;
    const target = this.#abs(rel);
    let st = fs.lstatSync(target, { throwIfNoEntry: false });
    if (st && this.#overlay && isWhiteoutDevice(st)) throw missing();
    if (!st && this.#overlay) {
      const lower = this.#lowerLookup(rel);
      if (!lower) throw missing();
      this.#copyUp(rel, lower.abs, lower.st);
      st = fs.lstatSync(target);
    }
    if (!st) throw missing();
    if (st.isDirectory()) throw new InvalidArgumentError(`hardlink target "${h.linkname}" is a directory`);
    if (target === path) return;
    try {
      fs.linkSync(target, path);
    } catch (e) {
      if (code(e) !== "EEXIST") throw e;
      const cur = fs.lstatSync(path);
      if (cur.ino === st.ino && cur.dev === st.dev) return;
      this.#remove(path);
      fs.linkSync(target, path);
    }
  }

  /** Overlay: a hardlink to a lower file needs the file in the upperdir first, metadata and all. */
  #copyUp(rel: string, lowerAbs: string, st: fs.Stats): void {
    const slash = rel.lastIndexOf("/");
    this.#noteParent(this.#resolveDir(slash < 0 ? [] : rel.slice(0, slash).split("/"), true)!);
    const dst = this.#abs(rel);
    if (st.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(lowerAbs), dst);
    else if (st.isFile()) fs.copyFileSync(lowerAbs, dst, fs.constants.COPYFILE_EXCL);
    else sys.mknod(dst, st.mode & (sys.S_IFMT | 0o777), sys.major(st.rdev), sys.minor(st.rdev));
    fs.lchownSync(dst, st.uid, st.gid);
    for (const name of sys.llistxattr(lowerAbs)) {
      if (name.startsWith("trusted.overlay.") || name.startsWith("user.overlay.")) continue;
      const v = sys.lgetxattr(lowerAbs, name);
      if (v) this.#xattr(dst, name, v);
    }
    if (!st.isSymbolicLink()) fs.chmodSync(dst, st.mode & 0o7777);
    const bst = fs.lstatSync(lowerAbs, { bigint: true });
    sys.lutimens(dst, bst.atimeNs, bst.mtimeNs);
  }

  #whiteout(parentComps: string[], victim: string): void {
    if (this.#overlay) {
      const parentRel = this.#resolveDir(parentComps, true)!;
      this.#noteParent(parentRel);
      const path = this.#abs(parentRel === "" ? victim : `${parentRel}/${victim}`);
      this.#create(path, () => sys.mknod(path, sys.S_IFCHR, 0, 0));
      return;
    }
    const parentRel = this.#resolveDir(parentComps, false);
    if (parentRel === undefined) return; // nothing below to delete
    const path = this.#abs(parentRel === "" ? victim : `${parentRel}/${victim}`);
    if (fs.lstatSync(path, { throwIfNoEntry: false })) {
      this.#noteParent(parentRel);
      this.#remove(path);
    }
  }

  #opaque(dirComps: string[]): void {
    if (this.#overlay) {
      const rel = this.#resolveDir(dirComps, true)!;
      this.#opaqueUpper.add(rel);
      sys.lsetxattr(this.#abs(rel), `${overlayXattrPrefix()}opaque`, Buffer.from("y"));
      return;
    }
    const rel = this.#resolveDir(dirComps, false);
    if (rel === undefined) return;
    this.#noteParent(rel);
    // keep what this layer created (before or after the marker: order does not matter)
    const keep = new Set<string>();
    for (const p of this.#unpacked) {
      if (!p.startsWith(rel === "" ? "" : `${rel}/`)) continue;
      for (let i = p.length; i > 0; i = p.lastIndexOf("/", i - 1)) {
        const a = p.slice(0, i);
        if (keep.has(a)) break;
        keep.add(a);
      }
    }
    const sweep = (dirRel: string) => {
      for (const d of fs.readdirSync(this.#abs(dirRel), { withFileTypes: true })) {
        const childRel = dirRel === "" ? d.name : `${dirRel}/${d.name}`;
        if (!keep.has(childRel)) this.#remove(this.#abs(childRel));
        else if (d.isDirectory()) sweep(childRel);
      }
    };
    sweep(rel);
  }

  /**
   * Resolves directory components inside the root, following symlinks without
   * leaving it, and returns the resolved path relative to the root. With `create`,
   * missing directories are made (in overlay mode, with their lower layer's
   * metadata); without, a missing one gives undefined.
   */
  #resolveDir(comps: string[], create: boolean): string | undefined {
    if (comps.length === 0) return "";
    const key = comps.join("/");
    const hit = this.#dirCache.get(key);
    if (hit !== undefined) return hit;
    const cur: string[] = [];
    const queue = comps.slice();
    let links = 0;
    while (queue.length > 0) {
      const c = queue.shift()!;
      if (c === "" || c === ".") continue;
      if (c === "..") {
        cur.pop();
        continue;
      }
      cur.push(c);
      const rel = cur.join("/");
      const abs = this.#abs(rel);
      let st: fs.Stats | undefined;
      try {
        st = fs.lstatSync(abs, { throwIfNoEntry: false });
      } catch (e) {
        if (code(e) !== "ENOTDIR") throw e;
        throw new InvalidArgumentError(`"${rel}": a parent is not a directory`);
      }
      if (st === undefined && this.#overlay) {
        const lower = this.#lowerLookup(rel);
        if (lower && !lower.st.isDirectory()) st = lower.st;
        if (lower?.st.isSymbolicLink()) {
          if (++links > MAX_LINKS) throw new InvalidArgumentError(`"${key}": too many levels of symbolic links`);
          this.#expand(fs.readlinkSync(lower.abs), cur, queue);
          continue;
        }
        if (lower?.st.isDirectory()) {
          if (!create) continue;
          fs.mkdirSync(abs, lower.st.mode & 0o7777);
          fs.lchownSync(abs, lower.st.uid, lower.st.gid);
          const bst = fs.lstatSync(lower.abs, { bigint: true });
          this.#dirs.set(abs, { mode: lower.st.mode & 0o7777, atimeNs: bst.atimeNs, mtimeNs: bst.mtimeNs });
          continue;
        }
      }
      if (st === undefined) {
        if (!create) return undefined;
        try {
          fs.mkdirSync(abs, 0o755);
        } catch (e) {
          if (!(code(e) === "EACCES" && !this.#o.sameOwner && this.#makeWritable(abs))) throw e;
          fs.mkdirSync(abs, 0o755);
        }
        if (!this.#overlay) this.#unpacked.add(rel);
        if (this.#o.umask & 0o755) this.#dirs.set(abs, { mode: 0o755 });
        continue;
      }
      if (st.isDirectory()) continue;
      if (st.isSymbolicLink()) {
        if (++links > MAX_LINKS) throw new InvalidArgumentError(`"${key}": too many levels of symbolic links`);
        this.#expand(fs.readlinkSync(abs), cur, queue);
        continue;
      }
      if (this.#overlay && isWhiteoutDevice(st)) {
        // recreated below a whiteout of this layer: a fresh directory hiding the lower one
        if (!create) return undefined;
        fs.unlinkSync(abs);
        fs.mkdirSync(abs, 0o755);
        sys.lsetxattr(abs, `${overlayXattrPrefix()}opaque`, Buffer.from("y"));
        this.#opaqueUpper.add(rel);
        continue;
      }
      throw new InvalidArgumentError(`"${rel}" is not a directory`);
    }
    const rel = cur.join("/");
    if (create) this.#dirCache.set(key, rel);
    return rel;
  }

  /** Replaces the symlink at the end of `cur` by its target, confined to the root. */
  #expand(target: string, cur: string[], queue: string[]): void {
    cur.pop();
    if (target.startsWith("/")) cur.length = 0;
    queue.unshift(...target.split("/"));
  }

  /** Overlay: what the lower layers show at `rel` (whose parents are already resolved). */
  #lowerLookup(rel: string): { abs: string; st: fs.Stats } | undefined {
    const slash = rel.lastIndexOf("/");
    const parent = slash < 0 ? "" : rel.slice(0, slash);
    if (this.#opaqueUpper.has(parent)) return undefined;
    for (let i = 0; i < this.#lowers.length; i++) {
      const abs = `${this.#lowers[i]}/${rel}`;
      let st: fs.Stats | undefined;
      try {
        st = fs.lstatSync(abs, { throwIfNoEntry: false });
      } catch (e) {
        if (code(e) === "ENOTDIR") return undefined;
        throw e;
      }
      if (st) return isWhiteoutDevice(st) ? undefined : { abs, st };
      const k = `${i}\0${parent}`;
      let opaque = this.#opaqueLower.get(k);
      if (opaque === undefined) {
        const v = fs.existsSync(`${this.#lowers[i]}/${parent}`)
          ? sys.lgetxattr(`${this.#lowers[i]}/${parent}`, `${overlayXattrPrefix()}opaque`)
          : undefined;
        opaque = v?.toString() === "y";
        this.#opaqueLower.set(k, opaque);
      }
      if (opaque) return undefined;
    }
    return undefined;
  }

  /** After the last entry: directory modes and times (deepest first), borrowed modes back. */
  finish(): void {
    this.#closeFd();
    const dirs = [...this.#dirs].sort((a, b) => depth(b[0]) - depth(a[0]));
    for (const [path, fix] of dirs) {
      fs.chmodSync(path, fix.mode);
      if (fix.mtimeNs !== undefined) sys.lutimens(path, fix.atimeNs, fix.mtimeNs);
      this.#restore.delete(path);
    }
    for (const [path, t] of this.#keepTimes) if (!this.#dirs.has(path)) sys.lutimens(path, t.atimeNs, t.mtimeNs);
    // an upperdir's root is what the mount shows as "/": unless this layer has a "./"
    // entry, it must look like the root below it (a new directory otherwise)
    if (this.#overlay && this.#lowers.length > 0 && !this.#dirs.has(this.#root)) {
      const st = fs.lstatSync(this.#lowers[0], { bigint: true });
      if (this.#o.sameOwner) fs.lchownSync(this.#root, Number(st.uid), Number(st.gid));
      fs.chmodSync(this.#root, Number(st.mode) & 0o7777);
      sys.lutimens(this.#root, st.atimeNs, st.mtimeNs);
    }
    for (const [path, mode] of this.#restore) fs.chmodSync(path, mode);
  }

  /** Closes what is open after a failure. */
  abort(): void {
    this.#closeFd();
  }
}

function depth(p: string): number {
  let n = 0;
  for (let i = 0; i < p.length; i++) if (p.charCodeAt(i) === 47) n++;
  return n;
}

/** containerd sets atime = max(atime, mtime): most layers carry no atime. */
function atimeOf(h: TarHeader): bigint {
  return h.atimeNs !== undefined && h.atimeNs > h.mtimeNs ? h.atimeNs : h.mtimeNs;
}
