/**
 * Handlers that decide where a walk goes: the children of manifests and
 * indexes read from a content provider, and the platform filter that keeps
 * only the manifests wanted, noting what it leaves out instead of failing.
 */
import type { Provider } from "../content/content.ts";
import { readBlob } from "../content/helpers.ts";
import type { Descriptor, Platform } from "../descriptor.ts";
import { NotFoundError } from "../errors.ts";
import type { Handler } from "./handlers.ts";
import { childrenOf, refuseSchema1 } from "./manifest.ts";
import { isAttestationManifest, isIndex, isManifest } from "./mediatypes.ts";
import { formatPlatform, normalize, type PlatformMatcher } from "./platforms.ts";

/** Receives a one-line note about a descriptor the walk leaves out or cannot read. */
export type NoteFn = (desc: Descriptor, message: string) => void;

/** Children of OCI and Docker manifests and indexes, read from `provider`; nothing for other kinds. */
export function childrenHandler(provider: Provider): Handler {
  return async (desc, signal) => {
    refuseSchema1(desc);
    if (!isManifest(desc.mediaType) && !isIndex(desc.mediaType)) return [];
    const bytes = await readBlob(provider, desc, { signal });
    return childrenOf(desc, bytes);
  };
}

/**
 * Keeps, among an index's manifests, the best one for each matcher (containerd's
 * FilterPlatforms + LimitManifests). Attestation manifests and other platforms
 * are noted and left out; descriptors without a platform pass. An index with
 * manifests of which none matches is a NotFoundError naming what it offers.
 */
export function filterPlatforms(h: Handler, matchers: PlatformMatcher[], note?: NoteFn): Handler {
  const all = matchers.some((m) => m.all);
  return async (desc, signal) => {
    const children = await h(desc, signal);
    if (all || !isIndex(desc.mediaType)) return children;
    const keep = new Set<Descriptor>();
    const candidates: Array<Descriptor & { platform: Platform }> = [];
    let withPlatform = 0;
    for (const c of children) {
      if (isAttestationManifest(c)) withPlatform++;
      else if (c.platform) {
        withPlatform++;
        candidates.push(c as Descriptor & { platform: Platform });
      } else keep.add(c);
    }
    const chosen = new Set<Descriptor>();
    for (const m of matchers) {
      let best: (Descriptor & { platform: Platform }) | undefined;
      for (const c of candidates) {
        if (m.match(c.platform) && (!best || m.less(c.platform, best.platform))) best = c;
      }
      if (best) chosen.add(best);
    }
    if (withPlatform > 0 && chosen.size === 0 && keep.size === 0) {
      const offered = [...new Set(candidates.map((c) => formatPlatform(normalize(c.platform))))];
      throw new NotFoundError(
        `no manifest for platform ${matchers.map(String).join(",")} in index ${desc.digest} (it has: ${offered.join(", ") || "none"})`,
      );
    }
    if (note) {
      for (const c of children) {
        if (isAttestationManifest(c)) note(c, `skipped attestation manifest ${c.digest}`);
      }
    }
    return children.filter((c) => keep.has(c) || chosen.has(c));
  };
}
