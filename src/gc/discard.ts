/**
 * What `pull --discard-layers` does once a pull is done (containerd's
 * discard-unpacked-layers): the compressed layers of the manifests it unpacked
 * (and so verified, layer by layer, against the config's diff IDs) are
 * removed, unless something else references them (another image whose
 * manifest labels them, a lease). The manifests were written without layer
 * labels (fetchImage's discardLayers), so nothing of the pulled image keeps
 * them; `dist fetch` of the image gets them again.
 */
import type { Provider } from "../content/content.ts";
import { readBlob } from "../content/helpers.ts";
import type { Descriptor } from "../descriptor.ts";
import type { Digest } from "../digest.ts";
import { parseManifest } from "../images/manifest.ts";
import type { Metadata } from "../metadata/metadata.ts";
import { type CollectResult, collectGarbage } from "./collect.ts";

/**
 * Removes the layer blobs of `manifests` (unpacked ones) from `namespace`
 * where nothing references them. Call it once the pull's lease is gone.
 */
export async function discardUnpackedLayers(
  md: Metadata,
  namespace: string,
  content: Provider,
  manifests: readonly Descriptor[],
  opts: { signal?: AbortSignal } = {},
): Promise<CollectResult> {
  const layers = new Set<Digest>();
  for (const m of manifests) {
    const manifest = parseManifest(await readBlob(content, m, { signal: opts.signal }), m);
    for (const l of manifest.layers) layers.add(l.digest);
  }
  return collectGarbage(md, { only: { namespace, content: [...layers] }, signal: opts.signal });
}
