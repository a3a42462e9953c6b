/**
 * Handlers that decide where a walk goes: the children of manifests and
 * indexes read from a content provider, and the platform filter that keeps
 * only the manifests wanted, noting what it leaves out instead of failing.
 */
import type { Provider } from "../content/content.ts";
import { readBlob } from "../content/helpers.ts";
import type { Descriptor } from "../descriptor.ts";
import { InvalidArgumentError } from "../errors.ts";
import type { Handler } from "./handlers.ts";
import { childrenOf, refuseSchema1 } from "./manifest.ts";
import { isIndex, isManifest } from "./mediatypes.ts";
import type { PlatformMatcher } from "./platforms.ts";
import { MAX_INDEX_DEPTH, type SelectOptions, selectManifests } from "./select.ts";

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
 * Keeps, below an index, the way to the best manifest for each matcher
 * (select.ts: through nested indexes, attestations and artifacts left out and
 * noted), and what is neither a manifest nor an index; everything with
 * allPlatforms(). The selection is made at the first index the walk meets,
 * reading the indexes nested in it through `h` (which fetches them in a pull:
 * `h` returns each index's children once, from memory, as the walk reaches
 * it). An index whose manifests all fail to match is a NotFoundError naming
 * what it offers.
 */
export function filterPlatforms(
  h: Handler,
  matchers: PlatformMatcher[],
  note?: NoteFn,
  opts: Pick<SelectOptions, "missing"> = {},
): Handler {
  const all = matchers.some((m) => m.all);
  /** Index digest → the children to follow, from the selection made at the top of its tree. */
  const follow = new Map<string, Set<string>>();
  const read = new Map<string, Descriptor[]>();
  /** With allPlatforms(): how deep each index is, against depth bombs. */
  const depth = new Map<string, number>();
  return async (desc, signal) => {
    if (!isIndex(desc.mediaType)) return h(desc, signal);
    if (all) {
      const d = depth.get(desc.digest) ?? 1;
      const children = await h(desc, signal);
      for (const c of children) {
        if (!isIndex(c.mediaType)) continue;
        if (d >= MAX_INDEX_DEPTH) {
          throw new InvalidArgumentError(`index ${desc.digest}: indexes nested more than ${MAX_INDEX_DEPTH} deep`);
        }
        depth.set(c.digest, d + 1);
      }
      return children;
    }
    let keep = follow.get(desc.digest);
    let children = read.get(desc.digest);
    if (!keep || !children) {
      const sel = await selectManifests(h, desc, matchers, { signal, note, missing: opts.missing });
      for (const [digest, set] of sel.follow) follow.set(digest, set);
      for (const [digest, kids] of sel.children) read.set(digest, kids);
      keep = sel.follow.get(desc.digest) ?? new Set();
      children = sel.children.get(desc.digest) ?? [];
    }
    const chosen = keep;
    return children.filter((c) => chosen.has(c.digest) || (!isIndex(c.mediaType) && !isManifest(c.mediaType)));
  };
}
