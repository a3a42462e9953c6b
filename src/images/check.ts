/**
 * Questions about an image that only need its content: what is present and
 * what is missing for a platform, how large it is, which platforms it offers.
 * Each is a walk with the children handler and the platform filter.
 */
import type { Provider } from "../content/content.ts";
import { readBlob } from "../content/helpers.ts";
import type { Descriptor, Platform } from "../descriptor.ts";
import { isNotFound } from "../errors.ts";
import { MAX_CONFIG_SIZE } from "../oci/image-config.ts";
import { childrenHandler, filterPlatforms } from "./children.ts";
import { walk } from "./handlers.ts";
import { isAttestationManifest, isConfig, isIndex, isManifest } from "./mediatypes.ts";
import { allPlatforms, formatPlatform, type PlatformMatcher } from "./platforms.ts";

/** What check found: the blobs an image needs for a platform, which are present and which missing. */
export interface CheckResult {
  /** Every required blob is present (and the walk could see them all). */
  complete: boolean;
  /** False when a manifest or index is missing, so the full set of required blobs is unknown. */
  known: boolean;
  required: Descriptor[];
  present: Descriptor[];
  missing: Descriptor[];
  requiredSize: number;
  presentSize: number;
}

/** containerd's images.Check: which blobs of `target` for `platform` the provider holds. */
export async function check(
  provider: Provider,
  target: Descriptor,
  platform: PlatformMatcher,
  opts: { signal?: AbortSignal } = {},
): Promise<CheckResult> {
  const required: Descriptor[] = [];
  const present: Descriptor[] = [];
  const missing: Descriptor[] = [];
  const seen = new Set<string>();
  let known = true;
  // a nested index that is missing is walked to, and found missing, when nothing else matched
  const children = filterPlatforms(childrenHandler(provider), [platform], undefined, { missing: "keep" });
  await walk(
    async (desc, signal) => {
      if (seen.has(desc.digest)) return [];
      seen.add(desc.digest);
      required.push(desc);
      try {
        await provider.info(desc.digest);
      } catch (err) {
        if (!isNotFound(err)) throw err;
        missing.push(desc);
        if (isManifest(desc.mediaType) || isIndex(desc.mediaType)) known = false;
        return [];
      }
      present.push(desc);
      return children(desc, signal);
    },
    [target],
    opts,
  );
  const sum = (ds: Descriptor[]) => ds.reduce((n, d) => n + d.size, 0);
  return {
    complete: known && missing.length === 0,
    known,
    required,
    present,
    missing,
    requiredSize: sum(required),
    presentSize: sum(present),
  };
}

/**
 * The packed size of an image for `platform` (all platforms with allPlatforms()):
 * every distinct blob the walk reaches, manifests and config included, as it
 * would be pushed. Blobs under a missing manifest cannot be counted.
 */
export async function imageSize(
  provider: Provider,
  target: Descriptor,
  platform: PlatformMatcher,
  opts: { signal?: AbortSignal } = {},
): Promise<number> {
  const r = await check(provider, target, platform, opts);
  return r.requiredSize;
}

/**
 * What `dist images` shows of an image's size: `size`, the packed size for
 * `platform` (what a pull here stores), and `presentSize`, all of its content
 * present here. For an image without that platform, or whose manifest for it
 * was never fetched, `size` is the present size.
 */
export async function imageSizes(
  provider: Provider,
  target: Descriptor,
  platform: PlatformMatcher,
  opts: { signal?: AbortSignal } = {},
): Promise<{ size: number; presentSize: number }> {
  const { presentSize } = await check(provider, target, allPlatforms(), opts);
  try {
    const mine = await check(provider, target, platform, opts);
    return { size: mine.known ? mine.requiredSize : presentSize, presentSize };
  } catch (err) {
    // no manifest for the platform
    if (!isNotFound(err)) throw err;
    return { size: presentSize, presentSize };
  }
}

/** The platforms an image offers as declared: those its index names (attestations left out), or its config's. */
export async function imagePlatforms(
  provider: Provider,
  target: Descriptor,
  opts: { signal?: AbortSignal } = {},
): Promise<Platform[]> {
  const found = new Map<string, Platform>();
  // as the image declares them (linux/arm64/v8 stays so), like `ctr images ls`
  const add = (p: Platform) => {
    found.set(formatPlatform(p), p);
  };
  await walk(
    async (desc, signal) => {
      if (isIndex(desc.mediaType)) {
        const children = await childrenHandler(provider)(desc, signal).catch((err) => {
          if (isNotFound(err)) return [];
          throw err;
        });
        const nested: Descriptor[] = [];
        for (const c of children) {
          if (isAttestationManifest(c)) continue;
          if (c.platform) add(c.platform);
          else nested.push(c);
        }
        return nested;
      }
      if (isManifest(desc.mediaType)) {
        if (desc.platform) {
          add(desc.platform);
          return [];
        }
        const children = await childrenHandler(provider)(desc, signal).catch((err) => {
          if (isNotFound(err)) return [];
          throw err;
        });
        return children.filter((c) => isConfig(c.mediaType));
      }
      if (isConfig(desc.mediaType)) {
        try {
          const config = JSON.parse(
            (await readBlob(provider, desc, { max: MAX_CONFIG_SIZE, signal })).toString("utf8"),
          ) as Record<string, unknown>;
          if (typeof config.os === "string" && typeof config.architecture === "string") {
            const p: Platform = { os: config.os, architecture: config.architecture };
            if (typeof config.variant === "string" && config.variant !== "") p.variant = config.variant;
            add(p);
          }
        } catch (err) {
          if (!isNotFound(err) && !(err instanceof SyntaxError)) throw err;
        }
      }
      return [];
    },
    [target],
    opts,
  );
  return [...found.values()].sort((a, b) => formatPlatform(a).localeCompare(formatPlatform(b)));
}
