/**
 * `dist bundle`: an OCI runtime bundle on disk (config.json + rootfs/) for any
 * runtime to use. As root the rootfs is the image's snapshot mounted at
 * DIR/rootfs (overlay, or a bind of the native snapshot); a copy (--copy, and
 * always without root) is made from a read-only view of the image, mounted for
 * the copy when it is not a plain directory (overlay), and the view is dropped
 * at once. What has to be undone is written to DIR/dist-bundle.json for
 * `dist bundle --remove DIR`.
 */
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { AlreadyExistsError, FailedPreconditionError, NotFoundError } from "../errors.ts";
import type { PlatformMatcher } from "../images/platforms.ts";
import { readUserFiles } from "../oci/rootfs.ts";
import { buildSpec, processArgs, type Spec, type SpecOptions } from "../oci/spec.ts";
import { resolveUser } from "../oci/user.ts";
import { mountAll, unmount } from "../snapshots/mount.ts";
import { copyTree } from "../snapshots/native/native.ts";
import type { Mount, Snapshotter } from "../snapshots/snapshotter.ts";
import { isMountPoint, removeTree } from "./mounts.ts";
import { ensureUnpacked, type RunDeps, resolveImage, Undo } from "./run.ts";

export const BUNDLE_RECORD = "dist-bundle.json";

export interface BundleRecord {
  image: string;
  manifest: string;
  snapshotter: string;
  /** The snapshot behind rootfs/, absent for a copy. */
  snapshotKey?: string;
  /** rootfs/ is a mount of ours. */
  mounted: boolean;
}

export interface BundleOptions {
  ref: string;
  dir: string;
  matcher?: PlatformMatcher;
  user?: string;
  spec: SpecOptions;
  /** Copy the snapshot instead of mounting it (the default without root). */
  copy?: boolean;
}

/** The snapshot key of a bundle: one per bundle directory, so two bundles never share a rootfs. */
export function bundleKey(dir: string): string {
  return `bundle-${createHash("sha256").update(resolve(dir)).digest("hex").slice(0, 16)}`;
}

export async function createBundle(
  deps: RunDeps,
  opts: BundleOptions,
): Promise<{ dir: string; spec: Spec; record: BundleRecord }> {
  const dir = resolve(opts.dir);
  const image = await resolveImage(deps, opts.ref, opts.matcher);
  if (processArgs(image.config.config, opts.spec).length === 0) {
    throw new FailedPreconditionError(
      `image "${image.name}" has no command (no Entrypoint or Cmd): give one after the directory`,
    );
  }
  let existed = true;
  try {
    if (readdirSync(dir).length > 0) throw new FailedPreconditionError(`bundle directory ${dir} is not empty`);
  } catch (err) {
    if ((err as { code?: string }).code !== "ENOENT") throw err;
    existed = false;
  }
  const undo = new Undo(deps.log);
  try {
    // 0711, not 0700: a runtime whose container root is not DIR's owner (a user namespace) still
    // reaches rootfs/; what may hold secrets (config.json's environment, the record) is 0600
    mkdirSync(dir, { recursive: true, mode: 0o711 });
    undo.push(`remove ${dir}`, async () => {
      if (!existed) return removeTree(dir);
      for (const f of ["rootfs", "config.json", BUNDLE_RECORD]) await removeTree(join(dir, f));
    });
    await ensureUnpacked(deps, image);
    const key = bundleKey(dir);
    const copy = opts.copy ?? process.getuid?.() !== 0;
    const rootfs = join(dir, "rootfs");
    mkdirSync(rootfs, { mode: 0o755 });
    const record: BundleRecord = {
      image: image.name,
      manifest: image.manifestDesc.digest,
      snapshotter: deps.snapshotter.name,
      mounted: false,
    };
    const labels = { labels: { "dist.bundle": dir } };
    const mounts = await (copy
      ? deps.snapshotter.view(key, image.chainID, labels)
      : deps.snapshotter.prepare(key, image.chainID, labels)
    ).catch((err) => {
      if (!(err instanceof AlreadyExistsError)) throw err;
      throw new AlreadyExistsError(
        `snapshot "${key}" for bundle ${dir} already exists: remove the old bundle first (dist bundle --remove ${dir})`,
      );
    });
    undo.push(`remove snapshot ${key}`, () => deps.snapshotter.remove(key));
    if (copy) {
      await copyView(mounts, rootfs, deps.snapshotter.name);
      await deps.snapshotter.remove(key);
    } else {
      mountAll(mounts, rootfs);
      undo.push(`unmount ${rootfs}`, () => unmount(rootfs));
      record.snapshotKey = key;
      record.mounted = true;
    }
    const user = resolveUser(opts.user ?? image.config.config.User ?? "", await readUserFiles(rootfs));
    const spec = buildSpec(image.config, { hostname: "dist", ...opts.spec, rootPath: "rootfs" }, user);
    writeFileSync(join(dir, "config.json"), `${JSON.stringify(spec, null, 2)}\n`, { mode: 0o600 });
    writeFileSync(join(dir, BUNDLE_RECORD), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
    undo.clear();
    return { dir, spec, record };
  } catch (err) {
    await undo.run();
    throw err;
  }
}

/**
 * Copies what a read-only view shows into `dest`: straight from the directory of
 * a bind, else from the view mounted for the time of the copy (needs root).
 */
async function copyView(mounts: Mount[], dest: string, snapshotter: string): Promise<void> {
  const bind = mounts.length === 1 && mounts[0].type === "bind" ? mounts[0] : undefined;
  if (bind) return copyTree(bind.source, dest);
  if (process.getuid?.() !== 0) {
    throw new FailedPreconditionError(
      `a copy of a ${snapshotter} snapshot needs a mount (root): run as root or use --snapshotter native`,
    );
  }
  const at = mkdtempSync(join(tmpdir(), "dist-bundle-view-"));
  try {
    mountAll(mounts, at);
    try {
      await copyTree(at, dest);
    } finally {
      unmount(at);
    }
  } finally {
    rmdirSync(at);
  }
}

export function readBundleRecord(dir: string): BundleRecord {
  try {
    return JSON.parse(readFileSync(join(resolve(dir), BUNDLE_RECORD), "utf8")) as BundleRecord;
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") {
      throw new NotFoundError(`${dir} is not a bundle made by dist bundle (no ${BUNDLE_RECORD})`);
    }
    throw err;
  }
}

/** Unmounts, drops the snapshot and deletes the bundle directory. */
export async function removeBundle(dir: string, snapshotter: Snapshotter | undefined): Promise<void> {
  const abs = resolve(dir);
  const record = readBundleRecord(abs);
  const rootfs = join(abs, "rootfs");
  if (record.mounted && isMountPoint(rootfs)) unmount(rootfs);
  if (record.snapshotKey && snapshotter) {
    await snapshotter.remove(record.snapshotKey).catch((err) => {
      if (!(err instanceof NotFoundError)) throw err;
    });
  }
  await removeTree(abs);
}
