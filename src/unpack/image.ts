/**
 * Unpacking an image whose blobs are in the content store: read the manifest
 * and its config, unpack the layers by ChainID, label the blobs as containerd
 * does (`containerd.io/uncompressed` on layers, `gc.ref.snapshot.<name>` on the
 * config). The streaming pull builds an Unpacker itself; this is the path of
 * `dist rootfs unpack` and of pulls whose blobs were all present.
 */
import type { Descriptor } from "../descriptor.ts";
import { type Digest, validateDigest } from "../digest.ts";
import { InvalidArgumentError, NotFoundError } from "../errors.ts";
import { type Manifest, parseIndex, parseManifest, readSmallBlob } from "../images/manifest.ts";
import { isIndex, isManifest, MediaType } from "../images/mediatypes.ts";
import { formatPlatform, hostPlatform, only, type PlatformMatcher } from "../images/platforms.ts";
import { type ImageRootfs, parseImageRootfs } from "../oci/image-config.ts";
import type { Snapshotter } from "../snapshots/snapshotter.ts";
import { type ContentAccess, Unpacker, type UnpackerOptions } from "./unpacker.ts";

/** What unpacking reads from an image config: its layers (rootfs.diff_ids) and platform. */
export type ImageConfigInfo = ImageRootfs;

const MAX_CONFIG = 8 << 20;

export async function readImageConfig(
  content: ContentAccess,
  desc: Descriptor,
  signal?: AbortSignal,
): Promise<ImageConfigInfo> {
  let bytes: Buffer;
  try {
    bytes = await readSmallBlob(content, desc, { max: MAX_CONFIG, signal });
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

/** A descriptor for a digest found in the store, its media type read from the blob. */
export async function describeStored(
  content: ContentAccess,
  digest: string,
): Promise<{ desc: Descriptor; bytes: Buffer }> {
  const d = validateDigest(digest);
  let size: number;
  try {
    size = (await content.info(d)).size;
  } catch (err) {
    if (err instanceof NotFoundError) throw new NotFoundError(`manifest ${d} is not in the content store`);
    throw err;
  }
  const probe: Descriptor = { mediaType: "application/octet-stream", digest: d, size };
  const bytes = await readSmallBlob(content, probe);
  let mt: unknown;
  let parsed: { mediaType?: unknown; manifests?: unknown; layers?: unknown };
  try {
    parsed = JSON.parse(bytes.toString("utf8"));
    mt = parsed.mediaType;
  } catch {
    throw new InvalidArgumentError(`${d} is not a manifest (not JSON)`);
  }
  let mediaType = typeof mt === "string" ? mt : "";
  if (!mediaType) {
    if (Array.isArray(parsed.manifests)) mediaType = MediaType.OciIndex;
    else if (Array.isArray(parsed.layers)) mediaType = MediaType.OciManifest;
  }
  if (!isManifest(mediaType) && !isIndex(mediaType)) {
    throw new InvalidArgumentError(`${d} is not an image manifest or index (media type "${mediaType}")`);
  }
  return { desc: { mediaType, digest: d, size }, bytes };
}

/** The manifest to unpack: the descriptor itself, or an index's best match for the platform. */
export async function selectManifest(
  content: ContentAccess,
  desc: Descriptor,
  bytes: Buffer,
  matcher: PlatformMatcher = only(hostPlatform()),
): Promise<{ desc: Descriptor; manifest: Manifest }> {
  if (isManifest(desc.mediaType)) return { desc, manifest: parseManifest(bytes, desc) };
  const idx = parseIndex(bytes, desc);
  const candidates = idx.manifests.filter((m) => isManifest(m.mediaType) && (!m.platform || matcher.match(m.platform)));
  candidates.sort((a, b) => (a.platform && b.platform ? (matcher.less(a.platform, b.platform) ? -1 : 1) : 0));
  const pick = candidates[0];
  if (!pick) throw new NotFoundError(`index ${desc.digest} has no manifest for platform ${matcher.toString()}`);
  const mbytes = await readSmallBlob(content, pick);
  return { desc: pick, manifest: parseManifest(mbytes, pick) };
}

export interface UnpackImageOptions extends Omit<UnpackerOptions, "content" | "snapshotter"> {
  content: ContentAccess;
  snapshotter: Snapshotter;
}

export interface UnpackResult {
  chainID: Digest;
  manifest: Descriptor;
  config: ImageConfigInfo;
}

/** Unpacks a manifest whose config and layers are all in the content store. */
export async function unpackManifest(
  desc: Descriptor,
  manifest: Manifest,
  opts: UnpackImageOptions,
): Promise<UnpackResult> {
  const config = await readImageConfig(opts.content, manifest.config, opts.signal);
  if (manifest.layers.length === 0) throw new InvalidArgumentError(`manifest ${desc.digest} has no layers to unpack`);
  const u = new Unpacker(manifest.layers, opts);
  for (const l of manifest.layers) u.available(l.digest);
  u.start(config.diffIDs);
  const chainID = await u.wait();
  await labelConfig(opts.content, manifest.config, opts.snapshotter.name, chainID);
  return { chainID, manifest: desc, config };
}

/** containerd's GC edge from the config to the image's top snapshot. */
export async function labelConfig(
  content: ContentAccess,
  config: Descriptor,
  snapshotter: string,
  chainID: Digest,
): Promise<void> {
  if (!content.update) return;
  const key = `containerd.io/gc.ref.snapshot.${snapshotter}`;
  await content.update(config.digest, { [key]: chainID }, [`labels.${key}`]);
}

export function platformLabel(desc: Descriptor, config: ImageConfigInfo): string {
  const p = desc.platform ?? config.platform;
  return p ? formatPlatform(p) : "unknown";
}
