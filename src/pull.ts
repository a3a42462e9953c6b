/**
 * `pull`: the fetch flow with unpacking plugged in. A handler wrapper sees each
 * descriptor as its fetch completes: a manifest gets an Unpacker, its config
 * starts it, each layer tells it the blob is in the store; the fetch flow's
 * stream tap hands a layer's bytes to the unpacker while they download when it
 * is ready for that layer. So layers unpack in order as soon as they and their
 * parents are there, while later layers still download.
 */
import type { Readable } from "node:stream";
import type { Store } from "./content/content.ts";
import type { Descriptor } from "./descriptor.ts";
import type { Digest } from "./digest.ts";
import { type FetchImageResult, fetchImage } from "./fetch.ts";
import type { NoteFn } from "./images/children.ts";
import { type Handler, isSkip } from "./images/handlers.ts";
import type { ImageStore } from "./images/image.ts";
import { parseManifest, readSmallBlob } from "./images/manifest.ts";
import { isAttestationManifest, isManifest, refKey } from "./images/mediatypes.ts";
import type { PlatformMatcher } from "./images/platforms.ts";
import type { ProgressTracker } from "./progress/tracker.ts";
import type { Resolver } from "./remotes/remotes.ts";
import type { Snapshotter } from "./snapshots/snapshotter.ts";
import { type ImageConfigInfo, labelConfig, platformLabel, readImageConfig } from "./unpack/image.ts";
import { type UnpackEvent, Unpacker } from "./unpack/unpacker.ts";

export interface PullOptions {
  resolver: Resolver;
  content: Store;
  images: ImageStore;
  ref: string;
  /** Where layers are unpacked; nothing is unpacked without one. */
  snapshotter?: Snapshotter;
  platforms?: PlatformMatcher[];
  limit?: number;
  signal?: AbortSignal;
  progress?: ProgressTracker;
  labels?: Record<string, string>;
  onNote?: NoteFn;
  onWarning?: (message: string) => void;
  /** Called as the unpacking of one platform's manifest starts. */
  onUnpack?: (platform: string, manifest: Descriptor) => void;
  /** Apply ownership from the layers (default: when root). */
  sameOwner?: boolean;
}

export interface UnpackedManifest {
  manifest: Descriptor;
  platform: string;
  chainID: Digest;
}

export interface PullResult extends FetchImageResult {
  unpacked: UnpackedManifest[];
}

interface Job {
  desc: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
  unpacker: Unpacker;
  configInfo?: ImageConfigInfo;
  announced: boolean;
  starting?: boolean;
}

export async function pull(opts: PullOptions): Promise<PullResult> {
  const ctrl = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, ctrl.signal]) : ctrl.signal;
  const jobs = new Map<string, Job>();
  const sn = opts.snapshotter;
  const progress = opts.progress;
  /** Bytes each layer key downloaded in this run, so extraction does not count them twice. */
  const downloaded = new Map<string, number>();
  let firstError: unknown;
  const failAll = (err: unknown) => {
    firstError ??= err;
    for (const j of jobs.values()) j.unpacker.fail(err);
    ctrl.abort(err);
  };

  const onEvent = (e: UnpackEvent) => {
    if (!progress) return;
    const key = refKey(e.layer);
    const entry = progress.get(key);
    if (e.status === "extracting") {
      // a teed layer still downloading shows its download; extraction follows it
      if (entry && (entry.state === "downloading" || entry.state === "committing")) return;
      if (!downloaded.has(key)) downloaded.set(key, entry ? Math.max(0, entry.offset - entry.startOffset) : 0);
      const d = downloaded.get(key) ?? 0;
      const off = e.offset ?? 0;
      progress.update(key, { state: "extracting", offset: off, startOffset: off - d, total: e.layer.size });
    } else if (e.status === "extracted") {
      const d = downloaded.get(key) ?? (entry ? Math.max(0, entry.offset - entry.startOffset) : 0);
      progress.update(key, { state: "done", startOffset: e.layer.size - d, total: e.layer.size });
    } else if (e.status === "exists" && entry?.state === "waiting") {
      progress.update(key, { state: "exists" });
    }
  };

  const startJob = async (job: Job, s: AbortSignal) => {
    if (job.starting) return;
    job.starting = true;
    try {
      job.configInfo = await readImageConfig(opts.content, job.config, s);
      if (!job.announced) {
        job.announced = true;
        opts.onUnpack?.(platformLabel(job.desc, job.configInfo), job.desc);
      }
      job.unpacker.start(job.configInfo.diffIDs);
    } catch (err) {
      job.unpacker.fail(err);
    }
  };

  const wrapper = (h: Handler): Handler => {
    if (!sn) return h;
    return async (desc, s) => {
      let kids: Descriptor[];
      try {
        kids = await h(desc, s);
      } catch (err) {
        for (const j of jobs.values()) {
          if (j.layers.some((l) => l.digest === desc.digest)) {
            const why = isSkip(err) ? new Error(`layer ${desc.digest} was not fetched (non-distributable)`) : err;
            j.unpacker.fetchFailed(desc.digest, why);
          }
          if (j.config.digest === desc.digest) j.unpacker.fail(err);
        }
        throw err;
      }
      if (isManifest(desc.mediaType) && !isAttestationManifest(desc) && !jobs.has(desc.digest)) {
        const m = parseManifest(await readSmallBlob(opts.content, desc, { signal: s }), desc);
        const layers = m.layers;
        if (layers.length === 0) {
          opts.onNote?.(desc, `manifest ${desc.digest} has no layers: nothing to unpack`);
          return kids;
        }
        const job: Job = { desc, config: m.config, layers, announced: false } as Job;
        job.unpacker = new Unpacker(layers, {
          snapshotter: sn,
          content: opts.content,
          signal,
          sameOwner: opts.sameOwner,
          onWarning: opts.onWarning,
          onEvent,
        });
        // a failed unpack stops the pull; the blobs fetched so far stay in the store
        job.unpacker.wait().catch(failAll);
        jobs.set(desc.digest, job);
      } else {
        for (const j of jobs.values()) {
          if (j.config.digest === desc.digest) void startJob(j, s);
          if (j.layers.some((l) => l.digest === desc.digest)) j.unpacker.available(desc.digest);
        }
      }
      return kids;
    };
  };

  const onLayerStream = (desc: Descriptor, stream: Readable) => {
    for (const j of jobs.values()) {
      if (j.layers.some((l) => l.digest === desc.digest) && j.unpacker.offer(desc.digest, stream)) return;
    }
    stream.destroy();
  };

  let fetched: FetchImageResult;
  try {
    fetched = await fetchImage({
      resolver: opts.resolver,
      store: opts.content,
      ref: opts.ref,
      platforms: opts.platforms,
      limit: opts.limit,
      signal,
      progress,
      onNote: opts.onNote,
      onLayerStream: sn ? onLayerStream : undefined,
      handlerWrapper: wrapper,
      images: opts.images,
      labels: opts.labels,
    });
  } catch (err) {
    failAll(err);
    // let every unpacker remove its temporary snapshot before reporting
    await Promise.allSettled([...jobs.values()].map((j) => j.unpacker.wait()));
    throw firstError ?? err;
  }

  const unpacked: UnpackedManifest[] = [];
  try {
    for (const job of jobs.values()) {
      const chainID = await job.unpacker.wait();
      if (sn) await labelConfig(opts.content, job.config, sn.name, chainID);
      unpacked.push({
        manifest: job.desc,
        platform: job.configInfo ? platformLabel(job.desc, job.configInfo) : "unknown",
        chainID,
      });
    }
  } catch (err) {
    failAll(err);
    await Promise.allSettled([...jobs.values()].map((j) => j.unpacker.wait()));
    throw firstError ?? err;
  }
  return { ...fetched, unpacked };
}
