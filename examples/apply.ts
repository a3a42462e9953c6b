// Applies a layer (tar, gzip or zstd) onto a directory with the OCI whiteout rules and
// prints its diffID, then writes the directory back out as a layer tar.
// Usage: node apply.ts LAYER DIR
import { createWriteStream, mkdirSync } from "node:fs";
import { applyLayer, writeDiff } from "@dist-project/dist";

const [layer, dir] = process.argv.slice(2);
if (!layer || !dir) throw new Error("usage: node apply.ts LAYER DIR");
mkdirSync(dir, { recursive: true });

const applied = await applyLayer(dir, { path: layer }, { onWarning: (message) => console.error(message) });
console.log(applied.diffID, applied.size, applied.compression);

// the tree as a base layer (no lower directory): what applying it onto nothing gives
await writeDiff(undefined, dir, createWriteStream(`${dir}.tar`));
console.log(`${dir}.tar`);
