/**
 * The overlay snapshotter (root and an overlayfs kernel): each snapshot owns
 * `fs` (its upper layer) and `work`; an active snapshot mounts overlay with the
 * parents' `fs` dirs as lowerdir (immediate parent first), a snapshot without
 * parents is a bind of its own `fs`, and a view of one parent binds that parent.
 * In a user namespace (a rootless run) overlays are mounted with `userxattr`.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { inUserNamespace } from "../../sys/userns.ts";
import { type Driver, FsSnapshotter } from "../fs-snapshotter.ts";
import type { Kind, Mount } from "../snapshotter.ts";

const fs = (dir: string) => join(dir, "fs");

export const overlayDriver: Driver = {
  async populate(dir: string, kind: "active" | "view"): Promise<void> {
    await mkdir(fs(dir), { mode: 0o755 });
    if (kind === "active") await mkdir(join(dir, "work"), { mode: 0o700 });
  },
  mounts(dir: string, kind: Kind, parentDirs: string[]): Mount[] {
    const ro = kind !== "active";
    if (parentDirs.length === 0) {
      return [{ type: "bind", source: fs(dir), options: [ro ? "ro" : "rw", "rbind"] }];
    }
    const lower = `lowerdir=${parentDirs.map(fs).join(":")}`;
    const userxattr = inUserNamespace() ? ["userxattr"] : [];
    if (ro) {
      if (parentDirs.length === 1) return [{ type: "bind", source: fs(parentDirs[0]), options: ["ro", "rbind"] }];
      return [{ type: "overlay", source: "overlay", options: [lower, ...userxattr] }];
    }
    return [
      {
        type: "overlay",
        source: "overlay",
        options: [`workdir=${join(dir, "work")}`, `upperdir=${fs(dir)}`, lower, ...userxattr],
      },
    ];
  },
  fsDir(dir: string): string {
    return fs(dir);
  },
};

export function openOverlay(root: string, db: DatabaseSync): FsSnapshotter {
  return new FsSnapshotter("overlay", root, db, overlayDriver);
}
