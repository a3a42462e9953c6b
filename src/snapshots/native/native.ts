/**
 * The native snapshotter: every active snapshot is a full copy of its parent's
 * tree, so it needs no privileges and no kernel support. Mounts are a single
 * bind of the snapshot's directory; a view of a parent binds the parent
 * read-only without copying.
 */
import { spawn } from "node:child_process";
import type { DatabaseSync } from "node:sqlite";
import { FailedPreconditionError } from "../../errors.ts";
import { type Driver, FsSnapshotter } from "../fs-snapshotter.ts";
import type { Kind, Mount } from "../snapshotter.ts";

/**
 * Copies a tree preserving hardlinks, modes, owners (when permitted), xattrs,
 * device nodes and times. GNU cp does this with copy_file_range/reflinks and no
 * per-file fsync; failing to keep ownership or xattrs as non-root is not an error.
 */
export function copyTree(src: string, dst: string, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("cp", ["-a", "--reflink=auto", "--", `${src}/.`, `${dst}/`], {
      stdio: ["ignore", "ignore", "pipe"],
      signal,
    });
    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (d: string) => {
      if (stderr.length < 4096) stderr += d;
    });
    child.on("error", (err) => reject(new FailedPreconditionError(`copy ${src} to ${dst}: ${err.message}`)));
    child.on("close", (code) => {
      if (code === 0) resolve();
      else reject(new FailedPreconditionError(`copy ${src} to ${dst} failed: ${stderr.trim().split("\n")[0] ?? code}`));
    });
  });
}

export const nativeDriver: Driver = {
  async populate(dir: string, kind: "active" | "view", parentDirs: string[]): Promise<void> {
    if (kind === "active" && parentDirs.length > 0) await copyTree(parentDirs[0], dir);
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
};

export function openNative(root: string, db: DatabaseSync): FsSnapshotter {
  return new FsSnapshotter("native", root, db, nativeDriver);
}
