/**
 * Performing snapshot mounts: fstab-style options become MS_* flags, the rest
 * the filesystem's data string (overlay's lowerdir=... and so on), as
 * containerd's mount package does; an overlay whose options outgrow the page
 * mount(2) takes is mounted layer by layer (overlay/stack.ts). Also the
 * `mount -t ...` rendering the CLI prints for users who mount by hand.
 */
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { FailedPreconditionError, wrapError } from "../errors.ts";
import {
  MNT_DETACH,
  MS_BIND,
  MS_NODEV,
  MS_NOEXEC,
  MS_NOSUID,
  MS_RDONLY,
  MS_REC,
  MS_REMOUNT,
  mount as sysMount,
  umount2,
} from "../sys/index.ts";
import {
  fitsInPage,
  mountOverlayStack,
  OVERLAY_MAX_LOWERS,
  relativeOverlayData,
  splitOverlayOptions,
} from "./overlay/stack.ts";
import type { Mount } from "./snapshotter.ts";

const MS_SYNCHRONOUS = 16;
const MS_DIRSYNC = 128;
const MS_NOATIME = 1024;
const MS_NODIRATIME = 2048;
const MS_RELATIME = 1 << 21;
const MS_STRICTATIME = 1 << 24;

/** option → [clear?, flag] */
const FLAGS: Record<string, [boolean, number]> = {
  ro: [false, MS_RDONLY],
  rw: [true, MS_RDONLY],
  bind: [false, MS_BIND],
  rbind: [false, MS_BIND | MS_REC],
  nosuid: [false, MS_NOSUID],
  suid: [true, MS_NOSUID],
  nodev: [false, MS_NODEV],
  dev: [true, MS_NODEV],
  noexec: [false, MS_NOEXEC],
  exec: [true, MS_NOEXEC],
  sync: [false, MS_SYNCHRONOUS],
  async: [true, MS_SYNCHRONOUS],
  dirsync: [false, MS_DIRSYNC],
  remount: [false, MS_REMOUNT],
  noatime: [false, MS_NOATIME],
  atime: [true, MS_NOATIME],
  nodiratime: [false, MS_NODIRATIME],
  diratime: [true, MS_NODIRATIME],
  relatime: [false, MS_RELATIME],
  norelatime: [true, MS_RELATIME],
  strictatime: [false, MS_STRICTATIME],
  nostrictatime: [true, MS_STRICTATIME],
  defaults: [false, 0],
};

/** MS_* flags, and the filesystem's own options in order. */
function splitMountOptions(options: string[]): { flags: number; data: string[] } {
  let flags = 0;
  const data: string[] = [];
  for (const o of options) {
    const f = FLAGS[o];
    if (!f) data.push(o);
    else if (f[0]) flags &= ~f[1];
    else flags |= f[1];
  }
  return { flags, data };
}

export function parseMountOptions(options: string[]): { flags: number; data: string } {
  const { flags, data } = splitMountOptions(options);
  return { flags, data: data.join(",") };
}

/** Whether a mount's option string is too long for mount(2): an overlay of many layers. */
function isDeepOverlay(m: Mount): boolean {
  return m.type === "overlay" && !fitsInPage(splitMountOptions(m.options).data.join(","));
}

/**
 * Mounts one mount at target. A read-only bind needs a second, remounting call;
 * an overlay too deep for one mount(2) call goes in layer by layer.
 */
export function mountOne(m: Mount, target: string): void {
  const { flags, data } = splitMountOptions(m.options);
  const type = m.type === "bind" ? "none" : m.type;
  const deep = isDeepOverlay(m);
  try {
    if (deep) mountOverlayStack(data, flags, target);
    else sysMount(m.source, target, type, flags, data.join(",") || undefined);
    if (flags & MS_BIND && flags & MS_RDONLY) {
      sysMount("", target, null, MS_BIND | MS_REMOUNT | MS_RDONLY | (flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC)));
    }
  } catch (err) {
    const code = (err as { code?: string }).code;
    const why = code === "EPERM" ? " (mounting needs root)" : "";
    const lowers = m.type === "overlay" ? splitOverlayOptions(data).lowers.length : 0;
    const depth = deep ? ` (${lowers} lower layers)` : "";
    const message = (err as Error).message;
    let deeper = "";
    if (lowers > OVERLAY_MAX_LOWERS) {
      // the new mount API passes on the kernel's "limit is 500"; mount(2) only says EINVAL
      const limit = /limit is/.test(message) ? "" : ` (overlayfs stacks at most ${OVERLAY_MAX_LOWERS} lower layers)`;
      deeper = `${limit}; use --snapshotter native for an image this deep`;
    }
    throw new FailedPreconditionError(`mount -t ${m.type} ${m.source} ${target}${depth}: ${message}${why}${deeper}`, {
      cause: err,
    });
  }
}

export function mountAll(mounts: Mount[], target: string): void {
  mkdirSync(target, { recursive: true });
  for (const m of mounts) mountOne(m, target);
}

export function unmount(target: string, opts: { detach?: boolean } = {}): void {
  try {
    umount2(target, opts.detach ? MNT_DETACH : 0);
  } catch (err) {
    throw wrapError(err, `umount ${target}`, "FailedPrecondition");
  }
}

/**
 * The shell command a user would run: `mount -t TYPE SOURCE TARGET -o OPTIONS`.
 * An overlay too deep for mount(2) is given as containerd mounts it: from the
 * lowerdirs' common parent, named relatively, `(cd DIR && mount ... -o lowerdir=12/fs:11/fs...)`
 * (within the page up to about 500 layers; `dist snapshots mount` mounts any depth).
 */
export function mountCommand(m: Mount, target: string): string {
  if (isDeepOverlay(m)) {
    const { data } = splitMountOptions(m.options);
    const flagOptions = m.options.filter((o) => FLAGS[o]);
    const rel = relativeOverlayData(data);
    const opts = [...flagOptions, rel.data].join(",");
    return `(cd ${rel.dir} && mount -t ${m.type} ${m.source} ${resolve(target)} -o ${opts})`;
  }
  const opts = m.options.length > 0 ? ` -o ${m.options.join(",")}` : "";
  return `mount -t ${m.type} ${m.source} ${target}${opts}`;
}
