/**
 * Pushes an image tree to a repository in the order registries need: every
 * blob first (several at once: a HEAD skips what the registry has, a mount
 * takes what another repository of it has), then the manifests, children
 * before the indexes that list them, the root last, under its tag. The bytes
 * come from a TransferSource: the local content store (push) or another
 * registry, streamed straight through (copy).
 */
import type { Source } from "../content/helpers.ts";
import type { Descriptor } from "../descriptor.ts";
import { NotFoundError, wrapError } from "../errors.ts";
import type { NoteFn } from "../images/children.ts";
import { DEFAULT_MAX_CONCURRENT_DOWNLOADS, Limiter } from "../images/handlers.ts";
import { childrenOf } from "../images/manifest.ts";
import { isForeignLayer, isIndex, isManifest, refKey } from "../images/mediatypes.ts";
import type { ProgressTracker } from "../progress/tracker.ts";
import type { Pusher, PushStatus } from "../remotes/remotes.ts";

/** Where the objects of a transfer come from. */
export interface TransferSource {
  /** A manifest or index, whole and verified. */
  manifest(desc: Descriptor, signal?: AbortSignal): Promise<Buffer>;
  /** A blob's bytes from `offset`. */
  open(desc: Descriptor, offset: number, signal?: AbortSignal): Promise<Source>;
  /** A repository of the destination's registry known to hold the blob (a cross-repository mount). */
  mountFrom?(desc: Descriptor): Promise<string | undefined>;
}

/** What pushTree pushes, from where, to which pusher, and how. */
export interface PushTreeOptions {
  source: TransferSource;
  pusher: Pusher;
  /** The root and its bytes (a manifest or index, possibly narrowed from the source's). */
  root: { desc: Descriptor; bytes: Buffer };
  /** The tag the root goes under; by digest when absent. */
  tag?: string;
  /** Blobs uploaded at once (default 3). */
  limit?: number;
  signal?: AbortSignal;
  progress?: ProgressTracker;
  onNote?: NoteFn;
  /** Told of each object as it lands (after its upload, mount or existence check). */
  onPushed?: (desc: Descriptor, status: PushStatus) => void | Promise<void>;
}

/** What pushTree pushed. */
export interface PushedTree {
  /** Manifests and indexes, children before parents, the root last. */
  manifests: Descriptor[];
  /** What happened to each blob and manifest, by digest. */
  status: Map<string, PushStatus>;
}

/** The progress state of a push result. */
function stateOf(status: PushStatus): "done" | "exists" | "mounted" {
  return status === "pushed" ? "done" : status;
}

/** Reads the tree under the root: its manifests (children first, with their bytes) and its blobs, each once. */
async function collect(
  opts: PushTreeOptions,
): Promise<{ manifests: Array<{ desc: Descriptor; bytes: Buffer }>; blobs: Descriptor[] }> {
  const manifests: Array<{ desc: Descriptor; bytes: Buffer }> = [];
  const blobs = new Map<string, Descriptor>();
  const seen = new Set<string>();
  const visit = async (desc: Descriptor, bytes: Buffer): Promise<void> => {
    if (seen.has(desc.digest)) return;
    seen.add(desc.digest);
    for (const child of childrenOf(desc, bytes)) {
      if (isManifest(child.mediaType) || isIndex(child.mediaType)) {
        if (seen.has(child.digest)) continue;
        opts.progress?.update(refKey(child), { state: "waiting", total: child.size });
        await visit(child, await opts.source.manifest(child, opts.signal));
      } else if (isForeignLayer(child.mediaType)) {
        opts.onNote?.(child, `skipped non-distributable layer ${child.digest}`);
      } else if (!blobs.has(child.digest)) {
        blobs.set(child.digest, child);
        opts.progress?.update(refKey(child), { state: "waiting", total: child.size });
      }
    }
    manifests.push({ desc, bytes });
  };
  opts.progress?.update(refKey(opts.root.desc), { state: "waiting", total: opts.root.desc.size });
  await visit(opts.root.desc, opts.root.bytes);
  return { manifests, blobs: [...blobs.values()] };
}

/** Pushes a tree from a source to a pusher: blobs first, then manifests, the root last under its tag (see the module's comment). */
export async function pushTree(opts: PushTreeOptions): Promise<PushedTree> {
  const { source, pusher, progress, signal } = opts;
  const { manifests, blobs } = await collect(opts);
  const status = new Map<string, PushStatus>();
  const limiter = new Limiter(opts.limit ?? DEFAULT_MAX_CONCURRENT_DOWNLOADS);
  const failure = new AbortController();
  const sig = signal ? AbortSignal.any([signal, failure.signal]) : failure.signal;

  const pushBlob = async (desc: Descriptor): Promise<void> => {
    const key = refKey(desc);
    const s = await limiter.run(async () => {
      const mountFrom = await source.mountFrom?.(desc);
      try {
        return await pusher.pushBlob(desc, (offset) => source.open(desc, offset, sig), {
          signal: sig,
          mountFrom,
          // the first call says the upload started (after the existence check and any mount)
          onProgress: progress ? (offset) => progress.update(key, { state: "uploading", offset }) : undefined,
        });
      } catch (err) {
        throw blobError(desc, err);
      }
    }, sig);
    status.set(desc.digest, s);
    progress?.update(key, { state: stateOf(s) });
    await opts.onPushed?.(desc, s);
  };
  // the largest first: with a few uploads at once, the longest starts earliest
  const order = [...blobs].sort((a, b) => b.size - a.size);
  const results = await Promise.allSettled(
    order.map((d) =>
      pushBlob(d).catch((err: unknown) => {
        failure.abort(err);
        throw err;
      }),
    ),
  );
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw signal?.aborted ? signal.reason : (failure.signal.reason ?? failed.reason);

  for (const m of manifests) {
    const key = refKey(m.desc);
    const isRoot = m.desc.digest === opts.root.desc.digest;
    const s = await pusher.pushManifest(m.desc, m.bytes, { tag: isRoot ? opts.tag : undefined, signal });
    status.set(m.desc.digest, s);
    progress?.update(key, { state: stateOf(s) });
    await opts.onPushed?.(m.desc, s);
  }
  return { manifests: manifests.map((m) => m.desc), status };
}

/** A blob missing from the source names itself; other errors pass as they are. */
function blobError(desc: Descriptor, err: unknown): unknown {
  if (err instanceof NotFoundError && !err.message.includes(desc.digest)) {
    return wrapError(err, `${refKey(desc)}`);
  }
  return err;
}
