/**
 * Performing snapshot mounts: fstab-style options become MS_* flags, the rest
 * the filesystem's data string (overlay's lowerdir=... and so on), as
 * containerd's mount package does. Also the `mount -t ...` rendering the CLI
 * prints for users who mount by hand.
 */
import { mkdirSync } from "node:fs";
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

export function parseMountOptions(options: string[]): { flags: number; data: string } {
  let flags = 0;
  const data: string[] = [];
  for (const o of options) {
    const f = FLAGS[o];
    if (!f) data.push(o);
    else if (f[0]) flags &= ~f[1];
    else flags |= f[1];
  }
  return { flags, data: data.join(",") };
}

/** Mounts one mount at target. A read-only bind needs a second, remounting call. */
export function mountOne(m: Mount, target: string): void {
  const { flags, data } = parseMountOptions(m.options);
  const type = m.type === "bind" ? "none" : m.type;
  try {
    sysMount(m.source, target, type, flags, data || undefined);
    if (flags & MS_BIND && flags & MS_RDONLY) {
      sysMount("", target, null, MS_BIND | MS_REMOUNT | MS_RDONLY | (flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC)));
    }
  } catch (err) {
    const code = (err as { code?: string }).code;
    const why = code === "EPERM" ? " (mounting needs root)" : "";
    throw new FailedPreconditionError(`mount -t ${m.type} ${m.source} ${target}: ${(err as Error).message}${why}`, {
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

/** The shell command a user would run: `mount -t TYPE SOURCE TARGET -o OPTIONS`. */
export function mountCommand(m: Mount, target: string): string {
  const opts = m.options.length > 0 ? ` -o ${m.options.join(",")}` : "";
  return `mount -t ${m.type} ${m.source} ${target}${opts}`;
}
