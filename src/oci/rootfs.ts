/**
 * Reading files of an image's root filesystem from the host, safely: a symlink
 * in the rootfs (`/etc/passwd -> /etc/shadow-of-the-host`, `../../..`) is
 * resolved as if the rootfs were `/`, so nothing outside it is ever opened.
 */
import { constants, type Stats } from "node:fs";
import { lstat, open, readlink } from "node:fs/promises";
import { join } from "node:path";
import { FailedPreconditionError, wrapError } from "../errors.ts";
import type { UserFiles } from "./user.ts";

const MAX_LINKS = 255;
/** /etc/passwd and /etc/group of real images are a few KiB; refuse absurd ones. */
const MAX_FILE = 4 << 20;

/**
 * The host path of `path` inside `root`, every symlink on the way resolved
 * within root (`..` stops at root, absolute targets restart at root). The last
 * component is resolved too. Missing components end the walk: the result then
 * names a path that does not exist (the caller's open fails with ENOENT).
 */
export async function resolveInRoot(root: string, path: string): Promise<string> {
  const pending = path.split("/").filter((c) => c !== "" && c !== ".");
  const resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const c = pending.shift() as string;
    if (c === "..") {
      resolved.pop();
      continue;
    }
    const host = join(root, ...resolved, c);
    let st: Stats;
    try {
      st = await lstat(host);
    } catch {
      return join(root, ...resolved, c, ...pending.filter((p) => p !== ".."));
    }
    if (!st.isSymbolicLink()) {
      resolved.push(c);
      continue;
    }
    if (++links > MAX_LINKS) throw new FailedPreconditionError(`too many symlinks resolving ${path} in ${root}`);
    const target = await readlink(host);
    if (target.startsWith("/")) resolved.length = 0;
    pending.unshift(...target.split("/").filter((x) => x !== "" && x !== "."));
  }
  return join(root, ...resolved);
}

/** A regular file of the rootfs as text; undefined when it does not exist. */
export async function readRootfsFile(root: string, path: string, max = MAX_FILE): Promise<string | undefined> {
  const host = await resolveInRoot(root, path);
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    // O_NOFOLLOW: the last component was resolved above; a symlink appearing now is refused
    fh = await open(host, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw wrapError(err, `cannot read ${path} in the container's rootfs`, "FailedPrecondition");
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new FailedPreconditionError(`${path} in the container's rootfs is not a regular file`);
    if (st.size > max) {
      throw new FailedPreconditionError(`${path} in the container's rootfs is ${st.size} bytes, over ${max}`);
    }
    const buf = Buffer.alloc(st.size);
    let n = 0;
    while (n < buf.length) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    return buf.subarray(0, n).toString("utf8");
  } finally {
    await fh.close();
  }
}

/** The image's /etc/passwd and /etc/group, for resolveUser. */
export async function readUserFiles(root: string): Promise<UserFiles> {
  const [passwd, group] = await Promise.all([readRootfsFile(root, "/etc/passwd"), readRootfsFile(root, "/etc/group")]);
  const out: UserFiles = {};
  if (passwd !== undefined) out.passwd = passwd;
  if (group !== undefined) out.group = group;
  return out;
}
