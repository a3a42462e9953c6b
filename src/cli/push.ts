/**
 * `dist push REF [LOCAL-NAME]`: a local image to a registry, with the
 * progress table (waiting, uploading, exists, mounted, done), then the digest
 * that went under the tag.
 */
import type { Command } from "commander";
import { collect, UsageError } from "./args.ts";
import { commandSignal, globals } from "./globals.ts";
import { holdCommandLease, openContentStore, openImageStore } from "./open.ts";
import { addUploadFlags, platformMatchers, uploadLimit } from "./platform-flags.ts";
import { addProgressFlag, withProgress } from "./progress.ts";
import { addRegistryFlags, registryOptions } from "./registry-flags.ts";
import { descriptorSummary, fetchDiscardedLayers, naming } from "./transfer.ts";

export function register(program: Command): void {
  const cmd = program
    .command("push")
    .description("push a local image to a registry: blobs, then manifests, then the tag")
    .argument("<ref>", "where to (and the local image without [local-name]), e.g. registry.example.com/team/app:1.0")
    .argument("[local-name]", "the local image to push (default: <ref>)");
  addRegistryFlags(cmd);
  addUploadFlags(cmd);
  addProgressFlag(cmd);
  cmd
    .option("--platform <platform>", "push only this platform, os[/arch[/variant]] (repeatable)", collect)
    .option("--all-platforms", "push the whole index, failing if any of its manifests is not here")
    .addHelpText(
      "after",
      `
By default every platform present in the content store goes: the index
itself when all of its manifests are here (its digest kept), else a new index
listing those present. With one --platform, that platform's manifest goes
alone, as ctr push does.

Blobs the registry has already are skipped (HEAD), and a blob that came from
another repository of the same registry (its containerd.io/distribution.source
label, recorded by fetch and pull) is mounted from there rather than uploaded.
Layers that pull --discard-layers removed are fetched again first, by digest,
from the image's own repository (with these registry flags).
Small blobs go in one PUT, large ones in 64 MiB PATCH chunks; an interrupted
upload resumes from the offset the registry reports.

Examples:
  dist push --plain-http 127.0.0.1:5000/team/busybox:1 docker.io/library/busybox:latest
  dist images tag redis registry.example.com/mirror/redis:7 && dist push registry.example.com/mirror/redis:7
  dist push -u ci --platform linux/arm64 ghcr.io/org/app:1.2-arm64 ghcr.io/org/app:1.2`,
    )
    .action(async (ref: string, local: string | undefined, opts: Record<string, unknown>, c: Command) => {
      const g = globals(c);
      const picked = opts as { platform?: string[]; allPlatforms?: boolean };
      if (picked.allPlatforms && picked.platform?.length) {
        throw new UsageError("--platform and --all-platforms cannot be used together");
      }
      const platforms = picked.platform?.length ? await platformMatchers(picked) : undefined;
      const limit = uploadLimit(opts as { maxConcurrentUploads?: string });
      const [{ normalize }, { createResolver }, { pushImage }] = await Promise.all([
        import("../reference/index.ts"),
        import("../remotes/docker/index.ts"),
        import("../transfer/push.ts"),
      ]);
      const name = normalize(ref);
      const signal = commandSignal(g);
      const resolver = createResolver(registryOptions(opts));
      await holdCommandLease(g); // layers fetched again are leased until their manifest is labelled
      const content = await openContentStore(g);
      const images = await openImageStore(g);
      try {
        await withProgress(async (progress) => {
          await fetchDiscardedLayers({
            images,
            content,
            resolver,
            name: local === undefined ? name : normalize(local),
            platforms,
            progress,
            signal,
          });
          const r = await pushImage({
            resolver,
            content,
            images,
            ref: name,
            local,
            platforms,
            requireAll: Boolean(picked.allPlatforms),
            limit,
            signal,
            progress: progress.tracker,
            onNote: progress.onNote,
            onWarning: progress.onWarning,
          }).catch((err) => {
            throw naming(name, err);
          });
          progress.summary.pushed = { name: r.name, ...descriptorSummary(r.desc) };
          progress.print(`${r.name}: digest: ${r.desc.digest} size: ${r.desc.size}`);
        });
      } finally {
        await content.close?.();
        await resolver.close();
      }
    });
}
