/**
 * `dist export OUTPUT REF...`: stored images to an OCI image layout with
 * Docker's manifest.json, as a tar file, a tar on stdout (`-`) or a directory.
 */
import type { Command } from "commander";
import { formatBytes } from "../format.ts";
import type { ExportOutput } from "../transfer/export.ts";
import { UsageError } from "./args.ts";
import { commandSignal, globals } from "./globals.ts";
import { log } from "./log.ts";
import { holdCommandLease, openImageStore, withContentStore } from "./open.ts";
import { addPlatformFlags, platformMatchers } from "./platform-flags.ts";
import { addProgressFlag, type Progress, withProgress } from "./progress.ts";
import { addRegistryFlags, registryOptions } from "./registry-flags.ts";
import { descriptorSummary, fetchDiscardedLayers } from "./transfer.ts";

/** Where OUTPUT sends the layout: stdout, a directory (existing, or named with a trailing slash), else a tar file. */
async function outputOf(output: string): Promise<ExportOutput> {
  if (output === "-") {
    if (process.stdout.isTTY)
      throw new UsageError("refusing to write a tar to a terminal: redirect stdout or name a file");
    return { tar: process.stdout };
  }
  if (output.endsWith("/")) return { directory: output };
  const { stat } = await import("node:fs/promises");
  try {
    if ((await stat(output)).isDirectory()) return { directory: output };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  return { file: output };
}

export function register(program: Command): void {
  const cmd = program
    .command("export")
    .description("write images to an OCI image layout (a tar, or a directory) that docker load also reads")
    .argument("<output>", "a tar file, - for stdout, or a directory (existing, or ending with /)")
    .argument("<ref...>", "images of the store to export, named as dist images lists them or as typed (redis)");
  addPlatformFlags(cmd);
  addProgressFlag(cmd);
  addRegistryFlags(cmd);
  cmd
    .option("--skip-manifest-json", "leave out Docker's manifest.json")
    .addHelpText(
      "after",
      `
The layout holds oci-layout, index.json (each image named by the
io.containerd.image.name and org.opencontainers.image.ref.name annotations, as
ctr writes them), every blob under blobs/, and Docker's manifest.json for the
host's platform (or the first --platform). An index is written whole, with the
blobs of the selected platforms (default: the host's). Blobs stream from the
store and are verified as they go; layers pull --discard-layers removed are
fetched again first from the image's registry (the registry flags apply). A tar file is written under a temporary name
and renamed once complete; a directory may be an existing OCI layout, to which
the images are added.

Examples:
  dist export busybox.tar docker.io/library/busybox:latest
  dist export - redis | ssh host dist import -
  dist export --all-platforms ./layout/ 127.0.0.1:5000/multi/busybox:oci
  dist export app.tar app:1 app:2 && docker load -i app.tar`,
    )
    .action(async (output: string, refs: string[], opts: Record<string, unknown>, c: Command) => {
      const g = globals(c);
      const signal = commandSignal(g);
      const platforms = await platformMatchers(opts as { platform?: string[]; allPlatforms?: boolean });
      const out = await outputOf(output);
      const [{ exportImages }, { createResolver }] = await Promise.all([
        import("../transfer/export.ts"),
        import("../remotes/docker/index.ts"),
      ]);
      await holdCommandLease(g); // layers fetched again are leased until their manifest is labelled
      const images = await openImageStore(g);
      await withContentStore(g, async (content) => {
        const run = async (progress?: Progress) => {
          const resolver = createResolver(registryOptions(opts));
          for (const ref of refs) {
            await fetchDiscardedLayers({
              images,
              content,
              resolver,
              name: ref,
              platforms,
              progress,
              signal,
            });
          }
          return exportImages({
            content,
            images,
            names: refs,
            output: out,
            platforms,
            dockerManifest: !opts.skipManifestJson,
            signal,
            progress: progress?.tracker,
            onNote: progress ? progress.onNote : (_d, m) => log.info(m),
          });
        };
        if ("tar" in out) {
          // stdout carries the archive: no table, notes on stderr
          await run();
          return;
        }
        const started = Date.now();
        await withProgress(async (progress) => {
          const r = await run(progress);
          progress.summary.exported = {
            output,
            manifests: r.manifests.map(descriptorSummary),
            blobs: r.blobs.length,
            size: r.size,
          };
          progress.print(
            `exported ${r.manifests.length} image${r.manifests.length === 1 ? "" : "s"}, ${r.blobs.length} blobs (${formatBytes(r.size)}) to ${output} in ${((Date.now() - started) / 1000).toFixed(3)}s`,
          );
        });
      });
    });
}
