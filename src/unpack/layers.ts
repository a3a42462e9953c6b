/**
 * The layers of one manifest → snapshots keyed by ChainID, in manifest order.
 *
 * For each layer: if the snapshot of its chain exists it is skipped (`exists`);
 * otherwise, under a cross-process lock on the ChainID, a temporary active
 * snapshot is prepared on the parent chain, the Applier applies the layer to
 * its mounts, the diffID it computed is checked against the config, the
 * filesystem is flushed (in the background as the layer is written, then once
 * more: flusher.ts) and the snapshot committed as the ChainID. Any failure
 * removes the temporary snapshot, so a partial tree is never committed.
 *
 * A layer's bytes are its download, teed in while it runs when the loop was at
 * that layer as it started (LayerSlot), else the blob in the content store.
 */
import { randomBytes } from "node:crypto";
import { readdir, statfs } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type { Manager } from "../content/content.ts";
import type { Descriptor } from "../descriptor.ts";
import type { Applier } from "../diff/applier.ts";
import { applyTarget } from "../diff/mounts.ts";
import type { Digest } from "../digest.ts";
import {
  DataLossError,
  FailedPreconditionError,
  InvalidArgumentError,
  isNotFound,
  systemCode,
  wrapError,
} from "../errors.ts";
import { removeTree } from "../snapshots/fs-snapshotter.ts";
import type { SnapshotInfo, Snapshotter } from "../snapshots/snapshotter.ts";
import { chainIDs } from "./chainid.ts";
import { Flusher } from "./flusher.ts";
import { acquireLock, type Lock } from "./lock.ts";
import type { LayerSlot } from "./slot.ts";

/** A layer's state in an unpack. */
export type UnpackStatus = "waiting" | "extracting" | "extracted" | "exists";

/** A layer's progress in an unpack (UnpackerOptions.onEvent). */
export interface UnpackEvent {
  layer: Descriptor;
  index: number;
  chainID: Digest;
  status: UnpackStatus;
  /** Compressed bytes consumed so far (extracting). */
  offset?: number;
}

export interface LayersOptions {
  snapshotter: Snapshotter;
  applier: Applier;
  /** Where layer blobs get their `containerd.io/uncompressed` label. */
  content: Pick<Manager, "update">;
  /** Where the per-ChainID lock files live; none: no cross-process lock. */
  lockDir?: string;
  signal: AbortSignal;
  /** Apply ownership from the tar (default: when root). */
  sameOwner?: boolean;
  /** Flush the filesystem once per layer before its commit (default true). */
  sync?: boolean;
  onEvent?: (e: UnpackEvent) => void;
  onWarning?: (message: string) => void;
  /**
   * Start at layer `index`, on the snapshot `parent` (whatever its name): the
   * layers below are there already, the client that asks says so (a
   * remote-snapshotter request names its parent by the client's own key).
   */
  from?: { index: number; parent?: string };
}

/**
 * Unpacks the layers of `slots` (the config's `diffIDs` name them) and returns
 * the top ChainID. `at(i)` tells when the loop gets to layer i: a download of
 * it is then worth teeing.
 */
export async function unpackLayers(
  slots: LayerSlot[],
  diffIDs: readonly string[],
  opts: LayersOptions,
  at: (index: number) => void,
): Promise<Digest> {
  if (diffIDs.length !== slots.length) {
    throw new InvalidArgumentError(
      `image config has ${diffIDs.length} rootfs.diff_ids but the manifest has ${slots.length} layers`,
    );
  }
  let chains: Digest[];
  try {
    chains = chainIDs(diffIDs);
  } catch (err) {
    throw wrapError(err, "image config: bad rootfs.diff_ids", "InvalidArgument");
  }
  const emit = (i: number, status: UnpackStatus, offset?: number) =>
    opts.onEvent?.({ layer: slots[i].desc, index: i, chainID: chains[i], status, offset });
  for (let i = 0; i < slots.length; i++) emit(i, "waiting");
  const start = opts.from?.index ?? 0;
  let parent = opts.from?.parent;
  for (let i = 0; i < start; i++) slots[i].release();
  for (let i = start; i < slots.length; i++) {
    opts.signal.throwIfAborted();
    const slot = slots[i];
    const chain = chains[i];
    at(i);
    let status: UnpackStatus = "exists";
    if (!(await exists(opts.snapshotter, chain))) {
      const lock: Lock | undefined = opts.lockDir ? await acquireLock(opts.lockDir, chain, opts.signal) : undefined;
      try {
        // whoever held the lock may have just committed it
        if (!(await exists(opts.snapshotter, chain))) {
          await extract(slot, diffIDs[i] as Digest, chain, parent, opts, (status, offset) => emit(i, status, offset));
          status = "extracted";
        }
      } finally {
        lock?.release();
      }
    }
    slot.release();
    emit(i, status);
    await label(opts.content, slot.desc.digest, { "containerd.io/uncompressed": diffIDs[i] });
    parent = chain;
  }
  at(slots.length);
  return chains[chains.length - 1];
}

/**
 * Whether the chain's snapshot is committed. A snapshotter that writes under a
 * lease (the metadata layer's) puts it on the lease as it answers, so a
 * collection cannot take it while later layers build on it.
 */
async function exists(
  sn: Snapshotter & { retain?(key: string): Promise<SnapshotInfo> },
  chain: Digest,
): Promise<boolean> {
  try {
    return (await (sn.retain ? sn.retain(chain) : sn.stat(chain))).kind === "committed";
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

async function label(content: Pick<Manager, "update">, digest: Digest, labels: Record<string, string>): Promise<void> {
  try {
    await content.update(
      digest,
      labels,
      Object.keys(labels).map((k) => `labels.${k}`),
    );
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

async function extract(
  slot: LayerSlot,
  diffID: Digest,
  chain: Digest,
  parent: string | undefined,
  o: LayersOptions,
  emit: (status: "extracting", offset: number) => void,
): Promise<void> {
  const sn = o.snapshotter;
  for (let attempt = 0; ; attempt++) {
    const key = `extract-${randomBytes(6).toString("hex")} ${chain}`;
    // containerd's unpacker labels both (a remote-snapshotter client finds a committed layer by it)
    const labels = { "containerd.io/snapshot.ref": chain };
    const mounts = await sn.prepare(key, parent, { labels, applyOnly: true });
    const dir = applyTarget(mounts).dir;
    let stream: Readable | undefined;
    const flusher = o.sync !== false ? new Flusher(dir) : undefined;
    try {
      stream = await slot.take();
      if (!stream) await slot.whenStored();
      emit("extracting", 0);
      const result = await o.applier.apply(slot.desc, mounts, {
        stream,
        signal: o.signal,
        sameOwner: o.sameOwner ?? process.getuid?.() === 0,
        onWarning: o.onWarning,
        onProgress: (n) => {
          flusher?.progress(n);
          emit("extracting", n);
        },
      });
      if (result.diffID !== diffID) {
        throw new DataLossError(
          `layer ${slot.desc.digest}: uncompressed digest ${result.diffID} does not match the config's diff_id ${diffID}`,
        );
      }
      // the blob itself must have been verified too before the tree is kept
      await slot.whenStored();
      await flusher?.flush();
      await flusher?.close();
      await sn.commit(chain, key, { labels });
      return;
    } catch (err) {
      // an applier that failed stops reading (its pipe from the source is undone): a teed
      // download would wait for a reader forever, and a retry waits for that download
      stream?.destroy();
      await flusher?.close();
      const full = await diskFull(dir);
      await discard(sn, key, dir);
      if (full) {
        throw new FailedPreconditionError(
          `unpacking layer ${slot.desc.digest}: no space left on device under ${dir} (the blobs fetched so far are kept; free space and pull again)`,
          { cause: err },
        );
      }
      o.signal.throwIfAborted();
      // a teed download that broke is retried once from the store, if the blob made it there
      const retry = stream !== undefined && attempt === 0 && !(err instanceof DataLossError);
      if (!retry) throw wrap(err, slot.desc);
      await slot.whenStored().catch(() => {
        throw wrap(err, slot.desc);
      });
    }
  }
}

/** After a failed apply: is the filesystem full (ENOSPC), whatever error the applier reported? */
async function diskFull(dir: string): Promise<boolean> {
  try {
    const st = await statfs(dir);
    return st.bavail * st.bsize < 64 * 1024 || st.ffree === 0;
  } catch {
    return false;
  }
}

/**
 * Removes a failed temporary snapshot. Its files go first: on a full disk the
 * metadata update itself needs the space they hold.
 */
async function discard(sn: Snapshotter, key: string, dir: string): Promise<void> {
  try {
    for (const name of await readdir(dir)) await removeTree(join(dir, name));
  } catch {}
  for (let i = 0; i < 3; i++) {
    try {
      await sn.remove(key);
      return;
    } catch (err) {
      if (isNotFound(err)) return;
    }
  }
}

function wrap(err: unknown, desc: Descriptor): unknown {
  if (err instanceof Error && err.message.includes(desc.digest)) return err;
  if (systemCode(err) === "ENOSPC") {
    return wrapError(
      err,
      `unpacking layer ${desc.digest}: no space left on device (the fetched blobs are kept)`,
      "FailedPrecondition",
    );
  }
  return wrapError(err, `unpacking layer ${desc.digest}`);
}
