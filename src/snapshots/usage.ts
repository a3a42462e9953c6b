/** Disk usage of a tree: allocated bytes and inodes, each hardlinked inode counted once. */
import type { BigIntStats } from "node:fs";
import { lstat, opendir } from "node:fs/promises";
import { join } from "node:path";
import type { Usage } from "./snapshotter.ts";

/** Calls `onEntry` for the root and everything below it (lstat, depth first); a missing root is an empty tree. */
async function walkTree(root: string, onEntry: (st: BigIntStats) => boolean): Promise<void> {
  const visit = async (path: string): Promise<void> => {
    const st = await lstat(path, { bigint: true });
    if (!onEntry(st) || !st.isDirectory()) return;
    const dir = await opendir(path, { bufferSize: 256 });
    for await (const ent of dir) await visit(join(path, ent.name));
  };
  try {
    await visit(root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}

/**
 * The usage of the tree at `root`, leaving out the inodes of `shared` (those
 * it shares with another tree that owns them: a native snapshot's parent).
 */
export async function treeUsage(root: string, shared?: ReadonlySet<bigint>): Promise<Usage> {
  const seen = new Set<bigint>();
  let size = 0;
  let inodes = 0;
  await walkTree(root, (st) => {
    if (st.nlink > 1n) {
      if (seen.has(st.ino) || shared?.has(st.ino)) return false;
      seen.add(st.ino);
    }
    inodes++;
    size += Number(st.blocks) * 512;
    return true;
  });
  return { size, inodes };
}

/** The inodes of a tree with more than one link: all that another tree can share with it. */
export async function linkedInodes(root: string): Promise<Set<bigint>> {
  const out = new Set<bigint>();
  await walkTree(root, (st) => {
    if (st.nlink > 1n && !st.isDirectory()) out.add(st.ino);
    return true;
  });
  return out;
}
