/**
 * containerd collects content nothing references: an image record holds only
 * its target, and the rest of the tree is kept through labels on each parent
 * (`containerd.io/gc.ref.content.m.<i>` for an index's manifests, `.config`
 * and `.l.<i>` for a manifest's config and layers), which containerd's own
 * clients write while fetching. When an image is recorded through a daemon
 * socket, the adapter writes the same labels on the parts of the tree that
 * are present, so a later garbage collection keeps them.
 */
import type { Store } from "../../content/content.ts";
import { readBlob } from "../../content/helpers.ts";
import type { Descriptor } from "../../descriptor.ts";
import { isNotFound } from "../../errors.ts";
import { parseIndex, parseManifest } from "../../images/manifest.ts";
import { isIndex, isManifest } from "../../images/mediatypes.ts";

const PREFIX = "containerd.io/gc.ref.content";

/** The labels containerd puts on a parent for its children. */
export function childLabels(
  desc: Descriptor,
  bytes: Uint8Array,
): { labels: Record<string, string>; next: Descriptor[] } {
  const labels: Record<string, string> = {};
  if (isManifest(desc.mediaType)) {
    const m = parseManifest(bytes, desc);
    labels[`${PREFIX}.config`] = m.config.digest;
    m.layers.forEach((l, i) => {
      labels[`${PREFIX}.l.${i}`] = l.digest;
    });
    return { labels, next: [] };
  }
  if (isIndex(desc.mediaType)) {
    const idx = parseIndex(bytes, desc);
    idx.manifests.forEach((m, i) => {
      labels[`${PREFIX}.m.${i}`] = m.digest;
    });
    return { labels, next: idx.manifests };
  }
  return { labels, next: [] };
}

/** Labels every present index and manifest under `target` (depth-limited). */
export async function labelTree(content: Store, target: Descriptor, depth = 4): Promise<void> {
  if (depth <= 0 || !(isManifest(target.mediaType) || isIndex(target.mediaType))) return;
  let bytes: Buffer;
  try {
    bytes = await readBlob(content, target);
  } catch (err) {
    if (isNotFound(err)) return;
    throw err;
  }
  const { labels, next } = childLabels(target, bytes);
  const info = await content.info(target.digest);
  const changed = Object.keys(labels).filter((k) => info.labels[k] !== labels[k]);
  if (changed.length > 0) {
    await content.update(
      target.digest,
      labels,
      changed.map((k) => `labels.${k}`),
    );
  }
  for (const child of next) await labelTree(content, child, depth - 1);
}
