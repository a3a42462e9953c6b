/**
 * Guards for tearing down what we mounted: never delete a tree that still has
 * something mounted inside it (an rm -rf through a live overlay would eat the
 * snapshot's layers).
 */
import { readFileSync } from "node:fs";
import { resolve, sep } from "node:path";
import { FailedPreconditionError } from "../errors.ts";
import { removeTree as removeAll } from "../snapshots/fs-snapshotter.ts";

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** Mount points of this process's mount namespace. */
export function mountPoints(): string[] {
  let text: string;
  try {
    text = readFileSync("/proc/self/mountinfo", "utf8");
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    if (f.length > 4) out.push(unescapeOctal(f[4]));
  }
  return out;
}

export function isMountPoint(path: string): boolean {
  const p = resolve(path);
  return mountPoints().includes(p);
}

/** Mount points at or under dir. */
export function mountsUnder(dir: string): string[] {
  const d = resolve(dir);
  return mountPoints().filter((m) => m === d || m.startsWith(d + sep));
}

/** rm -rf of dir (read-only directories too), refused while anything is mounted at or under it. */
export async function removeTree(dir: string): Promise<void> {
  const busy = mountsUnder(dir);
  if (busy.length > 0) {
    throw new FailedPreconditionError(`not removing ${dir}: ${busy[0]} is still mounted (umount it first)`);
  }
  await removeAll(dir);
}
