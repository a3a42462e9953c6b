/**
 * `dist import FILE|DIR|-`: an OCI image layout (tar, tar.gz, tar.zst or a
 * directory) or a `docker save` archive into the store, named from the
 * archive or the flags, optionally unpacked.
 */
import type { Command } from "commander";
import { UsageError } from "./args.ts";
import { commandSignal, globals } from "./globals.ts";
import { holdCommandLease, openContentStore, openImageStore } from "./open.ts";
import { addPlatformFlags, platformMatchers } from "./platform-flags.ts";
import { addProgressFlag, withProgress } from "./progress.ts";
import { addSnapshotterFlag, snapshotterFor } from "./snapshots.ts";
import { descriptorSummary } from "./transfer.ts";

interface ImportFlags {
  name?: string;
  baseName?: string;
  indexName?: string;
  digests?: boolean;
  unpack?: boolean;
  platform?: string[];
  allPlatforms?: boolean;
}

export function register(program: Command): void {
  const cmd = program
    .command("import")
    .description("import images from an OCI image layout or a docker save archive (a file, a directory or -)")
    .argument("<input>", "a tar (maybe gzip or zstd compressed), a directory holding an OCI layout, or - for stdin")
    .option("--name <name>", "name the archive's image (an archive of one image)")
    .option("--base-name <name>", "base name for tag-only names; when given, full names outside it are left out")
    .option("--index-name <name>", "also record the archive's index under this name")
    .option("--digests", "also record every image as <base-name>@<digest>")
    .option("--unpack", "unpack the imported images (the host's platform, or the first --platform)");
  addPlatformFlags(cmd);
  addSnapshotterFlag(cmd);
  addProgressFlag(cmd);
  cmd
    .addHelpText(
      "after",
      `
Names come from the archive: io.containerd.image.name, else
org.opencontainers.image.ref.name (a tag alone becomes <base-name>:<tag>, the
base name being import-YYYY-MM-DD unless --base-name is given), or Docker's
RepoTags; --name names an archive's single image instead. Every blob is
verified; an image is recorded only once all its blobs are in the store, and
blobs no imported image uses are removed. Without --platform or
--all-platforms everything the archive holds is imported, and an index some of
whose platforms were left out of the archive is accepted; with them, those
platforms must be there. Attestations missing from an archive are left out
with a note.

Examples:
  dist import busybox.tar
  dist export - redis | ssh host dist import -
  dist import --base-name registry.example.com/app layout/
  docker save app:1 | dist import --unpack -
  dist import --name app:imported --platform linux/arm64 app.oci.tar.gz`,
    )
    .action(async (input: string, opts: ImportFlags, c: Command) => {
      const g = globals(c);
      const signal = commandSignal(g);
      if (input === "-" && process.stdin.isTTY) throw new UsageError("refusing to read an archive from a terminal");
      const asked = Boolean(opts.allPlatforms) || (opts.platform?.length ?? 0) > 0;
      const platforms = asked ? await platformMatchers(opts) : undefined;
      if (opts.name !== undefined && (opts.baseName !== undefined || opts.digests)) {
        throw new UsageError("--name names the one image: it cannot go with --base-name or --digests");
      }
      const { importImages } = await import("../transfer/import.ts");
      await holdCommandLease(g);
      const content = await openContentStore(g);
      const images = await openImageStore(g);
      const started = Date.now();
      const unpacking: string[] = [];
      try {
        const snapshotter = opts.unpack ? await snapshotterFor(c) : undefined;
        await withProgress(async (progress) => {
          const r = await importImages({
            content,
            images,
            source: input === "-" ? process.stdin : input,
            name: opts.name,
            baseName: opts.baseName,
            indexName: opts.indexName,
            digests: opts.digests,
            platforms,
            unpackPlatform: platforms && !platforms[0].all ? platforms[0] : undefined,
            snapshotter,
            signal,
            progress: progress.tracker,
            onNote: progress.onNote,
            onWarning: progress.onWarning,
            onUnpack: (name, m) => unpacking.push(`unpacking ${name} (${m.digest})...`),
          });
          progress.summary.imported = r.images.map((i) => ({ name: i.name, ...descriptorSummary(i.target) }));
          progress.summary.unpacked = r.unpacked.map((u) => ({
            platform: u.platform,
            manifest: u.manifest.digest,
            chainID: u.chainID,
          }));
          for (const i of r.images) progress.print(`imported ${i.name} ${i.target.digest}`);
          for (const line of unpacking) progress.print(line);
          for (const u of r.unpacked) progress.print(`image chain ID: ${u.chainID} (${u.platform})`);
          progress.print(`done: ${((Date.now() - started) / 1000).toFixed(3)}s`);
        });
      } finally {
        await content.close?.();
      }
    });
}
