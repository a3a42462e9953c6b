/**
 * Media types of OCI and Docker images, and the predicates every walk uses to
 * tell manifests, indexes, configs, layers and the rest apart.
 */
import type { Descriptor } from "../descriptor.ts";

/** The media types of OCI and Docker images, by name (`MediaType.OciManifest`, …). */
export const MediaType = {
  // Docker schema 2
  DockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  DockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  DockerConfig: "application/vnd.docker.container.image.v1+json",
  DockerLayer: "application/vnd.docker.image.rootfs.diff.tar",
  DockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  DockerLayerZstd: "application/vnd.docker.image.rootfs.diff.tar.zstd",
  DockerForeignLayer: "application/vnd.docker.image.rootfs.foreign.diff.tar",
  DockerForeignLayerGzip: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  DockerPluginConfig: "application/vnd.docker.plugin.v1+json",
  // Docker schema 1: refused
  DockerSchema1Manifest: "application/vnd.docker.distribution.manifest.v1+json",
  DockerSchema1SignedManifest: "application/vnd.docker.distribution.manifest.v1+prettyjws",
  // OCI image-spec
  OciManifest: "application/vnd.oci.image.manifest.v1+json",
  OciIndex: "application/vnd.oci.image.index.v1+json",
  OciConfig: "application/vnd.oci.image.config.v1+json",
  OciLayer: "application/vnd.oci.image.layer.v1.tar",
  OciLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  OciLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  OciForeignLayer: "application/vnd.oci.image.layer.nondistributable.v1.tar",
  OciForeignLayerGzip: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  OciForeignLayerZstd: "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
  OciEmpty: "application/vnd.oci.empty.v1+json",
  // Attestations (BuildKit provenance / SBOM)
  InToto: "application/vnd.in-toto+json",
} as const;

export type KnownMediaType = (typeof MediaType)[keyof typeof MediaType];

/** The Accept list for resolving a tag: indexes and manifests of both families. */
export const MANIFEST_ACCEPT: readonly string[] = [
  MediaType.OciIndex,
  MediaType.OciManifest,
  MediaType.DockerManifestList,
  MediaType.DockerManifest,
];

/** Docker's annotation marking an attestation manifest inside an index. */
export const ANNOTATION_REFERENCE_TYPE = "vnd.docker.reference.type";
export const ANNOTATION_REFERENCE_DIGEST = "vnd.docker.reference.digest";

/** The media type without parameters (`; charset=…`), lowercased. */
export function baseMediaType(mt: string): string {
  const i = mt.indexOf(";");
  return (i < 0 ? mt : mt.slice(0, i)).trim().toLowerCase();
}

/** Whether a media type is an image manifest (OCI or Docker schema 2). */
export function isManifest(mt: string): boolean {
  const b = baseMediaType(mt);
  return b === MediaType.OciManifest || b === MediaType.DockerManifest;
}

/** Whether a media type is an index (OCI image index or Docker manifest list). */
export function isIndex(mt: string): boolean {
  const b = baseMediaType(mt);
  return b === MediaType.OciIndex || b === MediaType.DockerManifestList;
}

export function isSchema1(mt: string): boolean {
  const b = baseMediaType(mt);
  return b === MediaType.DockerSchema1Manifest || b === MediaType.DockerSchema1SignedManifest;
}

/** Whether a media type is an image config (OCI or Docker). */
export function isConfig(mt: string): boolean {
  const b = baseMediaType(mt);
  return b === MediaType.OciConfig || b === MediaType.DockerConfig;
}

/** Layers of every flavour we can unpack: tar, gzip, zstd, docker and OCI, foreign included. */
export function isLayer(mt: string): boolean {
  const b = baseMediaType(mt);
  if (b.startsWith("application/vnd.docker.image.rootfs.")) return true;
  return b.startsWith("application/vnd.oci.image.layer.");
}

/** Non-distributable layers: their bytes live at `urls`, often not in the registry. */
export function isForeignLayer(mt: string): boolean {
  const b = baseMediaType(mt);
  return b.includes(".foreign.") || b.includes(".nondistributable.");
}

export function isInToto(mt: string): boolean {
  return baseMediaType(mt) === MediaType.InToto;
}

/**
 * An attestation manifest inside an index: BuildKit marks them with platform
 * unknown/unknown and the `vnd.docker.reference.type` annotation.
 */
export function isAttestationManifest(desc: Descriptor): boolean {
  if (desc.annotations?.[ANNOTATION_REFERENCE_TYPE] === "attestation-manifest") return true;
  return desc.platform?.os === "unknown" && desc.platform?.architecture === "unknown";
}

/** What kind of object a descriptor names, for keys and notes. */
export type DescriptorKind = "manifest" | "index" | "config" | "layer" | "attestation" | "unknown";

export function descriptorKind(desc: Descriptor): DescriptorKind {
  const mt = desc.mediaType;
  if (isIndex(mt)) return "index";
  if (isManifest(mt)) return isAttestationManifest(desc) ? "attestation" : "manifest";
  if (isConfig(mt)) return "config";
  if (isLayer(mt)) return "layer";
  if (isInToto(mt)) return "attestation";
  return "unknown";
}

/**
 * The ingest and progress key of a descriptor (containerd's MakeRefKey):
 * `manifest-`, `index-`, `config-`, `layer-`, `attestation-` or `unknown-<digest>`.
 */
export function refKey(desc: Descriptor): string {
  return `${descriptorKind(desc)}-${desc.digest}`;
}
