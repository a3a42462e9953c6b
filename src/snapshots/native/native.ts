/**
 * The native snapshotter: every active snapshot is a full copy of its parent's
 * tree, so it needs no privileges and no kernel support. Mounts are a single
 * bind of the snapshot's directory; a view of a parent binds the parent
 * read-only without copying.
 */
import { spawn } from "node:child_process";
import { chmod, lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { FailedPreconditionError, wrapError } from "../../errors.ts";
import { type Driver, FsSnapshotter } from "../fs-snapshotter.ts";
import type { Kind, Mount, SnapshotOptions } from "../snapshotter.ts";

/**
 * Copies a tree preserving hardlinks, modes, owners (when permitted), xattrs,
 * device nodes and times. GNU cp does this with copy_file_range/reflinks and no
 * per-file fsync; failing to keep ownership or xattrs as non-root is not an error.
 * With `link`, files are hardlinked instead of copied (directories are still made).
 */
export function copyTree(src: string, dst: string, opts: { link?: boolean; signal?: AbortSignal } = {}): Promise<void> {
  const mode = opts.link ? ["-a", "-l"] : ["-a", "--reflink=auto"];
  return new Promise((resolve, reject) => {
    const child = spawn("cp", [...mode, "--", `${src}/.`, `${dst}/`], {
      stdio: ["ignore", "ignore", "pipe"],
      signal: opts.signal,
    });
    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (d: string) => {
      if (stderr.length < 4096) stderr += d;
    });
    child.on("error", (err) => reject(wrapError(err, `copy ${src} to ${dst}`, "FailedPrecondition")));
    child.on("close", (code) => {
      if (code === 0) resolve();
      else reject(new FailedPreconditionError(`copy ${src} to ${dst} failed: ${stderr.trim().split("\n")[0] ?? code}`));
    });
  });
}

/**
 * Without root, files the owner cannot read (a layer's mode 0000 file) or
 * directories it cannot list stop a copy. Their owner may lend itself access
 * for the copy: add u+r (u+rx for directories), copy, restore the modes on both
 * sides. Only entries we own can be lent; others fail the copy as before.
 */
async function copyUnprivileged(src: string, dst: string, link: boolean): Promise<void> {
  const uid = process.getuid?.() ?? 0;
  const lent: { rel: string; mode: number }[] = [];
  const visit = async (rel: string): Promise<void> => {
    const p = rel ? join(src, rel) : src;
    const st = await lstat(p);
    if (st.isSymbolicLink()) return;
    const need = st.isDirectory() ? 0o500 : st.isFile() ? 0o400 : 0;
    if (need && (st.mode & need) !== need && st.uid === uid) {
      lent.push({ rel, mode: st.mode & 0o7777 });
      await chmod(p, (st.mode & 0o7777) | need);
    }
    if (st.isDirectory()) for (const n of await readdir(p)) await visit(rel ? `${rel}/${n}` : n);
  };
  try {
    await visit("");
    await copyTree(src, dst, { link });
  } finally {
    // deepest first, so a directory is closed again after its contents
    for (const { rel, mode } of lent.reverse()) {
      await chmod(rel ? join(src, rel) : src, mode).catch(() => {});
      await chmod(rel ? join(dst, rel) : dst, mode).catch(() => {});
    }
  }
}

export const nativeDriver: Driver = {
  async populate(dir: string, kind: "active" | "view", parentDirs: string[], opts?: SnapshotOptions): Promise<void> {
    if (kind !== "active" || parentDirs.length === 0) return;
    // a layer applier replaces files instead of writing them: the parent's inodes can be shared
    const link = opts?.applyOnly === true;
    if (process.getuid?.() === 0) await copyTree(parentDirs[0], dir, { link });
    else await copyUnprivileged(parentDirs[0], dir, link);
  },
  mounts(dir: string, kind: Kind, parentDirs: string[]): Mount[] {
    if (kind === "view") {
      return [{ type: "bind", source: parentDirs[0] ?? dir, options: ["ro", "rbind"] }];
    }
    return [{ type: "bind", source: dir, options: ["rw", "rbind"] }];
  },
  fsDir(dir: string): string {
    return dir;
  },
  sharesParentInodes: true,
};

export function openNative(root: string, db: DatabaseSync): FsSnapshotter {
  return new FsSnapshotter("native", root, db, nativeDriver);
}
