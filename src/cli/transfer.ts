/**
 * What fetch and pull share: the download settings from their flags, several
 * references at once under one progress, and errors named by the reference.
 */
import type { Command } from "commander";
import type { Manager } from "../content/content.ts";
import type { Descriptor } from "../descriptor.ts";
import { DistError, errorMessage } from "../errors.ts";
import type { ImageStore } from "../images/image.ts";
import type { PlatformMatcher } from "../images/platforms.ts";
import type { ContentTarget, FetchImageResult } from "../remotes/handlers.ts";
import type { Resolver } from "../remotes/remotes.ts";
import type { UnpackedManifest } from "../unpack/unpacker.ts";
import { reportItemError } from "./args.ts";
import { commandSignal, type GlobalOptions, globals } from "./globals.ts";
import { log } from "./log.ts";
import { addDownloadFlags, addPlatformFlags, downloadLimit, platformMatchers } from "./platform-flags.ts";
import { addProgressFlag, type Progress } from "./progress.ts";
import { addRegistryFlags, registryOptions } from "./registry-flags.ts";

export interface Transfer {
  g: GlobalOptions;
  /** The reference, normalised (docker.io/library/redis:latest); the first of several. */
  name: string;
  /** Every reference given, normalised, each once. */
  names: string[];
  platforms: PlatformMatcher[];
  limit: number;
  signal: AbortSignal;
  resolver: Resolver;
}

/** The flags of a command that downloads an image (fetch, pull): registry, platforms, concurrency and progress. */
export function addTransferFlags(cmd: Command): Command {
  addRegistryFlags(cmd);
  addPlatformFlags(cmd);
  addDownloadFlags(cmd);
  return addProgressFlag(cmd);
}

/** The settings of a download of `refs`, from the flags of addTransferFlags. */
export async function transferFrom(
  refs: string | string[],
  opts: Record<string, unknown>,
  c: Command,
): Promise<Transfer> {
  const g = globals(c);
  const { normalize } = await import("../reference/index.ts");
  const names = [...new Set((Array.isArray(refs) ? refs : [refs]).map((r) => normalize(r)))];
  const name = names[0];
  const platforms = await platformMatchers(opts as { platform?: string[]; allPlatforms?: boolean });
  const limit = downloadLimit(opts as { maxConcurrentDownloads?: string });
  const signal = commandSignal(g);
  const { createResolver } = await import("../remotes/docker/index.ts");
  const resolver = createResolver(registryOptions(opts));
  return { g, name, names, platforms, limit, signal, resolver };
}

export interface RefOutcome<T> {
  name: string;
  result?: T;
  /** The failure, named by the reference. */
  error?: unknown;
}

/**
 * Runs `flow` for every reference at once (they share the progress and, through
 * a FetchGroup, their downloads). With one reference its failure is thrown; with
 * several, one that fails does not stop the others: the JSON summary says the
 * flow failed and reportRefFailures prints each once the progress is done.
 */
export async function eachRef<T>(
  names: readonly string[],
  progress: Progress,
  flow: (name: string) => Promise<T>,
): Promise<RefOutcome<T>[]> {
  const settled = await Promise.allSettled(names.map((n) => flow(n)));
  const outcomes: RefOutcome<T>[] = settled.map((r, i) =>
    r.status === "fulfilled"
      ? { name: names[i], result: r.value }
      : { name: names[i], error: naming(names[i], r.reason) },
  );
  const failed = outcomes.filter((o) => o.error !== undefined);
  if (failed.length > 0 && names.length === 1) throw failed[0].error;
  if (failed.length > 0) progress.fail(new Error(`${failed.length} of ${names.length} references failed`));
  return outcomes;
}

/** Each failed reference on its own line (`dist: <ref>: <why>`), and exit status 1. */
export function reportRefFailures(outcomes: readonly RefOutcome<unknown>[]): void {
  for (const o of outcomes) if (o.error !== undefined) reportItemError(o.error);
}

/** The same error, its message prefixed with the reference unless it names it already. */
export function naming(name: string, err: unknown): unknown {
  const msg = errorMessage(err);
  if (msg.includes(name)) return err;
  if (err instanceof DistError) return new DistError(err.code, `${name}: ${msg}`, { cause: err });
  return new Error(`${name}: ${msg}`, { cause: err });
}

/**
 * The layers `pull --discard-layers` removed from the stored image `name` (as typed),
 * fetched again from where it came from before push or export reads them;
 * nothing happens when none is missing (an export stays offline), and a
 * failure names the missing layers.
 */
export async function fetchDiscardedLayers(o: {
  images: ImageStore;
  content: ContentTarget & Pick<Manager, "update">;
  resolver: Resolver;
  name: string;
  platforms?: PlatformMatcher[];
  progress?: Progress;
  signal: AbortSignal;
}): Promise<void> {
  const { storedName } = await import("../images/names.ts");
  const image = await storedName(o.images, o.name)
    .then((name) => o.images.get(name))
    .catch(() => undefined);
  if (!image) return; // the command's own lookup says so
  const { fetchMissingLayers } = await import("../remotes/refetch.ts");
  const again = await fetchMissingLayers({ ...o, image, progress: o.progress?.tracker }).catch((err) => {
    throw naming(image.name, err);
  });
  if (again.length === 0) return;
  const note = `${image.name}: fetched ${again.length} discarded layers again`;
  if (o.progress) o.progress.print(note);
  else log.info(note);
}

/** A descriptor in the JSON summary: its digest, media type and size. */
export function descriptorSummary(desc: Descriptor): { digest: string; mediaType: string; size: number } {
  return { digest: desc.digest, mediaType: desc.mediaType, size: desc.size };
}

/** A reference's entry in the JSON summary (`images`): what was recorded and unpacked, or why it failed. */
export function imageSummary(
  o: RefOutcome<FetchImageResult & { unpacked?: UnpackedManifest[] }>,
): Record<string, unknown> {
  if (!o.result) return { ref: o.name, error: errorMessage(o.error).replace(/\s*\n\s*/g, " ") };
  const r = o.result;
  const entry: Record<string, unknown> = {
    ref: o.name,
    name: r.name,
    digest: r.target.digest,
    mediaType: r.target.mediaType,
    manifests: r.manifests.map((m) => m.digest),
  };
  if (r.unpacked) {
    entry.unpacked = r.unpacked.map((u) => ({ platform: u.platform, manifest: u.manifest.digest, chainID: u.chainID }));
  }
  return entry;
}
