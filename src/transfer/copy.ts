/**
 * `copy`: an image from one registry to another (or to another repository of
 * the same one), streamed straight through: each blob is read from the source
 * registry while it is uploaded to the destination, never stored here.
 *
 * Why not through the store: a copy needs nothing kept, and the store would
 * cost a write, an fsync and a read of every byte (the disk is what bounds a
 * pull here); streaming keeps memory flat (the fetcher's 64 KiB read-ahead and
 * the socket buffers per blob in flight) and each byte crosses the machine
 * once. The source fetcher verifies a blob's digest while it flows and fails
 * it before the upload is committed; an upload resumed mid-way reopens the
 * source with a Range request there, and the destination verifies the digest
 * on commit. Within one registry, blobs are mounted from the source
 * repository instead.
 *
 * Manifests go byte for byte (digests kept); with `referrers`, the OCI 1.1
 * referrers of every manifest copied follow (and theirs), found through the
 * referrers API or the tag schema, and listed on a destination without the
 * API in its tag schema.
 */
import { readVerified } from "../content/helpers.ts";
import type { Descriptor } from "../descriptor.ts";
import type { NoteFn } from "../images/children.ts";
import { refKey } from "../images/mediatypes.ts";
import { defaultMatcher, type PlatformMatcher } from "../images/platforms.ts";
import type { ProgressTracker } from "../progress/tracker.ts";
import { formatReference, parseReference } from "../reference/reference.ts";
import type { DockerFetcher } from "../remotes/docker/fetcher.ts";
import type { DockerPusher } from "../remotes/docker/pusher.ts";
import type { DockerResolver } from "../remotes/docker/resolver.ts";
import type { PushStatus } from "../remotes/remotes.ts";
import { pushTree, type TransferSource } from "./push-tree.ts";
import { selectPlatforms } from "./select.ts";

/** What copyImage copies, from where to where, and how. */
export interface CopyImageOptions {
  resolver: DockerResolver;
  /** `registry/repository[:tag|@digest]` to copy from. */
  src: string;
  /** `registry/repository[:tag|@digest]` to copy to. */
  dst: string;
  /** One matcher per platform (default: the host's); allPlatforms() keeps an index whole. */
  platforms?: PlatformMatcher[];
  /** Copy the OCI 1.1 referrers (signatures, SBOMs, attestations) too. */
  referrers?: boolean;
  /** Blobs in flight at once (default 3). */
  limit?: number;
  signal?: AbortSignal;
  progress?: ProgressTracker;
  onNote?: NoteFn;
}

/** What copyImage did. */
export interface CopyImageResult {
  /** The normalised source and destination. */
  src: string;
  dst: string;
  /** What went under the destination's tag. */
  desc: Descriptor;
  /** "no": the source's root; "manifest": one platform's manifest of its index; "index": its index narrowed. */
  changed: "no" | "manifest" | "index";
  /** Manifests and indexes copied, children first (referrers included). */
  manifests: Descriptor[];
  /** Referrer manifests copied. */
  referrers: number;
}

/** A registry as a transfer source: verified manifests, blobs by Range, mounts within one registry. */
export function registrySource(fetcher: DockerFetcher, mount?: string): TransferSource {
  return {
    async manifest(desc, signal) {
      return readVerified(await fetcher.fetch(desc, { signal }), desc, refKey(desc));
    },
    open: (desc, offset, signal) => fetcher.fetch(desc, { offset, signal }),
    mountFrom: mount ? async () => mount : undefined,
  };
}

/**
 * Copies an image from one registry to another, streamed straight through (see
 * the module's comment).
 *
 * @example
 * const r = await copyImage({ resolver: createResolver(), src: "docker.io/library/busybox:latest",
 *   dst: "registry.example.com/mirror/busybox:latest", platforms: [allPlatforms()], referrers: true });
 */
export async function copyImage(opts: CopyImageOptions): Promise<CopyImageResult> {
  const { resolver, progress, signal } = opts;
  const srcRef = parseReference(opts.src);
  const dstRef = parseReference(opts.dst);
  const dst = formatReference(dstRef);
  progress?.update(formatReference(srcRef), { state: "resolving" });
  const resolved = await resolver.resolve(opts.src, { signal });
  progress?.update(formatReference(srcRef), { state: "resolved" });
  const fetcher = await resolver.fetcher(resolved.name);
  const pusher = await resolver.pusher(dst);
  const source = registrySource(fetcher, srcRef.domain === dstRef.domain ? srcRef.path : undefined);
  const rootBytes = await source.manifest(resolved.desc, signal);
  const matchers = opts.platforms ?? [defaultMatcher()];
  const selection = await selectPlatforms(resolved.desc, rootBytes, {
    matchers,
    named: !matchers.some((m) => m.all),
    read: (d) => source.manifest(d, signal),
    expected: dstRef.digest,
    signal,
    onNote: opts.onNote,
  });
  const common = { source, pusher, limit: opts.limit, signal, progress, onNote: opts.onNote };
  const tree = await pushTree({ ...common, root: selection, tag: dstRef.digest ? undefined : dstRef.tag });
  const manifests = [...tree.manifests];
  let referrers = 0;
  if (opts.referrers) {
    const ends = { src: fetcher, dst: await resolver.fetcher(dst), pusher };
    const copied = await copyReferrers(ends, tree.manifests, (root) => pushTree({ ...common, root }), signal);
    manifests.push(...copied.manifests);
    referrers = copied.count;
  }
  return { src: resolved.name, dst, desc: selection.desc, changed: selection.changed, manifests, referrers };
}

/**
 * Copies the referrers of `subjects`, then theirs, each once. A destination
 * without the referrers API gets each listed in its subject's tag schema index.
 */
async function copyReferrers(
  ends: { src: DockerFetcher; dst: DockerFetcher; pusher: DockerPusher },
  subjects: Descriptor[],
  push: (root: {
    desc: Descriptor;
    bytes: Buffer;
  }) => Promise<{ manifests: Descriptor[]; status: Map<string, PushStatus> }>,
  signal?: AbortSignal,
): Promise<{ manifests: Descriptor[]; count: number }> {
  const seen = new Set(subjects.map((d) => d.digest));
  const queue = [...subjects];
  const manifests: Descriptor[] = [];
  let count = 0;
  let dstHasApi: boolean | undefined;
  const { src, dst, pusher } = ends;
  const source = registrySource(src);
  for (let subject = queue.shift(); subject; subject = queue.shift()) {
    const found = await src.referrers(subject.digest, { signal });
    let listed: Descriptor[] | undefined;
    for (const r of found.manifests) {
      if (!seen.has(r.digest)) {
        seen.add(r.digest);
        const root = { mediaType: r.mediaType, digest: r.digest, size: r.size };
        const tree = await push({ desc: root, bytes: await source.manifest(root, signal) });
        manifests.push(...tree.manifests);
        queue.push(...tree.manifests);
        count++;
      }
      if (dstHasApi) continue;
      if (listed === undefined) {
        const at = await dst.referrers(subject.digest, { signal });
        dstHasApi = at.api;
        listed = at.manifests;
        if (dstHasApi) continue;
      }
      if (await pusher.addReferrerToTag(subject, r, listed, signal)) listed.push(r);
    }
  }
  return { manifests, count };
}
