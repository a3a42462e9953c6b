/**
 * The labels containerd's clients put on what they fetch so that its garbage
 * collector keeps an image's tree (containerd's images.SetChildrenMappedLabels
 * and ChildGCLabels): an image record names its target, and the target's
 * labels name its children. An index gets `containerd.io/gc.ref.content.m.<i>`
 * for its manifests, a manifest `.config` and `.l.<i>` for its config and
 * layers, anything else `containerd.io/gc.ref.content.<i>`; an unpacked
 * image's config gets `containerd.io/gc.ref.snapshot.<snapshotter>` = its top
 * snapshot's ChainID (its parents follow). dist writes them the same way, so a
 * store reads the same to dist's collector (src/gc) and to containerd's.
 */
import type { Manager, Provider } from "../content/content.ts";
import { readBlob } from "../content/helpers.ts";
import type { Descriptor } from "../descriptor.ts";
import { isNotFound } from "../errors.ts";
import type { Handler } from "./handlers.ts";
import { childrenOf } from "./manifest.ts";
import { isConfig, isIndex, isLayer, isManifest } from "./mediatypes.ts";
import { MAX_INDEX_DEPTH } from "./select.ts";

export const GC_REF_CONTENT = "containerd.io/gc.ref.content";
export const GC_REF_SNAPSHOT = "containerd.io/gc.ref.snapshot.";

/** The name containerd gives a dist snapshotter ("overlay" is "overlayfs"), as labels and lease resources spell it. */
export function containerdSnapshotterName(name: string): string {
  return name === "overlay" ? "overlayfs" : name;
}

/** The label on an image config naming its unpacked top snapshot on `snapshotter`. */
export function snapshotLabelKey(snapshotter: string): string {
  return `${GC_REF_SNAPSHOT}${containerdSnapshotterName(snapshotter)}`;
}

/** containerd's ChildGCLabels: the label key (a prefix when it ends with ".") for a child of this media type. */
function childLabelKey(child: Descriptor): string {
  if (isConfig(child.mediaType)) return `${GC_REF_CONTENT}.config`;
  if (isManifest(child.mediaType)) return `${GC_REF_CONTENT}.m.`;
  if (isLayer(child.mediaType)) return `${GC_REF_CONTENT}.l.`;
  return `${GC_REF_CONTENT}.`;
}

/** Options of childGCLabels and labelChildren. */
export interface ChildLabelOptions {
  /**
   * Reference the layers too (default). false leaves them out (containerd's
   * ChildGCLabelsFilterLayers): once unpacked, nothing keeps them (`pull --discard-layers`).
   */
  layers?: boolean;
}

/**
 * The labels a manifest or an index gets for its children (every child, before
 * any platform filter), numbered as containerd numbers them: a key ending in
 * "." takes the child's index among those of its kind (`m.0`, `m.1`, `l.0`),
 * another one from the second child of its kind on.
 */
export function childGCLabels(children: readonly Descriptor[], opts: ChildLabelOptions = {}): Record<string, string> {
  const labels: Record<string, string> = {};
  const seen = new Map<string, number>();
  for (const child of children) {
    if (opts.layers === false && isLayer(child.mediaType)) continue;
    let key = childLabelKey(child);
    const n = seen.get(key) ?? 0;
    seen.set(key, n + 1);
    if (n > 0 || key.endsWith(".")) key = `${key}${n}`;
    labels[key] = child.digest;
  }
  return labels;
}

/** Sets the labels of `desc` (a manifest or an index) for its children; the other labels stay. */
export async function labelChildren(
  store: Pick<Manager, "update">,
  desc: Descriptor,
  children: readonly Descriptor[],
  opts: ChildLabelOptions = {},
): Promise<void> {
  if (!isManifest(desc.mediaType) && !isIndex(desc.mediaType)) return;
  const labels = childGCLabels(children, opts);
  const keys = Object.keys(labels);
  if (keys.length === 0) return;
  await store.update(
    desc.digest,
    labels,
    keys.map((k) => `labels.${k}`),
  );
}

/** Wraps a handler that returns a descriptor's children: the descriptor is labelled for them (labelChildren). */
export function childLabelsHandler(h: Handler, store: Pick<Manager, "update">, opts: ChildLabelOptions = {}): Handler {
  return async (desc, signal) => {
    const children = await h(desc, signal);
    await labelChildren(store, desc, children, opts);
    return children;
  };
}

/**
 * Labels every index and manifest of the tree under `target` that is in the
 * store for its children (those not there are left alone): what an image
 * recorded without a fetch walk needs, an import or a manifest pushed to
 * `dist serve`. Labels already right are not written again.
 */
export async function labelTree(
  content: Provider & Pick<Manager, "update">,
  target: Descriptor,
  opts: ChildLabelOptions & { signal?: AbortSignal } = {},
  depth = MAX_INDEX_DEPTH + 1,
): Promise<void> {
  if (depth <= 0 || !(isManifest(target.mediaType) || isIndex(target.mediaType))) return;
  let bytes: Buffer;
  try {
    bytes = await readBlob(content, target, { signal: opts.signal });
  } catch (err) {
    if (isNotFound(err)) return;
    throw err;
  }
  const children = childrenOf(target, bytes);
  const labels = childGCLabels(children, opts);
  const info = await content.info(target.digest);
  const changed = Object.keys(labels).filter((k) => info.labels[k] !== labels[k]);
  if (changed.length > 0) {
    await content.update(
      target.digest,
      labels,
      changed.map((k) => `labels.${k}`),
    );
  }
  if (isIndex(target.mediaType)) for (const child of children) await labelTree(content, child, opts, depth - 1);
}
