/**
 * A Prepare as containerd's remote-snapshotter protocol has it (containerd
 * 1.6's unpacker.go and metadata/snapshot.go): containerd's unpacker prepares
 * each layer's snapshot with `containerd.io/snapshot.ref` naming the snapshot
 * it will commit (the layer's ChainID); the CRI plugin and
 * `snapshotters.AppendInfoHandlerWrapper` add `containerd.io/snapshot/cri.*`
 * labels naming the image, its manifest and the layer. A snapshotter that
 * answers AlreadyExists tells containerd the target is there: containerd then
 * looks for it among the snapshotter's committed snapshots (label
 * `containerd.io/snapshot.ref` = the target, parent = the Prepare's parent),
 * records it and neither fetches nor applies the layer.
 *
 * So with a target, the daemon answers AlreadyExists when the namespace has it
 * committed on that parent (labelled so containerd finds it), or once the
 * RemoteUnpacker (unpack/remote.ts) has made it from the registry with the
 * daemon's own registry configuration. Otherwise the Prepare goes on as usual
 * and containerd unpacks the layer itself: when the target's name is taken by
 * another snapshot, when the labels name no remote layer, and when making it
 * failed (logged: a registry dist cannot reach or has no credentials for).
 */
import { randomBytes } from "node:crypto";
import { validateDigest } from "../../digest.ts";
import { AlreadyExistsError, errorMessage, isNotFound } from "../../errors.ts";
import type { Mount, SnapshotInfo, Snapshotter } from "../../snapshots/snapshotter.ts";
import type { RemoteLayer, RemotePlace, RemoteUnpacker } from "../../unpack/remote.ts";
import type { Backend } from "./backend.ts";

/** The snapshot a Prepare will be committed as (containerd's unpacker sets it). */
export const TARGET_LABEL = "containerd.io/snapshot.ref";
/** The image, manifest and layer a layer's Prepare comes from (containerd's pkg/snapshotters, the CRI plugin). */
export const IMAGE_REF_LABEL = "containerd.io/snapshot/cri.image-ref";
export const MANIFEST_DIGEST_LABEL = "containerd.io/snapshot/cri.manifest-digest";
export const LAYER_DIGEST_LABEL = "containerd.io/snapshot/cri.layer-digest";

/** How long the lease of a walk's blobs outlives a daemon that died holding it. */
const LEASE_EXPIRY_MS = 3_600_000;

/** The remote layer a Prepare's labels name, if they name one whole and well formed. */
export function remoteLayerOf(labels: Record<string, string>, parent: string | undefined): RemoteLayer | undefined {
  const ref = labels[IMAGE_REF_LABEL];
  const target = labels[TARGET_LABEL];
  if (!ref || !target) return undefined;
  try {
    return {
      ref,
      manifest: validateDigest(labels[MANIFEST_DIGEST_LABEL] ?? ""),
      layer: validateDigest(labels[LAYER_DIGEST_LABEL] ?? ""),
      chainID: validateDigest(target),
      parent,
    };
  } catch {
    return undefined;
  }
}

async function statOf(sn: Snapshotter, key: string): Promise<SnapshotInfo | undefined> {
  try {
    return await sn.stat(key);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** The target is there as containerd looks for it: committed on `parent`; labelled if an earlier dist left it without. */
async function ready(sn: Snapshotter, target: string, parent: string | undefined): Promise<boolean | undefined> {
  const info = await statOf(sn, target);
  if (!info) return undefined;
  if (info.kind !== "committed" || (info.parent ?? "") !== (parent ?? "")) return false;
  if (info.labels[TARGET_LABEL] !== target) {
    await sn.update({ name: target, labels: { [TARGET_LABEL]: target } }, [`labels.${TARGET_LABEL}`]);
  }
  return true;
}

/** What prepareSnapshot needs besides the request: where the namespace's snapshots and blobs are, and the fast path. */
export interface PrepareContext {
  backend: Backend;
  namespace: string;
  /** The namespace's snapshotter. */
  snapshotter: Snapshotter;
  remote?: Pick<RemoteUnpacker, "unpack">;
  log: { info(fields: object, msg: string): void; warn(fields: object, msg: string): void };
  signal: AbortSignal;
}

/** The namespace's snapshotter and content for a walk; its blobs on a lease of their own while it runs. */
function placeOf(c: PrepareContext): RemotePlace {
  return {
    id: `${c.namespace}\0${c.snapshotter.name}`,
    snapshotter: c.snapshotter,
    async openContent() {
      const leases = c.backend.leases(c.namespace);
      const id = `dist-remote-${randomBytes(6).toString("hex")}`;
      leases.create(id, { "containerd.io/gc.expire": new Date(Date.now() + LEASE_EXPIRY_MS).toISOString() });
      return {
        content: await c.backend.content(c.namespace, id),
        release: async () => leases.delete(id),
      };
    },
  };
}

/**
 * Prepare `key` on `parent` with `labels`, following the remote-snapshotter
 * protocol (see the module comment): AlreadyExistsError when the target is
 * there or was made, else the new snapshot's mounts.
 */
export async function prepareSnapshot(
  c: PrepareContext,
  key: string,
  parent: string | undefined,
  labels: Record<string, string> | undefined,
): Promise<Mount[]> {
  const target = labels?.[TARGET_LABEL];
  if (!labels || !target) {
    return c.snapshotter.prepare(key, parent, labels && Object.keys(labels).length > 0 ? { labels } : undefined);
  }
  let there = await ready(c.snapshotter, target, parent);
  const layer = there === undefined && c.remote && remoteLayerOf(labels, parent);
  if (layer && c.remote) {
    const started = process.hrtime.bigint();
    try {
      await c.remote.unpack(layer, placeOf(c), c.signal);
      const ms = Number((process.hrtime.bigint() - started) / 1_000_000n);
      c.log.info({ target, layer: layer.layer, ms }, "layer unpacked from the registry");
    } catch (err) {
      if (c.signal.aborted) throw err;
      c.log.warn(
        { target, layer: layer.layer, image: layer.ref, err: errorMessage(err) },
        "could not unpack the layer from the registry: the client unpacks it",
      );
    }
    // as containerd will look for it (another walk may have made it on another parent meanwhile)
    there = await ready(c.snapshotter, target, parent);
  }
  if (there) throw new AlreadyExistsError(`target snapshot "${target}" already exists`);
  if (there === false) {
    // the name is another snapshot's: containerd unpacks this layer itself, committed under a key of its own
    const { [TARGET_LABEL]: _, ...rest } = labels;
    return c.snapshotter.prepare(key, parent, { labels: rest });
  }
  return c.snapshotter.prepare(key, parent, { labels });
}
