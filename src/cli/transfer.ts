/** What fetch and pull share: the download settings from their flags, and errors named by the reference. */
import type { Command } from "commander";
import { DistError, errorMessage } from "../errors.ts";
import type { PlatformMatcher } from "../images/platforms.ts";
import type { Resolver } from "../remotes/remotes.ts";
import { commandSignal, type GlobalOptions, globals } from "./globals.ts";
import { addDownloadFlags, addPlatformFlags, downloadLimit, platformMatchers } from "./platform-flags.ts";
import { addRegistryFlags, registryOptions } from "./registry-flags.ts";

export interface Transfer {
  g: GlobalOptions;
  /** The reference, normalised (docker.io/library/redis:latest). */
  name: string;
  platforms: PlatformMatcher[];
  limit: number;
  signal: AbortSignal;
  resolver: Resolver;
}

/** The flags of a command that downloads an image (fetch, pull): registry, platforms and concurrency. */
export function addTransferFlags(cmd: Command): Command {
  addRegistryFlags(cmd);
  addPlatformFlags(cmd);
  return addDownloadFlags(cmd);
}

/** The settings of a download of `ref`, from the flags of addTransferFlags. */
export async function transferFrom(ref: string, opts: Record<string, unknown>, c: Command): Promise<Transfer> {
  const g = globals(c);
  const { normalize } = await import("../reference/index.ts");
  const name = normalize(ref);
  const platforms = await platformMatchers(opts as { platform?: string[]; allPlatforms?: boolean });
  const limit = downloadLimit(opts as { maxConcurrentDownloads?: string });
  const signal = commandSignal(g);
  const { createResolver } = await import("../remotes/docker/index.ts");
  const resolver = createResolver(registryOptions(opts));
  return { g, name, platforms, limit, signal, resolver };
}

/** The same error, its message prefixed with the reference unless it names it already. */
export function naming(name: string, err: unknown): unknown {
  const msg = errorMessage(err);
  if (msg.includes(name)) return err;
  if (err instanceof DistError) return new DistError(err.code, `${name}: ${msg}`, { cause: err });
  return new Error(`${name}: ${msg}`, { cause: err });
}
