/** Disk usage of a tree: allocated bytes and inodes, each hardlinked inode counted once. */
import { lstat, opendir } from "node:fs/promises";
import { join } from "node:path";
import type { Usage } from "./snapshotter.ts";

export async function treeUsage(root: string): Promise<Usage> {
  const seen = new Set<bigint>();
  let size = 0;
  let inodes = 0;
  const visit = async (path: string): Promise<void> => {
    const st = await lstat(path, { bigint: true });
    if (st.nlink > 1n) {
      if (seen.has(st.ino)) return;
      seen.add(st.ino);
    }
    inodes++;
    size += Number(st.blocks) * 512;
    if (!st.isDirectory()) return;
    const dir = await opendir(path, { bufferSize: 256 });
    for await (const ent of dir) await visit(join(path, ent.name));
  };
  try {
    await visit(root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  return { size, inodes };
}
