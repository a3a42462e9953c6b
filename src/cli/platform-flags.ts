/** Platform and download flags shared by fetch, pull and the image commands. */
import type { Command } from "commander";
import { DEFAULT_MAX_CONCURRENT_DOWNLOADS } from "../images/handlers.ts";
import type { PlatformMatcher } from "../images/platforms.ts";
import { collect, UsageError } from "./args.ts";
import { config } from "./config.ts";

/** `--platform <p>` (repeatable) and `--all-platforms`. */
export function addPlatformFlags(cmd: Command): Command {
  return cmd
    .option(
      "--platform <platform>",
      "platform to select, os[/arch[/variant]] (repeatable; default: the host's)",
      collect,
    )
    .option("--all-platforms", "select every platform of a multi-platform image");
}

/** `--max-concurrent-downloads <n>`. */
export function addDownloadFlags(cmd: Command): Command {
  return cmd.option(
    "--max-concurrent-downloads <n>",
    `blobs downloaded at once (default ${DEFAULT_MAX_CONCURRENT_DOWNLOADS})`,
  );
}

/** `--max-concurrent-uploads <n>`. */
export function addUploadFlags(cmd: Command): Command {
  return cmd.option(
    "--max-concurrent-uploads <n>",
    `blobs uploaded at once (default ${DEFAULT_MAX_CONCURRENT_DOWNLOADS})`,
  );
}

/** One matcher per --platform (each keeps its best manifest), all platforms, or the host's. */
export async function platformMatchers(opts: {
  platform?: string[];
  allPlatforms?: boolean;
}): Promise<PlatformMatcher[]> {
  if (opts.allPlatforms && opts.platform && opts.platform.length > 0) {
    throw new UsageError("--platform and --all-platforms cannot be used together");
  }
  const { allPlatforms, defaultMatcher, only, parsePlatform } = await import("../images/platforms.ts");
  if (opts.allPlatforms) return [allPlatforms()];
  if (opts.platform && opts.platform.length > 0) return opts.platform.map((p) => only(parsePlatform(p)));
  return [defaultMatcher()];
}

/** A single matcher for commands that look at one platform (size, check): the first --platform, or the host's. */
export async function platformMatcher(opts: { platform?: string[]; allPlatforms?: boolean }): Promise<PlatformMatcher> {
  return (await platformMatchers(opts))[0];
}

export function downloadLimit(opts: { maxConcurrentDownloads?: string }): number {
  return limitFlag(opts.maxConcurrentDownloads, "--max-concurrent-downloads", config().maxConcurrentDownloads);
}

export function uploadLimit(opts: { maxConcurrentUploads?: string }): number {
  return limitFlag(opts.maxConcurrentUploads, "--max-concurrent-uploads");
}

function limitFlag(v: string | undefined, flag: string, configured?: number): number {
  if (v === undefined) return configured ?? DEFAULT_MAX_CONCURRENT_DOWNLOADS;
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 1024) {
    throw new UsageError(`invalid ${flag} "${v}": expected 1 to 1024`);
  }
  return Number(v);
}
