/**
 * Where a layer is applied for an active snapshot, read from its mounts: a bind
 * mount's source directly, or an overlay's upperdir (with overlay whiteouts and
 * the lowerdirs for hardlink copy-up). Appliers apply without mounting.
 */
import { InvalidArgumentError, UnimplementedError } from "../errors.ts";
import type { Mount } from "../snapshots/snapshotter.ts";

export interface ApplyTarget {
  dir: string;
  overlay: boolean;
  lowerDirs: string[];
}

function option(m: Mount, name: string): string | undefined {
  const o = m.options.find((x) => x.startsWith(`${name}=`));
  return o?.slice(name.length + 1);
}

/** Where a layer goes for these mounts. */
export function applyTarget(mounts: Mount[]): ApplyTarget {
  if (mounts.length !== 1) {
    throw new InvalidArgumentError(`apply needs exactly one mount, got ${mounts.length}`);
  }
  const m = mounts[0];
  if (m.type === "bind" || m.type === "rbind") {
    if (m.options.includes("ro")) throw new InvalidArgumentError(`apply target ${m.source} is mounted read-only`);
    return { dir: m.source, overlay: false, lowerDirs: [] };
  }
  if (m.type === "overlay") {
    const upper = option(m, "upperdir");
    if (!upper) throw new InvalidArgumentError("apply to an overlay needs an upperdir (a read-only view was given)");
    const lower = option(m, "lowerdir");
    return { dir: upper, overlay: true, lowerDirs: lower ? lower.split(":") : [] };
  }
  throw new UnimplementedError(`apply to a mount of type "${m.type}" is not supported (bind or overlay only)`);
}
