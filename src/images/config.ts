/**
 * What an image's config tells the flows that unpack and list images: its
 * layers (rootfs.diff_ids) and its platform, read from the content store.
 */
import type { Provider } from "../content/content.ts";
import { readBlob } from "../content/helpers.ts";
import type { Descriptor } from "../descriptor.ts";
import { NotFoundError } from "../errors.ts";
import { type ImageRootfs, MAX_CONFIG_SIZE, parseImageRootfs } from "../oci/image-config.ts";
import { formatPlatform } from "./platforms.ts";

/** What unpacking reads from an image config: its layers (rootfs.diff_ids) and platform. */
export type ImageConfigInfo = ImageRootfs;

export async function readImageConfig(
  content: Provider,
  desc: Descriptor,
  signal?: AbortSignal,
): Promise<ImageConfigInfo> {
  let bytes: Buffer;
  try {
    bytes = await readBlob(content, desc, { max: MAX_CONFIG_SIZE, signal });
  } catch (err) {
    if (err instanceof NotFoundError) {
      throw new NotFoundError(
        `image config ${desc.digest} is not in the content store (fetch or pull the image first)`,
      );
    }
    throw err;
  }
  return parseImageRootfs(bytes, desc.digest);
}

/** The platform a manifest is for, as shown: its descriptor's, else its config's. */
export function platformLabel(desc: Descriptor, config: ImageConfigInfo): string {
  const p = desc.platform ?? config.platform;
  return p ? formatPlatform(p) : "unknown";
}
