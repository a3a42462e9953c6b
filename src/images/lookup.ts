/**
 * Finding the manifest to work on among the blobs of the content store: a
 * digest named on the command line described from its own bytes, and an
 * index's best manifest for a platform.
 */
import type { Provider } from "../content/content.ts";
import { readBlob } from "../content/helpers.ts";
import type { Descriptor } from "../descriptor.ts";
import { validateDigest } from "../digest.ts";
import { InvalidArgumentError, NotFoundError } from "../errors.ts";
import { childrenHandler } from "./children.ts";
import { type Manifest, parseIndex, parseManifest } from "./manifest.ts";
import { isIndex, isManifest, MediaType } from "./mediatypes.ts";
import { hostPlatform, only, type PlatformMatcher } from "./platforms.ts";
import { selectManifests } from "./select.ts";

/** A descriptor for a digest found in the store, its media type read from the blob. */
export async function describeStored(content: Provider, digest: string): Promise<{ desc: Descriptor; bytes: Buffer }> {
  const d = validateDigest(digest);
  let size: number;
  try {
    size = (await content.info(d)).size;
  } catch (err) {
    if (err instanceof NotFoundError) throw new NotFoundError(`manifest ${d} is not in the content store`);
    throw err;
  }
  const probe: Descriptor = { mediaType: "application/octet-stream", digest: d, size };
  const bytes = await readBlob(content, probe);
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

/**
 * The manifest to work on: the descriptor itself, or an index's best match for
 * the platform, through nested indexes (select.ts).
 */
export async function selectManifest(
  content: Provider,
  desc: Descriptor,
  bytes: Buffer,
  matcher: PlatformMatcher = only(hostPlatform()),
  opts: { signal?: AbortSignal } = {},
): Promise<{ desc: Descriptor; manifest: Manifest }> {
  if (isManifest(desc.mediaType)) return { desc, manifest: parseManifest(bytes, desc) };
  const root = parseIndex(bytes, desc).manifests;
  const children = childrenHandler(content);
  const sel = await selectManifests(
    (d, signal) => (d === desc ? Promise.resolve(root) : children(d, signal)),
    desc,
    [matcher],
    opts,
  );
  const pick = sel.manifests[0];
  if (!pick) throw new NotFoundError(`index ${desc.digest} has no manifest for platform ${matcher.toString()}`);
  const mbytes = await readBlob(content, pick, opts);
  return { desc: pick, manifest: parseManifest(mbytes, pick) };
}
