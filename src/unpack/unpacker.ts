/**
 * The Unpacker (containerd's pkg/unpack): it wraps a fetch handler and is
 * waited on. The wrapper sees every descriptor of the walk after its handler:
 * a manifest (its children: the config, then the layers) starts a job, its
 * config starts the job's layer loop (layers.ts), each layer tells the job its
 * blob is in the store. So layers unpack in order as soon as they and their
 * parents are there, while later layers still download; `tee` hands the loop a
 * layer's bytes while they download when it is at that layer (one pass).
 *
 * The first failure (of a job, of the walk, or the caller's abort) stops every
 * job and, through the signal handed to the wrapped handler, the walk; wait()
 * reports it once every job has removed its temporary snapshot.
 */
import { join } from "node:path";
import type { Writable } from "node:stream";
import type { Manager, Provider } from "../content/content.ts";
import type { Descriptor } from "../descriptor.ts";
import type { Applier } from "../diff/applier.ts";
import { FileSystemApplier } from "../diff/filesystem.ts";
import type { Digest } from "../digest.ts";
import { InvalidArgumentError } from "../errors.ts";
import type { NoteFn } from "../images/children.ts";
import { platformLabel, readImageConfig } from "../images/config.ts";
import { snapshotLabelKey } from "../images/gc-labels.ts";
import { dispatch, type Handler, isSkip } from "../images/handlers.ts";
import type { Manifest } from "../images/manifest.ts";
import { isAttestationManifest, isManifest } from "../images/mediatypes.ts";
import { localRoot, type Snapshotter } from "../snapshots/snapshotter.ts";
import { type UnpackEvent, unpackLayers } from "./layers.ts";
import { LayerSlot } from "./slot.ts";

export type { UnpackEvent, UnpackStatus } from "./layers.ts";

/** The content store as unpacking uses it: blobs to read, labels to set (containerd's GC references). */
export type UnpackContent = Provider & Pick<Manager, "update">;

/** Options of new Unpacker and unpackManifest. */
export interface UnpackerOptions {
  snapshotter: Snapshotter;
  content: UnpackContent;
  /** Default: FileSystemApplier over `content`. */
  applier?: Applier;
  /** Where the per-ChainID lock files live; default `<snapshotter root>/locks` for a local snapshotter. */
  lockDir?: string;
  signal?: AbortSignal;
  /** Apply ownership from the tar (default: when root). */
  sameOwner?: boolean;
  /** Flush the filesystem once per layer before its commit (default true). */
  sync?: boolean;
  onEvent?: (e: UnpackEvent) => void;
  onWarning?: (message: string) => void;
  /** About a manifest left alone (no layers). */
  onNote?: NoteFn;
  /** As the unpacking of one platform's manifest starts. */
  onUnpack?: (platform: string, manifest: Descriptor) => void;
  /**
   * For one manifest whose lower layers are there: start at layer `index`, on
   * the snapshot `parent` whatever its name (a remote-snapshotter request's).
   */
  from?: { index: number; parent?: string };
}

/** A manifest unpacked: its platform and the ChainID of its top snapshot. */
export interface UnpackedManifest {
  manifest: Descriptor;
  platform: string;
  chainID: Digest;
}

/** The unpacking of one manifest. */
class Job {
  readonly manifest: Descriptor;
  readonly config: Descriptor;
  readonly slots: LayerSlot[];
  /** The layer the loop works on next: a download of it is worth teeing (the first it unpacks, until the loop starts). */
  cursor = 0;
  #started = false;
  readonly #done = Promise.withResolvers<UnpackedManifest>();

  constructor(manifest: Descriptor, config: Descriptor, layers: Descriptor[]) {
    this.manifest = manifest;
    this.config = config;
    this.slots = layers.map((l) => new LayerSlot(l));
  }

  get done(): Promise<UnpackedManifest> {
    return this.#done.promise;
  }

  /** Runs the job once. */
  start(run: () => Promise<UnpackedManifest>): void {
    if (this.#started) return;
    this.#started = true;
    run().then(this.#done.resolve, (err: unknown) => {
      for (const s of this.slots) s.release();
      this.#done.reject(err);
    });
  }

  /** Stops the job: before it starts, or (its blobs will not come) while its loop runs. */
  stop(err: unknown): void {
    if (!this.#started) {
      this.#started = true;
      this.#done.reject(err);
    }
    for (const s of this.slots) s.failed(err);
  }

  tee(desc: Descriptor): Writable | undefined {
    const slot = this.slots[this.cursor];
    return slot?.desc.digest === desc.digest ? slot.tee() : undefined;
  }
}

/** Unpacks layers into snapshots named by ChainID while a fetch runs: unpack(handler) wraps the fetch handler, tee(desc) takes a download's bytes, wait() returns the unpacked manifests. */
export class Unpacker {
  readonly #opts: UnpackerOptions;
  readonly #applier: Applier;
  readonly #lockDir: string | undefined;
  /** Aborted at the first failure: stops the jobs and the walk. */
  readonly #stop = new AbortController();
  readonly #signal: AbortSignal;
  readonly #jobs = new Map<string, Job>();
  readonly #walks = new WeakSet<AbortSignal>();
  #failure: { err: unknown } | undefined;

  constructor(opts: UnpackerOptions) {
    this.#opts = opts;
    this.#applier = opts.applier ?? new FileSystemApplier(opts.content);
    const root = localRoot(opts.snapshotter);
    this.#lockDir = opts.lockDir ?? (root ? join(root, "locks") : undefined);
    this.#signal = opts.signal ? AbortSignal.any([opts.signal, this.#stop.signal]) : this.#stop.signal;
    this.#watch(this.#signal);
  }

  /** Wraps the walk's handler (containerd's Unpack): see the module comment. */
  unpack(h: Handler): Handler {
    return async (desc, signal) => {
      this.#watch(signal);
      let children: Descriptor[];
      try {
        children = await h(desc, AbortSignal.any([signal, this.#stop.signal]));
      } catch (err) {
        this.#notFetched(desc, err);
        throw err;
      }
      if (isManifest(desc.mediaType) && !isAttestationManifest(desc)) this.#add(desc, children);
      else this.#fetched(desc);
      return children;
    };
  }

  /**
   * For the fetch, as a fresh download of `desc` starts: a stream for its bytes
   * when a job's loop is at that layer, else undefined (see remotes/handlers.ts Tee).
   */
  tee(desc: Descriptor): Writable | undefined {
    for (const job of this.#jobs.values()) {
      const stream = job.tee(desc);
      if (stream) return stream;
    }
    return undefined;
  }

  /**
   * After the walk: every manifest unpacked, in the order they were met. The
   * first failure is thrown once every job has cleaned up.
   */
  async wait(): Promise<UnpackedManifest[]> {
    const settled = await Promise.allSettled([...this.#jobs.values()].map((j) => j.done));
    if (this.#failure) throw this.#failure.err;
    return settled.map((r) => {
      if (r.status === "rejected") throw r.reason;
      return r.value;
    });
  }

  /** Once the walk (or the caller) aborts, no blob will come: the jobs stop. */
  #watch(signal: AbortSignal): void {
    if (this.#walks.has(signal)) return;
    this.#walks.add(signal);
    if (signal.aborted) this.#fail(signal.reason);
    else signal.addEventListener("abort", () => this.#fail(signal.reason), { once: true });
  }

  #fail(err: unknown): void {
    if (this.#failure) return;
    this.#failure = { err };
    this.#stop.abort(err);
    for (const job of this.#jobs.values()) job.stop(err);
  }

  /** A manifest and its children as the handler returned them: the config, then the layers. */
  #add(desc: Descriptor, children: Descriptor[]): void {
    if (this.#jobs.has(desc.digest)) return;
    const [config, ...layers] = children;
    if (!config || layers.length === 0) {
      this.#opts.onNote?.(desc, `manifest ${desc.digest} has no layers: nothing to unpack`);
      return;
    }
    const job = new Job(desc, config, layers);
    job.cursor = this.#opts.from?.index ?? 0;
    this.#jobs.set(desc.digest, job);
    job.done.catch((err: unknown) => this.#fail(err));
    if (this.#failure) job.stop(this.#failure.err);
  }

  /** A blob is in the store: a job's config (its loop starts) or layer. */
  #fetched(desc: Descriptor): void {
    for (const job of this.#jobs.values()) {
      if (job.config.digest === desc.digest) job.start(() => this.#run(job));
      for (const s of job.slots) if (s.desc.digest === desc.digest) s.stored();
    }
  }

  #notFetched(desc: Descriptor, err: unknown): void {
    for (const job of this.#jobs.values()) {
      for (const s of job.slots) {
        if (s.desc.digest !== desc.digest) continue;
        s.failed(isSkip(err) ? new Error(`layer ${desc.digest} was not fetched (non-distributable)`) : err);
      }
      if (job.config.digest === desc.digest) job.stop(err);
    }
  }

  async #run(job: Job): Promise<UnpackedManifest> {
    const o = this.#opts;
    const config = await readImageConfig(o.content, job.config, this.#signal);
    const platform = platformLabel(job.manifest, config);
    o.onUnpack?.(platform, job.manifest);
    const chainID = await unpackLayers(
      job.slots,
      config.diffIDs,
      {
        snapshotter: o.snapshotter,
        applier: this.#applier,
        content: o.content,
        lockDir: this.#lockDir,
        signal: this.#signal,
        sameOwner: o.sameOwner,
        sync: o.sync,
        onEvent: o.onEvent,
        onWarning: o.onWarning,
        from: o.from,
      },
      (i) => {
        job.cursor = i;
      },
    );
    // containerd's GC edge from the config to the image's top snapshot
    const key = snapshotLabelKey(o.snapshotter.name);
    await o.content.update(job.config.digest, { [key]: chainID }, [`labels.${key}`]);
    return { manifest: job.manifest, platform, chainID };
  }
}

/**
 * Unpacks a manifest whose config and layers are all in the content store
 * (`dist rootfs unpack`, `dist run`): the Unpacker over a walk that only names
 * the manifest's children.
 */
export async function unpackManifest(
  desc: Descriptor,
  manifest: Manifest,
  opts: UnpackerOptions,
): Promise<UnpackedManifest> {
  if (manifest.layers.length === 0) throw new InvalidArgumentError(`manifest ${desc.digest} has no layers to unpack`);
  const unpacker = new Unpacker(opts);
  const stored: Handler = async (d) => (d.digest === desc.digest ? [manifest.config, ...manifest.layers] : []);
  let walkFailure: { err: unknown } | undefined;
  await dispatch(unpacker.unpack(stored), [desc], { signal: opts.signal }).catch((err: unknown) => {
    walkFailure = { err };
  });
  // a failed walk (an abort) has stopped the unpacker: wait() reports the first failure once cleaned up
  const [unpacked] = await unpacker.wait();
  if (walkFailure) throw walkFailure.err;
  return unpacked;
}
