/**
 * The layers an image lacks, fetched again from where it came from: what
 * `pull --discard-layers` removed once unpacked, wanted back by `push`. Only
 * layers under a manifest that is here are fetched (by digest, from the
 * image's own repository), and their manifests are labelled for them again, so
 * that garbage collection keeps them from now on.
 */
import type { Manager } from "../content/content.ts";
import { readBlob } from "../content/helpers.ts";
import type { Descriptor } from "../descriptor.ts";
import { wrapError } from "../errors.ts";
import { labelChildren } from "../images/gc-labels.ts";
import type { Image } from "../images/image.ts";
import { childrenOf } from "../images/manifest.ts";
import { isLayer } from "../images/mediatypes.ts";
import { allPlatforms, type PlatformMatcher } from "../images/platforms.ts";
import { imageTree } from "../images/tree.ts";
import type { ProgressTracker } from "../progress/tracker.ts";
import { type ContentTarget, FetchGroup, fetchHandler } from "./handlers.ts";
import type { Resolver } from "./remotes.ts";

/** Options of fetchMissingLayers. */
export interface FetchMissingLayersOptions {
  resolver: Resolver;
  content: ContentTarget & Pick<Manager, "update">;
  image: Image;
  /** The platforms whose layers are wanted (default: every platform whose manifest is here). */
  platforms?: PlatformMatcher[];
  progress?: ProgressTracker;
  signal?: AbortSignal;
}

/**
 * Fetches the missing layers of `image` (see the module comment); returns
 * those fetched (none when nothing was missing).
 *
 * @example
 * ```ts
 * const fetched = await fetchMissingLayers({ resolver, content, image: await images.get("redis") });
 * ```
 */
export async function fetchMissingLayers(opts: FetchMissingLayersOptions): Promise<Descriptor[]> {
  const { content, image, signal } = opts;
  const tree = await imageTree(content, image.target, opts.platforms ?? [allPlatforms()], { signal });
  const missing = tree.missing.filter((m) => isLayer(m.desc.mediaType) && m.parent !== undefined);
  if (missing.length === 0) return [];
  const fetcher = await opts.resolver.fetcher(image.name);
  const fetch = fetchHandler(content, fetcher, { group: new FetchGroup(), progress: opts.progress });
  await Promise.all(missing.map((m) => fetch(m.desc, signal ?? new AbortController().signal))).catch((err) => {
    const digests = missing.map((m) => m.desc.digest).join(", ");
    throw wrapError(err, `layers not in the content store (${digests}), fetching them again from ${image.name}`);
  });
  const parents = new Map(missing.map((m) => [m.parent?.digest, m.parent as Descriptor]));
  for (const parent of parents.values()) {
    await labelChildren(content, parent, childrenOf(parent, await readBlob(content, parent, { signal })));
  }
  return missing.map((m) => m.desc);
}
