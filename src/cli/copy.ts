/**
 * `dist copy SRC DST`: an image from one registry to another, streamed
 * straight through (nothing stored here), with the progress table.
 */
import type { Command } from "commander";
import { commandSignal, globals } from "./globals.ts";
import { addPlatformFlags, addUploadFlags, platformMatchers, uploadLimit } from "./platform-flags.ts";
import { addProgressFlag, withProgress } from "./progress.ts";
import { addRegistryFlags, registryOptions } from "./registry-flags.ts";
import { descriptorSummary, naming } from "./transfer.ts";

export function register(program: Command): void {
  const cmd = program
    .command("copy")
    .alias("cp")
    .description("copy an image between registries (or repositories), streamed straight through, digests kept")
    .argument("<src>", "the image to copy, e.g. docker.io/library/redis:7")
    .argument("<dst>", "where to, e.g. registry.example.com/mirror/redis:7");
  addRegistryFlags(cmd);
  addPlatformFlags(cmd);
  addUploadFlags(cmd);
  addProgressFlag(cmd);
  cmd
    .option("--referrers", "copy the OCI 1.1 referrers (signatures, SBOMs, attestations) of what is copied, too")
    .addHelpText(
      "after",
      `
The registry flags apply to both ends (credentials per registry come from
--user, docker's config.json or its credential helpers; per-host settings from
--hosts-dir). Each blob goes from the source to the destination as it is read,
verified on the way; none is stored here, so memory stays flat whatever the
image's size. Within one registry, blobs are mounted from the source repository.

--all-platforms copies an index whole (its digest kept); --platform (one) copies
that platform's manifest alone; by default the host's platform goes. Manifests
are copied byte for byte.

--referrers also copies, for every manifest copied, the manifests that name it
as their subject (found through the referrers API, or the sha256-<hex> tag where
the source lacks it), and lists them in the destination's tag when it lacks the
API.

Examples:
  dist copy --all-platforms docker.io/library/busybox:latest registry.example.com/mirror/busybox:latest
  dist copy --plain-http --platform linux/amd64 127.0.0.1:5000/app:1 127.0.0.1:5001/app:1
  dist copy --referrers --all-platforms ghcr.io/org/app:1.2 registry.example.com/org/app:1.2`,
    )
    .action(async (src: string, dst: string, opts: Record<string, unknown>, c: Command) => {
      const g = globals(c);
      const platforms = await platformMatchers(opts as { platform?: string[]; allPlatforms?: boolean });
      const limit = uploadLimit(opts as { maxConcurrentUploads?: string });
      const [{ normalize }, { createResolver }, { copyImage }] = await Promise.all([
        import("../reference/index.ts"),
        import("../remotes/docker/index.ts"),
        import("../transfer/copy.ts"),
      ]);
      const [from, to] = [normalize(src), normalize(dst)];
      const signal = commandSignal(g);
      const resolver = createResolver(registryOptions(opts));
      try {
        await withProgress(async (progress) => {
          const r = await copyImage({
            resolver,
            src: from,
            dst: to,
            platforms,
            referrers: Boolean(opts.referrers),
            limit,
            signal,
            progress: progress.tracker,
            onNote: progress.onNote,
          }).catch((err) => {
            throw naming(`${from} → ${to}`, err);
          });
          progress.summary.copied = { src: r.src, dst: r.dst, ...descriptorSummary(r.desc), referrers: r.referrers };
          progress.print(`${r.dst}: digest: ${r.desc.digest} size: ${r.desc.size}`);
          if (opts.referrers) progress.print(`referrers copied: ${r.referrers}`);
        });
      } finally {
        await resolver.close();
      }
    });
}
