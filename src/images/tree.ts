/**
 * The blobs of a stored image for some platforms: a walk of its tree through
 * the content store with the children handler and the platform filter, each
 * blob once, present or missing. What export writes out, what import keeps
 * and checks; the caller decides what a missing blob means. A blob of another
 * size than its descriptor says is an error: nothing could use it.
 */
import type { Provider } from "../content/content.ts";
import type { Descriptor } from "../descriptor.ts";
import { DataLossError, isNotFound } from "../errors.ts";
import { childrenHandler, filterPlatforms } from "./children.ts";
import { walk } from "./handlers.ts";
import { isAttestationManifest, isIndex, isManifest } from "./mediatypes.ts";
import type { PlatformMatcher } from "./platforms.ts";

/** A blob of the tree the store does not hold. */
export interface MissingBlob {
  desc: Descriptor;
  /** The index or manifest that names it (none for the target itself). */
  parent?: Descriptor;
  /** An attestation manifest, or a blob under one (BuildKit's provenance and SBOMs). */
  attestation: boolean;
}

/** An image's blobs for some platforms, as imageTree found them in a store. */
export interface ImageTree {
  /** Every blob present, each once, depth-first in the order the image names them. */
  present: Descriptor[];
  missing: MissingBlob[];
  /** The image manifests present (attestations left out), with the platform their index gives them. */
  manifests: Descriptor[];
}

/**
 * Walks `target` in the store, through the platform filter (one matcher per
 * platform, each keeping its best manifest; allPlatforms() keeps them all).
 * A missing manifest or index hides its subtree, which is then unknown.
 */
export async function imageTree(
  provider: Provider,
  target: Descriptor,
  platforms: PlatformMatcher[],
  opts: { signal?: AbortSignal } = {},
): Promise<ImageTree> {
  const present: Descriptor[] = [];
  const missing: MissingBlob[] = [];
  const manifests: Descriptor[] = [];
  const seen = new Set<string>();
  // where each child was met: its parent, and whether an attestation is above it
  const origin = new Map<string, { parent: Descriptor; attestation: boolean }>();
  const children = filterPlatforms(childrenHandler(provider), platforms);
  await walk(
    async (desc, signal) => {
      if (seen.has(desc.digest)) return [];
      seen.add(desc.digest);
      const from = origin.get(desc.digest);
      const attestation = (from?.attestation ?? false) || isAttestationManifest(desc);
      let size: number;
      try {
        size = (await provider.info(desc.digest)).size;
      } catch (err) {
        if (!isNotFound(err)) throw err;
        missing.push({ desc, parent: from?.parent, attestation });
        return [];
      }
      if (size !== desc.size) {
        throw new DataLossError(`blob ${desc.digest} holds ${size} bytes, but its descriptor says ${desc.size}`);
      }
      present.push(desc);
      if (isManifest(desc.mediaType) && !attestation) manifests.push(desc);
      if (!isManifest(desc.mediaType) && !isIndex(desc.mediaType)) return [];
      const kids = await children(desc, signal);
      for (const k of kids) if (!origin.has(k.digest)) origin.set(k.digest, { parent: desc, attestation });
      return kids;
    },
    [target],
    opts,
  );
  return { present, missing, manifests };
}
