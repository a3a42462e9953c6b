/**
 * `dist pull REF...`: resolve, fetch, record each image and unpack it into a
 * snapshotter, with one progress table for all (waiting, downloading,
 * extracting, done or exists; a blob two images share is downloaded once),
 * then `unpacking <platform> <digest>` per platform and `done`.
 */
import type { Command } from "commander";
import type { PullResult } from "../pull.ts";
import { config } from "./config.ts";
import { embeddedRoot, holdCommandLease, openContentStore, openImageStore, releaseCommandLease } from "./open.ts";
import { withProgress } from "./progress.ts";
import { addSnapshotterFlag, snapshotterFor } from "./snapshots.ts";
import {
  addTransferFlags,
  eachRef,
  imageSummary,
  type RefOutcome,
  reportRefFailures,
  transferFrom,
} from "./transfer.ts";

export function register(program: Command): void {
  const cmd = program
    .command("pull")
    .description("fetch images into the content store, record their names and unpack them into snapshots")
    .argument("<refs...>", "image references, e.g. docker.io/library/redis:latest");
  addTransferFlags(cmd);
  addSnapshotterFlag(cmd);
  cmd
    .option("--print-chainid", "print the image's ChainID (the top snapshot) after unpacking")
    .option(
      "--discard-layers",
      "once unpacked and verified, remove the compressed layers (config: discard_layers = true); dist fetch gets them again",
    )
    .addHelpText(
      "after",
      `
Layers are unpacked in order as soon as each one and its parent are there,
while later layers still download. A layer whose snapshot (named by its
ChainID) already exists is not extracted again. On failure nothing partial is
committed; the blobs already fetched stay in the content store for the next pull.
With --discard-layers the image takes its unpacked size on disk only: its
layers are not referenced by its manifest and go once unpacked (what another
image references stays); \`images check\` then names them as missing, and
push, export and \`dist fetch\` of the image fetch them again.
Several references are pulled together, in one progress table, each blob they
share downloaded once; one that fails does not stop the others (exit status 1).

Examples:
  dist pull docker.io/library/redis:latest
  dist pull --plain-http 127.0.0.1:5000/busybox:latest --snapshotter native
  dist pull --print-chainid --platform linux/arm64 ghcr.io/org/app:1.2
  dist pull --discard-layers docker.io/library/redis:latest
  dist pull docker.io/library/redis:7 docker.io/library/redis:7-alpine
  dist pull --progress json docker.io/library/redis:latest | jq -c 'select(.type == "summary")'`,
    )
    .action(async (refs: string[], opts: Record<string, unknown>, c: Command) => {
      const { g, names, platforms, limit, signal, resolver } = await transferFrom(refs, opts, c);
      const [{ pull }, { FetchGroup }] = await Promise.all([import("../pull.ts"), import("../remotes/handlers.ts")]);
      await holdCommandLease(g);
      const content = await openContentStore(g);
      const images = await openImageStore(g);
      const snapshotter = await snapshotterFor(c);
      const discardLayers = Boolean(opts.discardLayers ?? config().discardLayers);
      const started = Date.now();
      const group = new FetchGroup(limit);
      let outcomes: RefOutcome<PullResult>[];
      try {
        outcomes = await withProgress(async (progress) => {
          const unpacking: string[] = [];
          const results = await eachRef(names, progress, (name) =>
            pull({
              resolver,
              content,
              images,
              ref: name,
              snapshotter,
              platforms,
              group,
              signal,
              progress: progress.tracker,
              onNote: progress.onNote,
              onWarning: progress.onWarning,
              discardLayers,
              // on a terminal the digest is cut as in the table: the line fits an 80-column screen
              onUnpack: (platform, m) =>
                unpacking.push(
                  `unpacking ${platform} ${progress.style === "tty" ? m.digest.slice(0, 19) : m.digest}...`,
                ),
            }),
          );
          progress.summary.images = results.map(imageSummary);
          for (const line of unpacking) progress.print(line);
          if (opts.printChainid) {
            for (const o of results)
              for (const u of o.result?.unpacked ?? []) progress.print(`image chain ID: ${u.chainID}`);
          }
          progress.print(`done: ${((Date.now() - started) / 1000).toFixed(3)}s`);
          return results;
        });
        if (discardLayers && !g.address) {
          // the pull's lease holds them until it ends; a daemon's next collection takes them (--address)
          releaseCommandLease();
          const manifests = outcomes.flatMap((o) => o.result?.unpacked.map((u) => u.manifest) ?? []);
          const [{ discardUnpackedLayers }, { openMetadata }] = await Promise.all([
            import("../gc/discard.ts"),
            import("../metadata/metadata.ts"),
          ]);
          await discardUnpackedLayers(openMetadata(embeddedRoot(g)), g.namespace, content, manifests, { signal });
        }
      } finally {
        await content.close?.();
      }
      reportRefFailures(outcomes);
    });
}
