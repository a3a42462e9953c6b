/**
 * `dist pull REF`: resolve, fetch, record the image and unpack it into a
 * snapshotter, with the progress table (waiting, downloading, extracting, done
 * or exists), then `unpacking <platform> <digest>` per platform and `done`.
 */
import type { Command } from "commander";
import type { PullResult } from "../pull.ts";
import { holdCommandLease, openContentStore, openImageStore } from "./open.ts";
import { withProgress } from "./progress.ts";
import { addSnapshotterFlag, snapshotterFor } from "./snapshots.ts";
import { addTransferFlags, naming, transferFrom } from "./transfer.ts";

export function register(program: Command): void {
  const cmd = program
    .command("pull")
    .description("fetch an image into the content store, record its name and unpack it into snapshots")
    .argument("<ref>", "image reference, e.g. docker.io/library/redis:latest");
  addTransferFlags(cmd);
  addSnapshotterFlag(cmd);
  cmd
    .option("--print-chainid", "print the image's ChainID (the top snapshot) after unpacking")
    .addHelpText(
      "after",
      `
Layers are unpacked in order as soon as each one and its parent are there,
while later layers still download. A layer whose snapshot (named by its
ChainID) already exists is not extracted again. On failure nothing partial is
committed; the blobs already fetched stay in the content store for the next pull.

Examples:
  dist pull docker.io/library/redis:latest
  dist pull --plain-http 127.0.0.1:5000/busybox:latest --snapshotter native
  dist pull --print-chainid --platform linux/arm64 ghcr.io/org/app:1.2`,
    )
    .action(async (ref: string, opts: Record<string, unknown>, c: Command) => {
      const { g, name, platforms, limit, signal, resolver } = await transferFrom(ref, opts, c);
      const { pull } = await import("../pull.ts");
      await holdCommandLease(g);
      const content = await openContentStore(g);
      const images = await openImageStore(g);
      const snapshotter = await snapshotterFor(c);
      const started = Date.now();
      const unpacking: string[] = [];
      let result: PullResult;
      try {
        result = await withProgress((progress) =>
          pull({
            resolver,
            content,
            images,
            ref: name,
            snapshotter,
            platforms,
            limit,
            signal,
            progress: progress.tracker,
            onNote: progress.onNote,
            onWarning: progress.onWarning,
            onUnpack: (platform, m) => unpacking.push(`unpacking ${platform} ${m.digest}...`),
          }),
        );
      } catch (err) {
        throw naming(name, err);
      } finally {
        await content.close?.();
      }
      for (const line of unpacking) process.stdout.write(`${line}\n`);
      if (opts.printChainid) {
        for (const u of result.unpacked) process.stdout.write(`image chain ID: ${u.chainID}\n`);
      }
      process.stdout.write(`done: ${((Date.now() - started) / 1000).toFixed(3)}s\n`);
    });
}
