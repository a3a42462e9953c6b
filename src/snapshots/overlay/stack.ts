/**
 * Overlay mounts of any depth. mount(2) takes its option string in one page
 * (4 KiB here), and a lowerdir list of absolute snapshot paths outgrows it at
 * about 60 layers (the kernel then truncates a path: ENOENT). Two ways past it,
 * measured on Linux 6.18 with 500 lower layers:
 *
 *  - the new mount API (Linux 6.8+): fsopen("overlay"), one fsconfig(`lowerdir+`)
 *    per layer, fsmount, move_mount, all in this process with absolute paths,
 *    nothing to fit in a page: 5 ms. Used wherever the kernel has `lowerdir+`.
 *  - containerd's way, for older kernels: the lowerdirs made relative to their
 *    common parent and mount(2) called from a child process started in that
 *    directory (the working directory is the whole process's: Node cannot change
 *    it for one call while its threads resolve other paths): 45 ms, Node's
 *    start-up, and limited to what then fits in the page (about 500 layers with
 *    snapshot ids under 1000).
 *
 * overlayfs itself stacks at most 500 lower layers (OVL_MAX_STACK in
 * fs/overlayfs/params.h): past that the kernel refuses the mount, and so do we,
 * saying so.
 */
import { spawnSync } from "node:child_process";
import { closeSync, constants, openSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { FailedPreconditionError, InvalidArgumentError } from "../../errors.ts";
import {
  FSCONFIG_MAX_STRING,
  fsconfigCreate,
  fsconfigFd,
  fsconfigFlag,
  fsconfigString,
  fsmount,
  fsopen,
  MOUNT_ATTR_NODEV,
  MOUNT_ATTR_NOEXEC,
  MOUNT_ATTR_NOSUID,
  MOUNT_ATTR_RDONLY,
  MS_NODEV,
  MS_NOEXEC,
  MS_NOSUID,
  MS_RDONLY,
  moveMount,
  O_PATH,
  pageSize,
  SysError,
} from "../../sys/index.ts";

/** overlayfs's most lower layers (OVL_MAX_STACK), for messages: the kernel enforces it. */
export const OVERLAY_MAX_LOWERS = 500;

/** How a deep overlay is mounted: "fsconfig" (the new mount API), "chdir" (containerd's relative paths). */
export type StackMethod = "fsconfig" | "chdir";

const HELPER = join(dirname(fileURLToPath(import.meta.url)), "mount-helper.ts");
/** Options whose value is a directory: given as a descriptor when too long for a string. */
const PATH_OPTIONS = new Set(["upperdir", "workdir", "lowerdir+", "datadir+"]);

/** An overlay's data options: its lowerdirs (topmost first) and everything else. */
export function splitOverlayOptions(data: string[]): { lowers: string[]; others: string[] } {
  const lowers: string[] = [];
  const others: string[] = [];
  for (const o of data) {
    if (o.startsWith("lowerdir=")) {
      const list = o.slice("lowerdir=".length);
      if (list.includes("::")) {
        throw new InvalidArgumentError("overlay data-only lower layers (lowerdir=a::b) are not supported");
      }
      lowers.push(...list.split(":").filter((l) => l.length > 0));
    } else {
      others.push(o);
    }
  }
  return { lowers, others };
}

/** The deepest directory holding every path (all absolute). */
export function commonParent(paths: string[]): string {
  let common = dirname(paths[0]).split(sep);
  for (const p of paths.slice(1)) {
    const parts = dirname(p).split(sep);
    let i = 0;
    while (i < common.length && i < parts.length && common[i] === parts[i]) i++;
    common = common.slice(0, i);
  }
  return common.join(sep) || sep;
}

/**
 * The lowerdirs relative to their common parent, as containerd shortens them:
 * `{dir, data}` where `data` is the option string to pass from `dir`.
 */
export function relativeOverlayData(data: string[]): { dir: string; data: string } {
  const { lowers, others } = splitOverlayOptions(data);
  if (lowers.length === 0 || !lowers.every(isAbsolute)) return { dir: "/", data: data.join(",") };
  const dir = commonParent(lowers);
  const rel = lowers.map((l) => relative(dir, l) || ".");
  return { dir, data: [...others, `lowerdir=${rel.join(":")}`].join(",") };
}

/** Whether mount(2) can take this option string (it copies one page, NUL included). */
export function fitsInPage(data: string): boolean {
  return Buffer.byteLength(data) < pageSize();
}

/**
 * Mounts an overlay of any depth at `target` (MS_* `flags`, `data` its options).
 * `method` forces one way (tests); by default the new mount API where the kernel
 * has `lowerdir+`, else relative paths from the common parent.
 */
export function mountOverlayStack(data: string[], flags: number, target: string, method?: StackMethod): StackMethod {
  if (method !== "chdir") {
    if (mountWithFsconfig(data, flags, target)) return "fsconfig";
    if (method === "fsconfig") {
      throw new FailedPreconditionError("this kernel's overlayfs has no lowerdir+ (Linux 6.8 added it)");
    }
  }
  mountFromCommonParent(data, flags, target);
  return "chdir";
}

function setPath(fd: number, key: string, path: string): void {
  if (Buffer.byteLength(path) < FSCONFIG_MAX_STRING) {
    fsconfigString(fd, key, path);
    return;
  }
  const dirFd = openSync(path, O_PATH | constants.O_DIRECTORY);
  try {
    fsconfigFd(fd, key, dirFd);
  } finally {
    closeSync(dirFd);
  }
}

function setOption(fd: number, option: string): void {
  const eq = option.indexOf("=");
  if (eq < 0) {
    fsconfigFlag(fd, option);
    return;
  }
  const key = option.slice(0, eq);
  const value = option.slice(eq + 1);
  if (PATH_OPTIONS.has(key)) setPath(fd, key, value);
  else fsconfigString(fd, key, value);
}

/** The MS_* flags an overlay may carry, as fsmount's MOUNT_ATTR_* (the superblock's ro is a parameter). */
function mountAttrs(flags: number): number {
  let attrs = 0;
  if (flags & MS_RDONLY) attrs |= MOUNT_ATTR_RDONLY;
  if (flags & MS_NOSUID) attrs |= MOUNT_ATTR_NOSUID;
  if (flags & MS_NODEV) attrs |= MOUNT_ATTR_NODEV;
  if (flags & MS_NOEXEC) attrs |= MOUNT_ATTR_NOEXEC;
  return attrs;
}

const SUPPORTED_FLAGS = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;

/** The new mount API, one lower layer per call. False where the kernel cannot (no fsopen, no lowerdir+). */
function mountWithFsconfig(data: string[], flags: number, target: string): boolean {
  const { lowers, others } = splitOverlayOptions(data);
  if (flags & ~SUPPORTED_FLAGS) {
    throw new InvalidArgumentError(`overlay mount flags 0x${flags.toString(16)}: only ro, nosuid, nodev, noexec`);
  }
  let fd: number | undefined;
  try {
    fd = fsopen("overlay");
  } catch (err) {
    // a seccomp profile may refuse the new calls to a process that may mount(2): try that way
    if (err instanceof SysError && err.code === "EPERM") return false;
    throw err;
  }
  if (fd === undefined) return false;
  try {
    try {
      setPath(fd, "lowerdir+", lowers[0]);
    } catch (err) {
      // before 6.8: "overlay: Unknown parameter 'lowerdir+'"
      if (err instanceof SysError && err.code === "EINVAL" && /unknown parameter/i.test(err.message)) return false;
      throw err;
    }
    for (const l of lowers.slice(1)) setPath(fd, "lowerdir+", l);
    for (const o of others) setOption(fd, o);
    if (flags & MS_RDONLY) fsconfigFlag(fd, "ro");
    fsconfigCreate(fd);
    const mnt = fsmount(fd, mountAttrs(flags));
    try {
      moveMount(mnt, target);
    } finally {
      closeSync(mnt);
    }
    return true;
  } finally {
    closeSync(fd);
  }
}

/** containerd's way: mount(2) from a child process whose working directory is the lowerdirs' parent. */
function mountFromCommonParent(data: string[], flags: number, target: string): void {
  const { dir, data: rel } = relativeOverlayData(data);
  if (!fitsInPage(rel)) {
    const n = splitOverlayOptions(data).lowers.length;
    throw new FailedPreconditionError(
      `an overlay of ${n} lower layers needs ${Buffer.byteLength(rel)} bytes of options even relative to ${dir}, over the ${pageSize()} bytes mount(2) takes, and this kernel has no overlayfs lowerdir+ (Linux 6.8)`,
    );
  }
  const r = spawnSync(
    process.execPath,
    ["--disable-warning=ExperimentalWarning", HELPER, resolve(target), String(flags), rel],
    { cwd: dir, encoding: "utf8", stdio: ["ignore", "ignore", "pipe"], timeout: 30_000 },
  );
  if (r.status === 0) return;
  const errno = Number(/errno (\d+)/.exec(r.stderr ?? "")?.[1]);
  if (errno > 0) throw new SysError("mount", errno, target);
  throw new Error(`mount helper (${HELPER}) failed: ${r.error?.message ?? r.stderr?.trim() ?? `exit ${r.status}`}`);
}
