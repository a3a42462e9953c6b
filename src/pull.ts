/**
 * `pull`: composition only. The fetch flow (remotes/handlers.ts: resolve, the
 * fetch handler, the platform filter) with its handler wrapped by the Unpacker
 * (unpack/unpacker.ts), which also takes the bytes of the layer downloads it
 * can apply while they run; unpack events reach the progress table through
 * the adapter of progress/unpack.ts.
 */
import type { Store } from "./content/content.ts";
import type { Descriptor } from "./descriptor.ts";
import type { NoteFn } from "./images/children.ts";
import type { ImageStore } from "./images/image.ts";
import type { PlatformMatcher } from "./images/platforms.ts";
import type { ProgressTracker } from "./progress/tracker.ts";
import { unpackProgress } from "./progress/unpack.ts";
import { type FetchGroup, type FetchImageResult, fetchImage } from "./remotes/handlers.ts";
import type { Resolver } from "./remotes/remotes.ts";
import type { Snapshotter } from "./snapshots/snapshotter.ts";
import { type UnpackedManifest, Unpacker } from "./unpack/unpacker.ts";

export type { UnpackedManifest } from "./unpack/unpacker.ts";

/** Options of pull: where from (resolver, ref), where to (content, images, snapshotter) and how. */
export interface PullOptions {
  resolver: Resolver;
  content: Store;
  images: ImageStore;
  ref: string;
  /** Where layers are unpacked; nothing is unpacked without one. */
  snapshotter?: Snapshotter;
  platforms?: PlatformMatcher[];
  limit?: number;
  /** Shared with the pulls of other references: one download of each blob, one limit (remotes/handlers.ts). */
  group?: FetchGroup;
  signal?: AbortSignal;
  progress?: ProgressTracker;
  labels?: Record<string, string>;
  onNote?: NoteFn;
  onWarning?: (message: string) => void;
  /** Called as the unpacking of one platform's manifest starts. */
  onUnpack?: (platform: string, manifest: Descriptor) => void;
  /** Apply ownership from the layers (default: when root). */
  sameOwner?: boolean;
  /**
   * Manifests reference their config but not their layers (containerd's
   * discard-unpacked-layers): once the pull's lease ends, an unpacked layer's
   * blob is garbage unless another image references it. The caller collects
   * them (collectGarbage with `only`). Without a snapshotter it changes nothing.
   */
  discardLayers?: boolean;
}

/** What pull did: fetchImage's result and the manifests unpacked with their ChainIDs. */
export interface PullResult extends FetchImageResult {
  unpacked: UnpackedManifest[];
}

/** Pulls an image: resolves `ref`, fetches the blobs of the selected platforms into the content store, records the image, and unpacks its layers into snapshots as they arrive (when a snapshotter is given). */
export async function pull(opts: PullOptions): Promise<PullResult> {
  const stop = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, stop.signal]) : stop.signal;
  const sn = opts.snapshotter;
  const unpacker = sn
    ? new Unpacker({
        snapshotter: sn,
        content: opts.content,
        signal,
        sameOwner: opts.sameOwner,
        onEvent: opts.progress ? unpackProgress(opts.progress) : undefined,
        onWarning: opts.onWarning,
        onNote: opts.onNote,
        onUnpack: opts.onUnpack,
      })
    : undefined;
  let fetched: FetchImageResult;
  try {
    fetched = await fetchImage({
      resolver: opts.resolver,
      store: opts.content,
      ref: opts.ref,
      platforms: opts.platforms,
      limit: opts.limit,
      group: opts.group,
      signal,
      progress: opts.progress,
      onNote: opts.onNote,
      tee: unpacker && ((desc) => unpacker.tee(desc)),
      handlerWrapper: unpacker && ((h) => unpacker.unpack(h)),
      images: opts.images,
      labels: opts.labels,
      sourceLabels: opts.content,
      gcLabels: opts.content,
      discardLayers: opts.discardLayers === true && sn !== undefined,
    });
  } catch (err) {
    if (!unpacker) throw err;
    // the unpacker stops and cleans up; a failure of its own came first and is the one reported
    stop.abort(err);
    await unpacker.wait();
    throw err;
  }
  // a failed unpack stops the pull; the blobs fetched so far stay in the store
  return { ...fetched, unpacked: (await unpacker?.wait()) ?? [] };
}
