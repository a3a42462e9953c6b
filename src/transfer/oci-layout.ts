/**
 * The OCI image layout (image-spec image-layout.md) as export writes it and
 * import reads it: `oci-layout`, `index.json` naming the images, and each blob
 * at `blobs/<alg>/<hex>`. Names travel as containerd's exporter writes them:
 * the full name in `io.containerd.image.name`, the tag alone in
 * `org.opencontainers.image.ref.name`.
 */
import type { Descriptor } from "../descriptor.ts";
import { type Digest, digestOf, parseDigest } from "../digest.ts";
import { InvalidArgumentError } from "../errors.ts";
import { type Index, parseIndex } from "../images/manifest.ts";
import { MediaType } from "../images/mediatypes.ts";

export const LAYOUT_FILE = "oci-layout";
export const INDEX_FILE = "index.json";
export const BLOBS_DIR = "blobs";
export const LAYOUT_VERSION = "1.0.0";

/** containerd's annotation: the image's full name. */
export const ANNOTATION_IMAGE_NAME = "io.containerd.image.name";
/** OCI's annotation: the reference of a manifest in a layout (containerd writes the tag alone). */
export const ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name";

/** The bytes of the `oci-layout` file. */
export function layoutFileBytes(): Buffer {
  return Buffer.from(JSON.stringify({ imageLayoutVersion: LAYOUT_VERSION }));
}

/** Checks an `oci-layout` file: the version this reader knows. */
export function checkLayoutFile(bytes: Uint8Array): void {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    throw new InvalidArgumentError(`${LAYOUT_FILE} is not JSON`);
  }
  const version = (v as { imageLayoutVersion?: unknown } | null)?.imageLayoutVersion;
  if (version !== LAYOUT_VERSION) {
    throw new InvalidArgumentError(
      `unsupported OCI layout version ${JSON.stringify(version)} in ${LAYOUT_FILE} (expected ${LAYOUT_VERSION})`,
    );
  }
}

/** `blobs/<alg>/<hex>`: where a layout keeps a blob. */
export function blobPath(digest: Digest): string {
  const { algorithm, hex } = parseDigest(digest);
  return `${BLOBS_DIR}/${algorithm}/${hex}`;
}

/**
 * The digest a layout path names, when it is `blobs/<alg>/<hex>` of a valid
 * digest; undefined for a path outside blobs/, InvalidArgumentError for
 * anything else under it.
 */
export function digestOfBlobPath(path: string): Digest | undefined {
  if (path !== BLOBS_DIR && !path.startsWith(`${BLOBS_DIR}/`)) return undefined;
  const parts = path.split("/");
  if (parts.length !== 3) throw new InvalidArgumentError(`unexpected entry ${path}: not blobs/<algorithm>/<hex>`);
  const d = `${parts[1]}:${parts[2]}`;
  try {
    parseDigest(d);
  } catch {
    throw new InvalidArgumentError(`unexpected entry ${path}: not named by a valid digest`);
  }
  return d as Digest;
}

/** Whether a path is the blobs directory or an algorithm directory under it. */
export function isBlobsDir(path: string): boolean {
  return path === BLOBS_DIR || (path.startsWith(`${BLOBS_DIR}/`) && path.split("/").length === 2);
}

/**
 * The tag part of a name, as containerd's exporter writes `ref.name`:
 * `docker.io/library/redis:7` → `7`, `x@sha256:…` → `@sha256:…`.
 */
export function ociRefName(name: string): string {
  const slash = name.lastIndexOf("/");
  const tail = name.slice(slash + 1);
  const at = tail.search(/[:@]/);
  if (at < 0) return name;
  const object = tail.slice(at);
  return object.startsWith(":") ? object.slice(1) : object;
}

/** A descriptor carrying an image's name the way containerd's exporter writes it. */
export function withNameAnnotations(desc: Descriptor, name: string): Descriptor {
  return {
    ...desc,
    annotations: { ...desc.annotations, [ANNOTATION_IMAGE_NAME]: name, [ANNOTATION_REF_NAME]: ociRefName(name) },
  };
}

/** The bytes of an `index.json` listing these descriptors. */
export function indexBytes(manifests: Descriptor[]): Buffer {
  const index: Index = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests };
  return Buffer.from(JSON.stringify(index));
}

/** The descriptor of an `index.json`'s bytes, as an OCI index blob. */
export function indexDescriptor(bytes: Uint8Array): Descriptor {
  return { mediaType: MediaType.OciIndex, digest: digestOf(bytes), size: bytes.length };
}

/** Parses an `index.json` (capped by the caller) with the checks of any index. */
export function parseLayoutIndex(bytes: Uint8Array): Index {
  return parseIndex(bytes, indexDescriptor(bytes));
}
