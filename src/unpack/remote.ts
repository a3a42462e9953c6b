/**
 * Layers unpacked from the registry for a client that asks for one snapshot
 * (containerd's remote-snapshotter protocol, as stargz and nydus answer it):
 * containerd's unpacker prepares each layer's snapshot with labels naming the
 * image, its manifest and the layer, and the snapshot to make (the layer's
 * ChainID); a snapshotter that makes it answers AlreadyExists, and containerd
 * neither fetches nor applies that layer.
 *
 * RemoteUnpacker makes such a snapshot with dist's own pipeline: the manifest
 * (by digest) and its config are fetched into the content store, then the
 * Unpacker walks the manifest with the fetch handler, as `pull` does, from the
 * asked layer up: the layers below are there already (containerd asks in
 * order), the asked one goes on the parent the request names (whatever its
 * name: containerd may have unpacked it itself), those above on their ChainIDs;
 * they download together and apply in order, each committed as its ChainID. A
 * request resolves as soon as its snapshot is committed; the walk goes on, so
 * the next layer's request finds its snapshot made, or being made and waits
 * for it: one walk per image and place, shared by the requests it answers.
 */
import type { Store } from "../content/content.ts";
import type { Descriptor } from "../descriptor.ts";
import type { Digest } from "../digest.ts";
import { FailedPreconditionError, isNotFound, wrapError } from "../errors.ts";
import { readImageConfig } from "../images/config.ts";
import { dispatch, type Handler, Limiter } from "../images/handlers.ts";
import { isManifest } from "../images/mediatypes.ts";
import { formatReference, parseReference, withDigest } from "../reference/reference.ts";
import { DEFAULT_MAX_CONCURRENT_DOWNLOADS, fetchHandler } from "../remotes/handlers.ts";
import type { Resolver } from "../remotes/remotes.ts";
import type { Snapshotter } from "../snapshots/snapshotter.ts";
import { chainIDs } from "./chainid.ts";
import { Unpacker } from "./unpacker.ts";

/** One layer's snapshot to make from the registry. */
export interface RemoteLayer {
  /** The image reference the layer belongs to (`containerd.io/snapshot/cri.image-ref`). */
  ref: string;
  /** The digest of the image manifest listing it (`…/cri.manifest-digest`). */
  manifest: Digest;
  /** The layer blob's digest (`…/cri.layer-digest`). */
  layer: Digest;
  /** The snapshot to make: the layer's ChainID (`containerd.io/snapshot.ref`). */
  chainID: Digest;
  /** The snapshot it goes on: its parent layers' ChainID; none for the first layer. */
  parent?: string;
}

/** Where layers are unpacked: one namespace's snapshotter, and its content store. */
export interface RemotePlace {
  /** Tells places apart: requests for one image in one place share a walk. */
  id: string;
  snapshotter: Snapshotter;
  /**
   * The content store a walk fetches into, for as long as it runs; `release`
   * is called once it ends (a lease holding its blobs may go then).
   */
  openContent(): Promise<{ content: Store; release(): Promise<void> }>;
}

/** Options of RemoteUnpacker. */
export interface RemoteUnpackerOptions {
  resolver: Resolver;
  /** Concurrent layer downloads of one walk (default 3). */
  limit?: number;
  /** Apply ownership from the layers (default: when root). */
  sameOwner?: boolean;
  onWarning?: (message: string) => void;
}

/** An image manifest as a walk needs it: its descriptor, config and layers, and their ChainIDs. */
interface Plan {
  desc: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
  chains: Digest[];
}

/** The index of the request's layer in the plan: its digest and ChainID agree (a layer may be there twice). */
function indexIn(plan: Plan, req: RemoteLayer): number | undefined {
  const i = plan.layers.findIndex((l, j) => l.digest === req.layer && plan.chains[j] === req.chainID);
  return i < 0 ? undefined : i;
}

/** A walk of one image in one place: a promise per layer, settled as the Unpacker reports it. */
class Walk {
  readonly plan: Plan;
  /** The lowest layer it unpacks; those below were there when it started. */
  readonly from: number;
  /** The snapshot its lowest layer goes on, as the request that started it named it. */
  readonly base: string | undefined;
  /** Settles once the walk has ended and let its content go. */
  done: Promise<void> = Promise.resolve();
  readonly #layers: PromiseWithResolvers<void>[];
  #ended = false;

  constructor(plan: Plan, from: number, base: string | undefined) {
    this.plan = plan;
    this.from = from;
    this.base = base;
    this.#layers = plan.layers.map(() => {
      const p = Promise.withResolvers<void>();
      p.promise.catch(() => {});
      return p;
    });
  }

  /** The index of the request's layer when this walk makes it as asked (on the parent it names), else undefined. */
  covers(req: RemoteLayer): number | undefined {
    if (this.#ended) return undefined;
    const i = indexIn(this.plan, req);
    if (i === undefined || i < this.from) return undefined;
    const parent = i === this.from ? this.base : this.plan.chains[i - 1];
    return (req.parent || undefined) === parent ? i : undefined;
  }

  committed(index: number): void {
    this.#layers[index]?.resolve();
  }

  /** The walk ended: a layer it did not commit fails with `err`. */
  end(err: unknown): void {
    this.#ended = true;
    for (const p of this.#layers) p.reject(err);
  }

  layer(index: number): Promise<void> {
    return this.#layers[index].promise;
  }
}

/** Whether the request's snapshot is there: committed on the parent it names (a walk that ended made it). */
async function made(sn: Snapshotter, req: RemoteLayer): Promise<boolean> {
  try {
    const info = await sn.stat(req.chainID);
    return info.kind === "committed" && (info.parent || undefined) === (req.parent || undefined);
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** Waits for `p`, or until the signal fires. */
function until<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Unpacks the layers that snapshot requests name from the registry (see the module comment). */
export class RemoteUnpacker {
  readonly #opts: RemoteUnpackerOptions;
  /** Walks by place and manifest, from the moment one starts planning until it is done. */
  readonly #walks = new Map<string, Promise<Walk>>();
  /** Every walk until it is done (a newer one may have taken its place in #walks). */
  readonly #running = new Set<Promise<unknown>>();
  readonly #stop = new AbortController();

  constructor(opts: RemoteUnpackerOptions) {
    this.#opts = opts;
  }

  /**
   * Makes `req.chainID` on `req.parent` in `place` from the registry and
   * resolves once it is committed there. Throws when it cannot (the layer is
   * not in that manifest at that place, the registry refuses, the layer does
   * not apply): the caller's client may then unpack the layer itself.
   * `signal` ends the wait, not the walk other requests may share.
   */
  async unpack(req: RemoteLayer, place: RemotePlace, signal?: AbortSignal): Promise<void> {
    if (await made(place.snapshotter, req)) return;
    const key = `${place.id}\0${req.manifest}`;
    let walk = await this.#walks.get(key)?.catch(() => undefined);
    let index = walk?.covers(req);
    if (walk === undefined || index === undefined) {
      const started = this.#start(req, place);
      this.#walks.set(key, started);
      const running = started.then(
        (w) => w.done,
        () => undefined,
      );
      this.#running.add(running);
      void running.finally(() => {
        this.#running.delete(running);
        if (this.#walks.get(key) === started) this.#walks.delete(key);
      });
      walk = await until(started, signal);
      index = walk.from;
    }
    return until(walk.layer(index), signal);
  }

  /** Stops every walk (the daemon is stopping); resolves once they have removed their temporary snapshots. */
  async close(): Promise<void> {
    this.#stop.abort(new Error("the daemon is stopping"));
    await Promise.allSettled(this.#running);
  }

  /** Plans the walk from the request's layer up and starts it. */
  async #start(req: RemoteLayer, place: RemotePlace): Promise<Walk> {
    const o = this.#opts;
    const signal = this.#stop.signal;
    const { content, release } = await place.openContent();
    try {
      const ref = formatReference(withDigest(parseReference(req.ref), req.manifest));
      const resolved = await o.resolver.resolve(ref, { signal });
      if (!isManifest(resolved.desc.mediaType)) {
        throw new FailedPreconditionError(`${ref} is a ${resolved.desc.mediaType}, not an image manifest`);
      }
      const fetcher = await o.resolver.fetcher(resolved.name);
      const limiter = new Limiter(o.limit ?? DEFAULT_MAX_CONCURRENT_DOWNLOADS);
      const plan = await this.#plan(resolved.desc, fetchHandler(content, fetcher, { limiter }), content, signal);
      const from = indexIn(plan, req);
      if (from === undefined)
        throw new FailedPreconditionError(`layer ${req.layer} as ${req.chainID} is not in ${ref}`);
      const walk = new Walk(plan, from, req.parent || undefined);
      const unpacker = new Unpacker({
        snapshotter: place.snapshotter,
        content,
        signal,
        sameOwner: o.sameOwner,
        onWarning: o.onWarning,
        onEvent: (e) => {
          if (e.status === "extracted" || e.status === "exists") walk.committed(e.index);
        },
        from: { index: from, parent: walk.base },
      });
      // the manifest and config are in the store now; the layers below are there already, so not
      // fetched (unless the walk needs the same blob above)
      const fetch = fetchHandler(content, fetcher, { limiter, tee: (d) => unpacker.tee(d) });
      const above = new Set(plan.layers.slice(from).map((l) => l.digest));
      const below = new Set(
        plan.layers
          .slice(0, from)
          .map((l) => l.digest)
          .filter((d) => !above.has(d)),
      );
      const handler: Handler = async (desc, sig) => (below.has(desc.digest) ? [] : fetch(desc, sig));
      walk.done = this.#run(walk, unpacker, handler, ref, signal).finally(() => release().catch(() => {}));
      return walk;
    } catch (err) {
      await release().catch(() => {});
      throw err;
    }
  }

  /** The manifest's layers and their ChainIDs, from the manifest and config fetched into the store. */
  async #plan(desc: Descriptor, fetch: Handler, content: Store, signal: AbortSignal): Promise<Plan> {
    const [config, ...layers] = await fetch(desc, signal);
    await fetch(config, signal);
    const { diffIDs } = await readImageConfig(content, config, signal);
    if (diffIDs.length !== layers.length) {
      throw new FailedPreconditionError(
        `manifest ${desc.digest} has ${layers.length} layers but its config ${diffIDs.length} diff_ids`,
      );
    }
    return { desc, config, layers, chains: chainIDs(diffIDs) };
  }

  /** The Unpacker over the manifest's walk, as unpackManifest runs it; ends `walk` with the outcome. */
  async #run(walk: Walk, unpacker: Unpacker, handler: Handler, ref: string, signal: AbortSignal): Promise<void> {
    let failure: unknown = new Error(`unpacking ${ref} ended before this layer`);
    try {
      let walkFailure: { err: unknown } | undefined;
      await dispatch(unpacker.unpack(handler), [walk.plan.desc], { signal }).catch((err: unknown) => {
        walkFailure = { err };
      });
      // a failed walk has stopped the unpacker: wait() reports the first failure once it cleaned up
      await unpacker.wait();
      if (walkFailure) throw walkFailure.err;
    } catch (err) {
      failure = wrapError(err, `unpacking ${ref} from the registry`);
    } finally {
      walk.end(failure);
    }
  }
}
