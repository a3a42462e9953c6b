/**
 * Opening a snapshotter by name under a dist root (`<root>/snapshots/<name>/`,
 * its records in `<root>/metadata.db`), and choosing the default: overlay when
 * we are root and the kernel mounts an overlay on this filesystem (probed
 * once), native otherwise. These are the namespace-free snapshotters; what
 * callers use is the metadata layer's view of one namespace
 * (metadata/snapshots.ts, `openSnapshotterAt`).
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { FailedPreconditionError, InvalidArgumentError } from "../errors.ts";
import { openDatabase } from "../metadata/db.ts";
import { umount2 } from "../sys/index.ts";
import { inUserNamespace } from "../sys/userns.ts";
import type { FsSnapshotter } from "./fs-snapshotter.ts";
import { mountOne } from "./mount.ts";
import { openNative } from "./native/native.ts";
import { openOverlay } from "./overlay/overlay.ts";

/** The snapshotters openSnapshotterAt opens, by name. */
export const SNAPSHOTTERS = ["overlay", "native"] as const;
/** "overlay" or "native". */
export type SnapshotterName = (typeof SNAPSHOTTERS)[number];

const probed = new Map<string, boolean>();

/** True when an overlay can be mounted with its layers under `dir` (needs root). */
export function overlaySupported(dir: string): boolean {
  const cached = probed.get(dir);
  if (cached !== undefined) return cached;
  let ok = false;
  if (process.getuid?.() === 0) {
    const p = join(dir, `.probe-${randomBytes(6).toString("hex")}`);
    try {
      for (const d of ["lower1", "lower2", "upper", "work", "merged"]) mkdirSync(join(p, d), { recursive: true });
      mountOne(
        {
          type: "overlay",
          source: "overlay",
          options: [
            `workdir=${join(p, "work")}`,
            `upperdir=${join(p, "upper")}`,
            `lowerdir=${join(p, "lower1")}:${join(p, "lower2")}`,
            ...(inUserNamespace() ? ["userxattr"] : []),
          ],
        },
        join(p, "merged"),
      );
      umount2(join(p, "merged"));
      ok = true;
    } catch {
      ok = false;
    } finally {
      rmSync(p, { recursive: true, force: true });
    }
  }
  probed.set(dir, ok);
  return ok;
}

export function defaultSnapshotterName(root: string): SnapshotterName {
  if (process.env.DIST_SNAPSHOTTER) return checkName(process.env.DIST_SNAPSHOTTER);
  const dir = join(root, "snapshots");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return overlaySupported(dir) ? "overlay" : "native";
}

export function checkName(name: string): SnapshotterName {
  if ((SNAPSHOTTERS as readonly string[]).includes(name)) return name as SnapshotterName;
  throw new InvalidArgumentError(`unknown snapshotter "${name}": expected ${SNAPSHOTTERS.join(" or ")}`);
}

/**
 * Opens snapshotter `name` (the default when absent) under the dist root,
 * namespace-free. With `mountable: false` an overlay snapshotter opens where it
 * could not mount (its records and directories only: removing a rootless
 * container's snapshot).
 */
export function openBackendSnapshotter(root: string, name?: string, opts: { mountable?: boolean } = {}): FsSnapshotter {
  const n = name ? checkName(name) : defaultSnapshotterName(root);
  const dir = join(root, "snapshots", n);
  if (n === "overlay" && opts.mountable !== false) {
    mkdirSync(join(root, "snapshots"), { recursive: true, mode: 0o700 });
    if (!overlaySupported(join(root, "snapshots"))) {
      throw new FailedPreconditionError(
        `the overlay snapshotter needs root and an overlayfs kernel that mounts on ${root}; use --snapshotter native`,
      );
    }
  }
  const db = openDatabase(root);
  return n === "overlay" ? openOverlay(dir, db) : openNative(dir, db);
}
