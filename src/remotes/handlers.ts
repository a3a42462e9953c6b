/**
 * The fetch handlers (containerd's remotes/handlers.go) and the fetch flow
 * built on them. The fetch handler copies a descriptor's blob from a Fetcher
 * into the content store, verified, and returns its children (a manifest's
 * config and layers, an index's manifests) parsed from the bytes it verified,
 * so nothing reads them again. fetchImage resolves a reference and walks it
 * with the platform filter, labelling each blob with the repository it came
 * from (source-labels.ts, as containerd does) when it can update labels;
 * `dist fetch` records the name; `pull` (src/pull.ts) wraps the handler with
 * the unpacker and tees layer downloads into it.
 */
import { Readable, type Writable } from "node:stream";
import type { Ingester, IngestManager, Manager, Provider, Retainer, Writer } from "../content/content.ts";
import { checkSize, copyToWriter, MAX_MANIFEST_SIZE, type OpenAt, readVerified } from "../content/helpers.ts";
import type { Descriptor } from "../descriptor.ts";
import { DistError, FailedPreconditionError, isAlreadyExists, isNotFound, wrapError } from "../errors.ts";
import { childrenHandler, filterPlatforms, type NoteFn } from "../images/children.ts";
import { childLabelsHandler } from "../images/gc-labels.ts";
import {
  DEFAULT_MAX_CONCURRENT_DOWNLOADS,
  dispatch,
  type Handler,
  handlers,
  Limiter,
  SKIP,
} from "../images/handlers.ts";
import type { ImageStore } from "../images/image.ts";
import { childrenOf, refuseSchema1 } from "../images/manifest.ts";
import {
  descriptorKind,
  isAttestationManifest,
  isForeignLayer,
  isIndex,
  isManifest,
  isSchema1,
  refKey,
} from "../images/mediatypes.ts";
import { defaultMatcher, type PlatformMatcher } from "../images/platforms.ts";
import type { ProgressTracker } from "../progress/tracker.ts";
import type { Fetcher, Resolver } from "./remotes.ts";
import { distributionSourceHandler } from "./source-labels.ts";

export { DEFAULT_MAX_CONCURRENT_DOWNLOADS } from "../images/handlers.ts";

/**
 * Where blobs are fetched to; with abort, a blob that fails verification is
 * dropped with its ingest; with retain, a blob found there goes on the store's lease.
 */
export type ContentTarget = Provider & Ingester & Partial<Pick<IngestManager, "abort"> & Retainer>;

/**
 * Asked as a fresh download of a blob starts (from byte 0): a stream to receive
 * its bytes as they are written to the store (one pass: network → digest →
 * store, and on to the consumer), or undefined. The stream ends only after the
 * blob was verified and committed, and is destroyed if that fails. A consumer
 * that needs a blob that was resumed or already present reads it from the store.
 */
export type Tee = (desc: Descriptor) => Writable | undefined;

/** fetchBlob's outcome: `done` (copied now) or `exists` (already in the store). */
export type BlobResult = "done" | "exists";

/** Options of fetchBlob. */
export interface FetchBlobOptions {
  signal?: AbortSignal;
  progress?: ProgressTracker;
  /** Bounds concurrent network transfers; the slot is held only while bytes flow. */
  limiter?: Limiter;
  tee?: Tee;
}

/**
 * Copies one blob from the fetcher into the store under its refKey, resuming a
 * partial ingest and skipping content already present. Sizes and digests are
 * those of the descriptor: more bytes than it says is an error, and a blob that
 * fails verification is discarded, never committed.
 */
export async function fetchBlob(
  store: ContentTarget,
  fetcher: Fetcher,
  desc: Descriptor,
  opts: FetchBlobOptions = {},
): Promise<BlobResult> {
  return (await fetchInto(store, fetcher, desc, opts)).result;
}

interface Fetched {
  result: BlobResult;
  /** A manifest's or an index's children, when it was read from the fetcher. */
  children?: Descriptor[];
}

async function fetchInto(
  store: ContentTarget,
  fetcher: Fetcher,
  desc: Descriptor,
  opts: FetchBlobOptions,
): Promise<Fetched> {
  const key = refKey(desc);
  const progress = opts.progress;
  progress?.update(key, { state: "waiting", total: desc.size });
  const whole = isManifest(desc.mediaType) || isIndex(desc.mediaType);
  if (whole) checkSize(key, desc.size, MAX_MANIFEST_SIZE);
  if ((await present(store, desc)) && (await retained(store, desc))) {
    progress?.update(key, { state: "exists" });
    return { result: "exists" };
  }
  const run = async (): Promise<Fetched> => {
    // a manifest is verified and parsed whole before a writer exists, so a bad one leaves no trace
    const manifest = whole ? await readManifest(fetcher, desc, key, opts) : undefined;
    let w: Writer;
    try {
      w = await store.writer({ ref: key, total: desc.size, expected: desc.digest, signal: opts.signal });
    } catch (err) {
      if (isAlreadyExists(err) && (await present(store, desc))) {
        progress?.update(key, { state: "exists" });
        return { result: "exists" };
      }
      throw err;
    }
    const open: OpenAt = manifest
      ? // its verified bytes, whole: an earlier ingest's prefix is not trusted (the copy starts over)
        async (offset) => {
          if (offset > 0) throw new Error("written whole");
          return Readable.from([manifest.bytes]);
        }
      : // the writer hashes every byte and verifies the digest on commit: one hash, not two
        (offset) => fetcher.fetch(desc, { offset, signal: opts.signal, verify: false });
    const tee = opts.tee;
    const abort = store.abort?.bind(store);
    await copyToWriter(w, open, {
      what: key,
      size: desc.size,
      expected: desc.digest,
      signal: opts.signal,
      // a mismatch means the registry sent bad bytes: never resume them
      discard: abort ? () => abort(key) : undefined,
      tee: tee && !manifest ? () => tee(desc) : undefined,
      onStart: manifest
        ? undefined
        : (offset) => progress?.update(key, { state: "downloading", offset, startOffset: offset, total: desc.size }),
      onData: manifest || !progress ? undefined : (offset) => progress.update(key, { offset }),
      onCommit: () => progress?.update(key, { state: "committing" }),
    });
    progress?.update(key, { state: "done" });
    return { result: "done", children: manifest?.children };
  };
  try {
    return await (opts.limiter ? opts.limiter.run(run, opts.signal) : run());
  } catch (err) {
    throw withKey(key, err);
  }
}

/** A system error (ENOSPC, EACCES…) gets the blob's key; typed errors already say what failed. */
function withKey(key: string, err: unknown): unknown {
  if (err instanceof DistError || !(err instanceof Error) || err.name === "AbortError") return err;
  if (typeof (err as NodeJS.ErrnoException).syscall !== "string") return err;
  return wrapError(err, `${key}: storing the blob`);
}

/** Whether the blob is stored; one stored with another size than the descriptor's is an error. */
async function present(store: Provider, desc: Descriptor): Promise<boolean> {
  let size: number;
  try {
    size = (await store.info(desc.digest)).size;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
  if (size !== desc.size) {
    throw new FailedPreconditionError(
      `${desc.digest}: the descriptor says ${desc.size} bytes, the stored blob has ${size}`,
    );
  }
  return true;
}

/** Puts a blob found in the store on its lease; false when it went meanwhile (a collection took it). */
async function retained(store: ContentTarget, desc: Descriptor): Promise<boolean> {
  try {
    await store.retain?.(desc.digest);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/**
 * Manifests and indexes are read whole (they are capped), verified and parsed
 * before anything is written, so a malformed one or one naming invalid digests
 * never reaches the store.
 */
async function readManifest(
  fetcher: Fetcher,
  desc: Descriptor,
  key: string,
  opts: FetchBlobOptions,
): Promise<{ bytes: Buffer; children: Descriptor[] }> {
  opts.progress?.update(key, { state: "downloading", offset: 0, startOffset: 0, total: desc.size });
  const bytes = await readVerified(await fetcher.fetch(desc, { signal: opts.signal }), desc, key);
  const children = childrenOf(desc, bytes);
  opts.progress?.update(key, { offset: bytes.length });
  return { bytes, children };
}

/** Options of fetchHandler. */
export interface FetchHandlerOptions extends FetchBlobOptions {
  note?: NoteFn;
  /** Shared with other walks (several references fetched together): one download of each blob. */
  group?: FetchGroup;
}

/**
 * What fetches running side by side share (`dist pull A B`): one download of
 * each blob whatever walk meets it, and one limit on downloads at once.
 *
 *   const group = new FetchGroup(3);
 *   await Promise.all(refs.map((ref) => fetchImage({ resolver, store, ref, group })));
 */
export class FetchGroup {
  readonly limiter: Limiter;
  readonly #inflight = new Map<string, { signal: AbortSignal; children: Promise<Descriptor[]> }>();

  constructor(limit = DEFAULT_MAX_CONCURRENT_DOWNLOADS) {
    this.limiter = new Limiter(limit);
  }

  /**
   * The children of the blob `digest`: from its fetch in flight or done (by any
   * walk), else from `fetch`, which becomes that fetch. A fetch another walk
   * started and gave up (that walk was stopped) is made again by this one.
   */
  async once(digest: string, signal: AbortSignal, fetch: () => Promise<Descriptor[]>): Promise<Descriptor[]> {
    const current = this.#inflight.get(digest);
    if (current) {
      try {
        return await current.children;
      } catch (err) {
        if (current.signal === signal || signal.aborted || !current.signal.aborted) throw err;
      }
    }
    const entry = { signal, children: fetch() };
    this.#inflight.set(digest, entry);
    entry.children.catch(() => {
      if (this.#inflight.get(digest) === entry) this.#inflight.delete(digest);
    });
    return entry.children;
  }
}

/**
 * The fetch handler: fetches a descriptor into the store and returns its
 * children, from the bytes it fetched and verified, or read from the store when
 * the blob was already there. A blob fetched twice in one walk (or in the walks
 * of one FetchGroup) is fetched once. Non-distributable layers are fetched from
 * the registry like any other blob, as containerd does (registries hold them
 * now); one the registry does not have is skipped with a note: its `urls` name
 * hosts outside the registry's trust, which dist does not fetch from.
 */
export function fetchHandler(store: ContentTarget, fetcher: Fetcher, opts: FetchHandlerOptions = {}): Handler {
  const stored = childrenHandler(store);
  const group = opts.group ?? new FetchGroup();
  return async (desc, signal) => {
    refuseSchema1(desc);
    try {
      const children = await group.once(desc.digest, signal, () =>
        fetchInto(store, fetcher, desc, { ...opts, signal }).then((f) => f.children ?? stored(desc, signal)),
      );
      return [...children];
    } catch (err) {
      if (!isForeignLayer(desc.mediaType) || !isNotFound(err)) throw err;
      const urls = desc.urls?.length ? ` (its urls are not fetched from: ${desc.urls.join(" ")})` : "";
      opts.note?.(desc, `skipped non-distributable layer ${desc.digest}: not in the registry${urls}`);
      opts.progress?.update(refKey(desc), { state: "skipped", total: desc.size });
      throw SKIP;
    }
  };
}

/** Options of fetchImage: where from (resolver, ref), where to (store, images) and how. */
export interface FetchImageOptions {
  resolver: Resolver;
  store: ContentTarget;
  ref: string;
  /** One matcher per requested platform (each keeps its best manifest); allPlatforms() for all. Default: the host. */
  platforms?: PlatformMatcher[];
  /** Concurrent downloads (default 3); a group's own limit when `group` is given. */
  limit?: number;
  /** Shared with the fetches of other references: one download of each blob, one limit. */
  group?: FetchGroup;
  signal?: AbortSignal;
  progress?: ProgressTracker;
  /** Notes about what the walk leaves out (attestations, foreign layers). */
  onNote?: NoteFn;
  /** Receives fresh downloads' bytes as they arrive (see Tee). */
  tee?: Tee;
  /**
   * Wraps the per-descriptor handler (fetch and children, through the platform
   * filter), e.g. to unpack layers as they arrive (containerd's HandlerWrapper).
   * The wrapper sees every descriptor and may await its own work: download slots
   * are not held meanwhile.
   */
  handlerWrapper?: (h: Handler) => Handler;
  /**
   * When given (the store itself, usually), every blob of the walk is labelled
   * `containerd.io/distribution.source.<host>=<repos>`, so a push to another
   * repository of that registry can mount it.
   */
  sourceLabels?: Pick<Manager, "update">;
  /**
   * When given (the store itself, usually), each manifest and index is labelled
   * for its children as containerd labels them (images/gc-labels.ts), so that
   * garbage collection keeps the tree the image record names.
   */
  gcLabels?: Pick<Manager, "update">;
  /** With gcLabels: manifests do not reference their layers, which go once unpacked (`pull --discard-layers`). */
  discardLayers?: boolean;
  /** When given, the resolved name is recorded there → target after a complete fetch. */
  images?: ImageStore;
  /** Labels for the image record. */
  labels?: Record<string, string>;
}

/** What fetchImage fetched: the canonical name, the root descriptor and the platform manifests. */
export interface FetchImageResult {
  /** The canonical name the resolver returned (docker.io/library/redis:latest). */
  name: string;
  target: Descriptor;
  /** The image manifests fetched (one per selected platform), attestations left out. */
  manifests: Descriptor[];
}

/** resolve → dispatch(fetch and children, platform filter) → optionally images.put(name → target). */
export async function fetchImage(opts: FetchImageOptions): Promise<FetchImageResult> {
  const { resolver, store, ref, progress, signal } = opts;
  progress?.update(ref, { state: "resolving" });
  const resolved = await resolver.resolve(ref, { signal });
  refuseSchema1(resolved.desc, ref);
  progress?.update(ref, { state: "resolved" });
  const fetcher = await resolver.fetcher(resolved.name);
  const group = opts.group ?? new FetchGroup(opts.limit);
  const manifests = new Map<string, Descriptor>();

  const fetch = fetchHandler(store, fetcher, {
    limiter: group.limiter,
    group,
    progress,
    tee: opts.tee,
    note: opts.onNote,
  });
  // every child is labelled, before the platform filter, as containerd's SetChildrenMappedLabels does
  const labelled = opts.gcLabels ? childLabelsHandler(fetch, opts.gcLabels, { layers: !opts.discardLayers }) : fetch;
  const children = filterPlatforms(labelled, opts.platforms ?? [defaultMatcher()], opts.onNote);
  const record: Handler = async (desc) => {
    if (isManifest(desc.mediaType) && !isAttestationManifest(desc)) manifests.set(desc.digest, desc);
    if (descriptorKind(desc) === "unknown" && !isSchema1(desc.mediaType)) {
      opts.onNote?.(desc, `unknown media type ${desc.mediaType} (${desc.digest}): stored as a blob, not interpreted`);
    }
    return [];
  };
  // children are shown as waiting as soon as they are known, as containerd's table does (once: a
  // blob met again keeps the state it has, whether another walk of the group met it or the platform
  // filter fetched the indexes nested in an index before handing on its children)
  const announce: Handler = async (desc, sig) => {
    const kids = await children(desc, sig);
    for (const k of kids) {
      const key = refKey(k);
      if (!progress?.get(key)) progress?.update(key, { state: "waiting", total: k.size });
    }
    return kids;
  };
  const labels = opts.sourceLabels;
  const source =
    labels &&
    distributionSourceHandler({ info: (d) => store.info(d), update: labels.update.bind(labels) }, resolved.name);
  let handler = source ? handlers(record, announce, source) : handlers(record, announce);
  if (opts.handlerWrapper) handler = opts.handlerWrapper(handler);
  await dispatch(handler, [resolved.desc], { signal });

  if (opts.images) {
    await opts.images.put({ name: resolved.name, target: resolved.desc, labels: opts.labels ?? {} });
  }
  return { name: resolved.name, target: resolved.desc, manifests: [...manifests.values()] };
}

/** Fetches just the object a reference resolves to (a manifest or an index), as a verified stream. */
export async function fetchObject(
  resolver: Resolver,
  ref: string,
  opts: { signal?: AbortSignal } = {},
): Promise<{ name: string; desc: Descriptor; stream: Readable }> {
  const resolved = await resolver.resolve(ref, { signal: opts.signal });
  refuseSchema1(resolved.desc, ref);
  const fetcher = await resolver.fetcher(resolved.name);
  const stream = await fetcher.fetch(resolved.desc, { signal: opts.signal });
  return { name: resolved.name, desc: resolved.desc, stream };
}
