/**
 * The one choice of an image manifest for a platform, through indexes nested
 * in indexes (OCI allows an index to hold indexes). Every command that picks a
 * manifest goes through selectManifests: the pull and fetch walk (through the
 * platform filter of children.ts), `images check` and the sizes of `dist
 * images`, and selectManifest (lookup.ts) for bundle, run and rootfs unpack.
 *
 * The rules: every image manifest reachable from the root through indexes is a
 * candidate, except attestation manifests and artifacts (a descriptor whose
 * artifactType is not an image config); a descriptor's platform, or else that
 * of the nearest index descriptor above it, must match; an index descriptor
 * whose platform does not match is not read. Among the matches the matcher's
 * `less` ranks (containerd's order), ties going to the first in the walk
 * (depth-first, in index order); manifests without any platform come after
 * every match, in walk order, as containerd's LimitManifests puts them.
 * Digests make true cycles impossible, but not depth or breadth bombs: indexes
 * nest at most MAX_INDEX_DEPTH deep and one selection reads at most
 * MAX_INDEXES of them.
 */
import type { Descriptor, Platform } from "../descriptor.ts";
import { InvalidArgumentError, isNotFound, NotFoundError } from "../errors.ts";
import type { NoteFn } from "./children.ts";
import { isAttestationManifest, isConfig, isIndex, isManifest } from "./mediatypes.ts";
import { formatPlatform, normalize, type PlatformMatcher } from "./platforms.ts";

/** Levels of indexes, the root's included: real images use two at most. */
export const MAX_INDEX_DEPTH = 8;
/** Indexes read for one selection, the root's included. */
export const MAX_INDEXES = 1000;

/**
 * An index's children: read from a store, or fetched (the pull's fetch
 * handler). Throwing NotFound marks the index as missing when the selection
 * is tolerant (`missing: "keep"`).
 */
export type IndexChildren = (index: Descriptor, signal: AbortSignal) => Promise<Descriptor[]>;

/** How selectManifests reads: cancellation, notes, and what a nested index it cannot read means. */
export interface SelectOptions {
  signal?: AbortSignal;
  /** Told about each attestation manifest and artifact left out. */
  note?: NoteFn;
  /**
   * "fail" (the default): a nested index that cannot be read is an error.
   * "keep": it is kept, unread, on the way when nothing was found elsewhere
   * (`images check` reports it missing).
   */
  missing?: "fail" | "keep";
}

/** What selectManifests chose, and the indexes it read on the way. */
export interface Selection {
  /** The chosen manifests: one per matcher that found one, in matcher order, without repeats. */
  manifests: Descriptor[];
  /** For each index on the way to a chosen manifest (the root included), the children to follow. */
  follow: Map<string, Set<string>>;
  /** Every index read, with its children. */
  children: Map<string, Descriptor[]>;
  /** The platforms the image offers (attestations left out), for a message when nothing matched. */
  offered: string[];
}

/** A manifest that may be chosen, and the indexes above it. */
interface Candidate {
  desc: Descriptor;
  platform?: Platform;
  /** The indexes from the root down to the one holding it. */
  path: Descriptor[];
}

/** True for a descriptor of an artifact rather than an image (OCI 1.1 `artifactType`). */
export function isArtifact(desc: Descriptor): boolean {
  return desc.artifactType !== undefined && !isConfig(desc.artifactType);
}

/**
 * Chooses, below `root` (an index), the best image manifest for each matcher.
 * An index with image manifests of which none matches is a NotFoundError
 * naming what it offers; one without any image manifest chooses nothing.
 */
export async function selectManifests(
  childrenOf: IndexChildren,
  root: Descriptor,
  matchers: PlatformMatcher[],
  opts: SelectOptions = {},
): Promise<Selection> {
  const signal = opts.signal ?? new AbortController().signal;
  const children = new Map<string, Descriptor[]>();
  const candidates: Candidate[] = [];
  const unreadable: Descriptor[][] = [];
  const offered = new Set<string>();
  let images = 0;
  let read = 0;
  const wanted = (p: Platform) => matchers.some((m) => m.match(p));

  const visit = async (index: Descriptor, path: Descriptor[], inherited?: Platform): Promise<void> => {
    if (path.length >= MAX_INDEX_DEPTH) {
      throw new InvalidArgumentError(
        `index ${root.digest}: indexes nested more than ${MAX_INDEX_DEPTH} deep (at ${index.digest})`,
      );
    }
    if (++read > MAX_INDEXES) {
      throw new InvalidArgumentError(`index ${root.digest}: more than ${MAX_INDEXES} indexes below it`);
    }
    signal.throwIfAborted();
    let kids = children.get(index.digest);
    if (!kids) {
      try {
        kids = await childrenOf(index, signal);
      } catch (err) {
        if (opts.missing === "keep" && isNotFound(err) && path.length > 0) {
          unreadable.push([...path, index]);
          return;
        }
        throw err;
      }
      children.set(index.digest, kids);
    }
    const here = [...path, index];
    for (const kid of kids) {
      if (isAttestationManifest(kid)) {
        opts.note?.(kid, `skipped attestation manifest ${kid.digest}`);
        continue;
      }
      const platform = kid.platform ?? inherited;
      if (isIndex(kid.mediaType)) {
        if (platform && !wanted(platform)) {
          offered.add(formatPlatform(normalize(platform)));
          continue;
        }
        await visit(kid, here, platform);
      } else if (isManifest(kid.mediaType)) {
        if (isArtifact(kid)) {
          opts.note?.(kid, `skipped artifact ${kid.digest} (${kid.artifactType})`);
          continue;
        }
        images++;
        if (platform) offered.add(formatPlatform(normalize(platform)));
        candidates.push({ desc: kid, platform, path: here });
      }
    }
  };
  await visit(root, []);

  const chosen: Candidate[] = [];
  for (const m of matchers) {
    let best: Candidate | undefined;
    for (const c of candidates) {
      if (c.platform && m.match(c.platform) && (!best?.platform || m.less(c.platform, best.platform))) best = c;
    }
    best ??= candidates.find((c) => !c.platform);
    if (best && !chosen.includes(best)) chosen.push(best);
  }
  const follow = new Map<string, Set<string>>();
  const keep = (path: Descriptor[], leaf: Descriptor) => {
    const line = [...path, leaf];
    for (let i = 0; i + 1 < line.length; i++) {
      let set = follow.get(line[i].digest);
      if (!set) {
        set = new Set();
        follow.set(line[i].digest, set);
      }
      set.add(line[i + 1].digest);
    }
  };
  for (const c of chosen) keep(c.path, c.desc);
  if (chosen.length === 0) {
    // what could not be read may hold the match: kept, so whoever walks on finds it missing
    for (const path of unreadable) keep(path.slice(0, -1), path[path.length - 1]);
    if ((images > 0 || offered.size > 0) && unreadable.length === 0) {
      throw new NotFoundError(
        `no manifest for platform ${matchers.map(String).join(",")} in index ${root.digest} (it has: ${[...offered].join(", ") || "none"})`,
      );
    }
  }
  return { manifests: chosen.map((c) => c.desc), follow, children, offered: [...offered] };
}
