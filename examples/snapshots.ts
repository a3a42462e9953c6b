// Snapshotters: a writable snapshot on top of a committed one, as layers stack up.
// Prepare, write into its mount, commit under a name, build a child on it, read a view.
// Usage: node snapshots.ts [ROOT]
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Mount, openSnapshotterAt } from "@dist-project/dist";

const [root = "/var/lib/dist"] = process.argv.slice(2);
const snapshotter = openSnapshotterAt(root, "native"); // "overlay" needs root and overlayfs

/** The directory of a native snapshot's single bind mount. */
const dirOf = (mounts: Mount[]) => mounts[0].source;

const base = await snapshotter.prepare("example-base-work");
writeFileSync(join(dirOf(base), "greeting"), "hello\n");
await snapshotter.commit("example-base", "example-base-work", { labels: { "example.com/layer": "0" } });

const child = await snapshotter.prepare("example-child-work", "example-base");
writeFileSync(join(dirOf(child), "more"), "world\n");
await snapshotter.commit("example-child", "example-child-work");

const view = await snapshotter.view("example-view", "example-child");
console.log(
  readFileSync(join(dirOf(view), "greeting"), "utf8").trim(),
  readFileSync(join(dirOf(view), "more"), "utf8").trim(),
);
await snapshotter.walk((info) => {
  if (info.name.startsWith("example-")) console.log(info.name, info.kind, info.parent ?? "-");
});
console.log((await snapshotter.usage("example-child")).size, "bytes in example-child");

for (const key of ["example-view", "example-child", "example-base"]) await snapshotter.remove(key);
