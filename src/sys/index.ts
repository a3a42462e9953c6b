/**
 * Linux syscalls node:fs lacks, through koffi (FFI into libc, loaded by ffi.ts): mknod, the l*xattr
 * family, utimensat/futimens with nanoseconds, fsetxattr, mount/umount2, the new
 * mount API (fsopen, fsconfig, fsmount, move_mount), flock, syncfs, lseek and fcntl(F_SETPIPE_SZ), clock_gettime. libc is
 * bound lazily on first use, so importing this module costs nothing.
 *
 * Every wrapper is synchronous and throws a SysError (an Error with `code` set to
 * the errno name, e.g. "ENOTSUP", and `errno`/`syscall`/`path`), like node:fs does.
 */
import { readSync } from "node:fs";
import { constants } from "node:os";
import { lastErrno, loadLibrary } from "./ffi.ts";

export class SysError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  readonly path?: string;
  /** `detail`: what the kernel said besides the errno (a filesystem context's log). */
  constructor(syscall: string, errno: number, path?: string, detail?: string) {
    const code = errnoName(errno);
    super(
      `${code}: ${syscall}${path === undefined ? "" : ` '${path}'`} failed (errno ${errno})${detail ? `: ${detail}` : ""}`,
    );
    this.name = "SysError";
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
    this.path = path;
  }
}

let errnoNames: Map<number, string> | undefined;
function errnoName(n: number): string {
  if (!errnoNames) {
    errnoNames = new Map();
    for (const [name, value] of Object.entries(constants.errno)) {
      // ENOTSUP and EOPNOTSUPP share a number on Linux: keep the name callers test for
      if (!errnoNames.has(value) || name === "ENOTSUP") errnoNames.set(value, name);
    }
  }
  return errnoNames.get(n) ?? `E${n}`;
}

export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

export const AT_FDCWD = -100;
/** open(2): a descriptor that only names a file (for *at calls and fsconfig), Linux's value. */
export const O_PATH = 0o10000000;
export const AT_SYMLINK_NOFOLLOW = 0x100;
/** utimensat: leave this timestamp unchanged. */
export const UTIME_OMIT = (1 << 30) - 2;

export const XATTR_CREATE = 1;
export const XATTR_REPLACE = 2;

export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

export const MS_RDONLY = 1;
export const MS_NOSUID = 2;
export const MS_NODEV = 4;
export const MS_NOEXEC = 8;
export const MS_REMOUNT = 32;
export const MS_BIND = 4096;
export const MS_REC = 16384;
export const MS_PRIVATE = 1 << 18;
export const MNT_FORCE = 1;
export const MNT_DETACH = 2;

/** fsmount(2) attributes (linux/mount.h): the per-mount flags of the new mount API. */
export const MOUNT_ATTR_RDONLY = 0x1;
export const MOUNT_ATTR_NOSUID = 0x2;
export const MOUNT_ATTR_NODEV = 0x4;
export const MOUNT_ATTR_NOEXEC = 0x8;
export const MOUNT_ATTR_NOATIME = 0x10;
export const MOUNT_ATTR_STRICTATIME = 0x20;
export const MOUNT_ATTR_NODIRATIME = 0x80;

/** Linux makedev: glibc's encoding of a major and minor number into a dev_t. */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major >>> 0);
  const mi = BigInt(minor >>> 0);
  return ((ma & 0xfffn) << 8n) | ((ma & ~0xfffn) << 32n) | (mi & 0xffn) | ((mi & ~0xffn) << 12n);
}
export function major(dev: number | bigint): number {
  const d = BigInt(dev);
  return Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
}
export function minor(dev: number | bigint): number {
  const d = BigInt(dev);
  return Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
}

// biome-ignore lint/suspicious/noExplicitAny: koffi functions are untyped
type Fn = (...args: any[]) => any;
interface Libc {
  mknod: Fn;
  lsetxattr: Fn;
  fsetxattr: Fn;
  lgetxattr: Fn;
  llistxattr: Fn;
  lremovexattr: Fn;
  utimensat: Fn;
  futimens: Fn;
  mount: Fn;
  umount2: Fn;
  flock: Fn;
  syncfs: Fn;
  lseek: Fn;
  fcntl: Fn;
  clock_gettime: Fn;
  errno: () => number;
}

const libcHandle = () => loadLibrary("libc.so.6");

let libc: Libc | undefined;
function lib(): Libc {
  if (libc) return libc;
  const c = libcHandle();
  // koffi has no ssize_t: `long` has the same width on Linux (LP64)
  libc = {
    mknod: c.func("int mknod(const char *path, uint32_t mode, uint64_t dev)"),
    lsetxattr: c.func("int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)"),
    fsetxattr: c.func("int fsetxattr(int fd, const char *name, const void *value, size_t size, int flags)"),
    lgetxattr: c.func("long lgetxattr(const char *path, const char *name, _Out_ void *value, size_t size)"),
    llistxattr: c.func("long llistxattr(const char *path, _Out_ void *list, size_t size)"),
    lremovexattr: c.func("int lremovexattr(const char *path, const char *name)"),
    utimensat: c.func("int utimensat(int dirfd, const char *path, const void *times, int flags)"),
    futimens: c.func("int futimens(int fd, const void *times)"),
    mount: c.func(
      "int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)",
    ),
    umount2: c.func("int umount2(const char *target, int flags)"),
    flock: c.func("int flock(int fd, int op)"),
    syncfs: c.func("int syncfs(int fd)"),
    lseek: c.func("int64_t lseek(int fd, int64_t offset, int whence)"),
    fcntl: c.func("int fcntl(int fd, int cmd, ...)"),
    clock_gettime: c.func("int clock_gettime(int clockid, _Out_ void *tp)"),
    errno: lastErrno,
  };
  return libc;
}

const SC_PAGESIZE = 30;
/** sysconf(_SC_PAGESIZE): a mount(2) option string must fit in one page, its NUL included. */
export function pageSize(): number {
  const sysconf = optionalFunc("long sysconf(int name)");
  const n = sysconf ? Number(sysconf(SC_PAGESIZE)) : 0;
  return n > 0 ? n : 4096;
}

function check(ret: number | bigint, syscall: string, path?: string): number {
  const n = Number(ret);
  if (n < 0) throw new SysError(syscall, lib().errno(), path);
  return n;
}

/** mknod(2): `mode` carries the file type (S_IFCHR, S_IFBLK, S_IFIFO) and permission bits. */
export function mknod(path: string, mode: number, major = 0, minor = 0): void {
  check(lib().mknod(path, mode, makedev(major, minor)), "mknod", path);
}

/** lsetxattr(2): sets an extended attribute on the path itself (never follows a symlink). */
export function lsetxattr(path: string, name: string, value: Uint8Array, flags = 0): void {
  check(lib().lsetxattr(path, name, value, value.length, flags), "lsetxattr", path);
}

export function fsetxattr(fd: number, name: string, value: Uint8Array, flags = 0): void {
  check(lib().fsetxattr(fd, name, value, value.length, flags), "fsetxattr");
}

/** lgetxattr(2): the value as bytes, or undefined when the attribute is absent (ENODATA). */
export function lgetxattr(path: string, name: string): Buffer | undefined {
  const l = lib();
  for (;;) {
    const size = Number(l.lgetxattr(path, name, null, 0));
    if (size < 0) {
      const e = l.errno();
      if (errnoName(e) === "ENODATA") return undefined;
      throw new SysError("lgetxattr", e, path);
    }
    const buf = Buffer.alloc(size);
    if (size === 0) return buf;
    const got = Number(l.lgetxattr(path, name, buf, size));
    if (got >= 0) return buf.subarray(0, got);
    const e = l.errno();
    if (errnoName(e) !== "ERANGE") {
      if (errnoName(e) === "ENODATA") return undefined;
      throw new SysError("lgetxattr", e, path);
    }
    // grew between the two calls: ask again
  }
}

/** llistxattr(2): the attribute names of the path itself, in the kernel's order. */
export function llistxattr(path: string): string[] {
  const l = lib();
  for (;;) {
    const size = check(l.llistxattr(path, null, 0), "llistxattr", path);
    if (size === 0) return [];
    const buf = Buffer.alloc(size);
    const got = Number(l.llistxattr(path, buf, size));
    if (got < 0) {
      const e = l.errno();
      if (errnoName(e) === "ERANGE") continue;
      throw new SysError("llistxattr", e, path);
    }
    return buf
      .subarray(0, got)
      .toString("utf8")
      .split("\0")
      .filter((s) => s.length > 0);
  }
}

export function lremovexattr(path: string, name: string): void {
  check(lib().lremovexattr(path, name), "lremovexattr", path);
}

const timesBuf = Buffer.alloc(32);
function fillTimes(atimeNs: bigint | undefined, mtimeNs: bigint | undefined): Buffer {
  const put = (off: number, ns: bigint | undefined) => {
    if (ns === undefined) {
      timesBuf.writeBigInt64LE(0n, off);
      timesBuf.writeBigInt64LE(BigInt(UTIME_OMIT), off + 8);
      return;
    }
    let sec = ns / 1_000_000_000n;
    let nsec = ns % 1_000_000_000n;
    if (nsec < 0n) {
      sec -= 1n;
      nsec += 1_000_000_000n;
    }
    timesBuf.writeBigInt64LE(sec, off);
    timesBuf.writeBigInt64LE(nsec, off + 8);
  };
  put(0, atimeNs);
  put(16, mtimeNs);
  return timesBuf;
}

/**
 * utimensat(2) with nanosecond times (ns since the epoch; undefined leaves a time
 * unchanged). `nofollow` (the default) sets the times of a symlink itself.
 */
export function lutimens(
  path: string,
  atimeNs: bigint | undefined,
  mtimeNs: bigint | undefined,
  nofollow = true,
): void {
  const t = fillTimes(atimeNs, mtimeNs);
  check(lib().utimensat(AT_FDCWD, path, t, nofollow ? AT_SYMLINK_NOFOLLOW : 0), "utimensat", path);
}

export function futimens(fd: number, atimeNs: bigint | undefined, mtimeNs: bigint | undefined): void {
  const t = fillTimes(atimeNs, mtimeNs);
  check(lib().futimens(fd, t), "futimens");
}

/** mount(2). `data` is the filesystem's option string (e.g. overlay's lowerdir=...). */
export function mount(source: string, target: string, fstype: string | null, flags = 0, data?: string): void {
  check(lib().mount(source, target, fstype, flags, data ?? null), "mount", target);
}

export function umount2(target: string, flags = 0): void {
  check(lib().umount2(target, flags), "umount2", target);
}

// The new mount API (Linux 5.2; glibc 2.36 wraps it). A filesystem context is
// configured one parameter at a time, so no option string has to fit in a page;
// each string value is capped at 256 bytes by the kernel, a path longer than that
// goes in as an O_PATH descriptor (FSCONFIG_SET_FD; overlayfs takes them since 6.13).
const FSOPEN_CLOEXEC = 1;
const FSMOUNT_CLOEXEC = 1;
const FSCONFIG_SET_FLAG = 0;
const FSCONFIG_SET_STRING = 1;
const FSCONFIG_SET_FD = 5;
const FSCONFIG_CMD_CREATE = 6;
const MOVE_MOUNT_F_EMPTY_PATH = 4;
/** The longest string fsconfig(2) takes, terminating NUL included. */
export const FSCONFIG_MAX_STRING = 256;

interface MountApi {
  fsopen: Fn;
  fsconfig: Fn;
  fsmount: Fn;
  move_mount: Fn;
}
let mountApi: MountApi | null | undefined;
function newMountApi(): MountApi | null {
  if (mountApi !== undefined) return mountApi;
  const c = libcHandle();
  try {
    mountApi = {
      fsopen: c.func("int fsopen(const char *fsname, unsigned int flags)"),
      fsconfig: c.func("int fsconfig(int fd, unsigned int cmd, const char *key, const char *value, int aux)"),
      fsmount: c.func("int fsmount(int fd, unsigned int flags, unsigned int attr_flags)"),
      move_mount: c.func(
        "int move_mount(int from_dirfd, const char *from_path, int to_dirfd, const char *to_path, unsigned int flags)",
      ),
    };
  } catch {
    mountApi = null; // a libc older than 2.36
  }
  return mountApi;
}

/**
 * What a filesystem context logged ("e overlay: too many lower directories, limit
 * is 500"): the kernel's reason for an EINVAL, read from the context's descriptor.
 */
function contextLog(fd: number): string {
  const lines: string[] = [];
  const buf = Buffer.alloc(4096);
  for (let i = 0; i < 16; i++) {
    let n: number;
    try {
      n = readSync(fd, buf);
    } catch {
      break; // ENODATA: nothing more
    }
    if (n <= 0) break;
    lines.push(
      buf
        .subarray(0, n)
        .toString("utf8")
        .replace(/^[ewi] /, ""),
    );
  }
  return lines.join("; ").trim();
}

/**
 * fsopen(2): a new filesystem context (a descriptor; close it with closeSync), or
 * undefined where libc or the kernel lacks the call.
 */
export function fsopen(fstype: string): number | undefined {
  const api = newMountApi();
  if (!api) return undefined;
  const fd = Number(api.fsopen(fstype, FSOPEN_CLOEXEC));
  if (fd >= 0) return fd;
  const e = lib().errno();
  if (errnoName(e) === "ENOSYS") return undefined;
  throw new SysError("fsopen", e, fstype);
}

function fsconfigCall(fd: number, cmd: number, key: string | null, value: string | null, aux: number): void {
  const api = newMountApi() as MountApi;
  if (Number(api.fsconfig(fd, cmd, key, value, aux)) < 0) {
    const e = lib().errno();
    const what = key === null ? undefined : value === null ? key : `${key}=${value}`;
    throw new SysError("fsconfig", e, what, contextLog(fd));
  }
}

/** fsconfig(FSCONFIG_SET_STRING): one `key=value` parameter (value under FSCONFIG_MAX_STRING bytes). */
export function fsconfigString(fd: number, key: string, value: string): void {
  fsconfigCall(fd, FSCONFIG_SET_STRING, key, value, 0);
}

/** fsconfig(FSCONFIG_SET_FLAG): a parameter without a value (`ro`, `userxattr`). */
export function fsconfigFlag(fd: number, key: string): void {
  fsconfigCall(fd, FSCONFIG_SET_FLAG, key, null, 0);
}

/** fsconfig(FSCONFIG_SET_FD): a parameter given as an open descriptor (a directory opened O_PATH). */
export function fsconfigFd(fd: number, key: string, valueFd: number): void {
  fsconfigCall(fd, FSCONFIG_SET_FD, key, null, valueFd);
}

/** fsconfig(FSCONFIG_CMD_CREATE): makes the superblock from the parameters given. */
export function fsconfigCreate(fd: number): void {
  fsconfigCall(fd, FSCONFIG_CMD_CREATE, null, null, 0);
}

/** fsmount(2): a detached mount of the context's superblock (MOUNT_ATTR_* flags); a descriptor. */
export function fsmount(fd: number, attrs = 0): number {
  const api = newMountApi() as MountApi;
  const m = Number(api.fsmount(fd, FSMOUNT_CLOEXEC, attrs));
  if (m < 0) {
    const e = lib().errno();
    throw new SysError("fsmount", e, undefined, contextLog(fd));
  }
  return m;
}

/** move_mount(2): attaches the detached mount `mountFd` at `target`. */
export function moveMount(mountFd: number, target: string): void {
  const api = newMountApi() as MountApi;
  check(api.move_mount(mountFd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH), "move_mount", target);
}

/** flock(2) on an open descriptor; with LOCK_NB a held lock throws code EWOULDBLOCK/EAGAIN. */
export function flock(fd: number, op: number): void {
  check(lib().flock(fd, op), "flock");
}

/** syncfs(2): flushes the whole filesystem holding `fd` (one call instead of an fsync per file). */
export function syncfs(fd: number): void {
  check(lib().syncfs(fd), "syncfs");
}

/**
 * syncfs(2) on one of koffi's threads: the caller's thread goes on while the
 * disk catches up. Keep `fd` open until the promise settles.
 */
export function syncfsAsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    (lib().syncfs as unknown as { async: (fd: number, cb: (err: unknown, ret: number) => void) => void }).async(
      fd,
      (err, ret) => {
        if (err) reject(err);
        // koffi hands the call's errno back with its result
        else if (ret < 0) reject(new SysError("syncfs", lib().errno() || constants.errno.EIO));
        else resolve();
      },
    );
  });
}

export const SEEK_SET = 0;
export const SEEK_CUR = 1;
export const SEEK_END = 2;

/** lseek(2): moves (or, with SEEK_CUR and 0, reads) the offset of an open descriptor. */
export function lseek(fd: number, offset: number, whence: number): number {
  return check(lib().lseek(fd, offset, whence), "lseek");
}

const F_SETPIPE_SZ = 1031;

/** fcntl(F_SETPIPE_SZ): sets the capacity of the pipe on `fd`; returns the size the kernel chose. */
export function setPipeSize(fd: number, size: number): number {
  return check(lib().fcntl(fd, F_SETPIPE_SZ, "int", size), "fcntl");
}

const CLOCK_REALTIME = 0;
const timespec = Buffer.alloc(16);

/** clock_gettime(CLOCK_REALTIME): the wall clock in nanoseconds since the epoch. */
export function realtimeNs(): bigint {
  check(lib().clock_gettime(CLOCK_REALTIME, timespec), "clock_gettime");
  return timespec.readBigInt64LE(0) * 1_000_000_000n + timespec.readBigInt64LE(8);
}

const optional = new Map<string, ((...args: number[]) => number) | null>();

/** A libc function that may be missing (glibc-only calls): null where it cannot be bound. */
function optionalFunc(decl: string): ((...args: number[]) => number) | null {
  let fn = optional.get(decl);
  if (fn === undefined) {
    try {
      fn = libcHandle().func(decl) as (...args: number[]) => number;
    } catch {
      fn = null;
    }
    optional.set(decl, fn);
  }
  return fn;
}

/**
 * malloc_trim(3): gives the allocator's free pages back to the system, from the
 * middle of its heaps too (glibc). Returns false where there is no such call.
 */
export function mallocTrim(): boolean {
  const fn = optionalFunc("int malloc_trim(size_t pad)");
  if (!fn) return false;
  fn(0);
  return true;
}

const SYNC_FILE_RANGE_WRITE = 2;

/**
 * sync_file_range(SYNC_FILE_RANGE_WRITE): starts writeback of a range of `fd`
 * without waiting for it. Best effort: does nothing where the call is missing.
 */
export function startWriteback(fd: number, offset: number, length: number): void {
  optionalFunc("int sync_file_range(int fd, int64_t offset, int64_t nbytes, unsigned int flags)")?.(
    fd,
    offset,
    length,
    SYNC_FILE_RANGE_WRITE,
  );
}
