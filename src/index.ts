/**
 * dist as a library: the same pieces the CLI is built from.
 *
 * @example
 * ```ts
 * import { createResolver, namespacedContentStore, openSqliteImageStore, openSnapshotterAt, pull } from "dist";
 * const root = "/var/lib/dist";
 * const result = await pull({
 *   resolver: createResolver({ plainHttp: true }),
 *   content: namespacedContentStore(root, "default"),
 *   images: openSqliteImageStore(root, "default"),
 *   snapshotter: openSnapshotterAt(root, "native"),
 *   ref: "127.0.0.1:5000/library/busybox:latest",
 * });
 * console.log(result.name, result.unpacked[0]?.chainID);
 * ```
 */
export { type ApplyOptions, type ApplyResult, applyLayer, type LayerFile } from "./archive/apply.ts";
export { compressStream, decompressStream, detectCompression } from "./archive/compression.ts";
export { writeDiff } from "./archive/diff.ts";
export { readTar, TarWriter } from "./archive/tar/index.ts";
export type * from "./content/content.ts";
export { hasBlobFiles } from "./content/content.ts";
export { copyToWriter, MAX_MANIFEST_SIZE, readBlob, readVerified, writeBlob } from "./content/helpers.ts";
export { type LabelStore, LocalStore } from "./content/local/index.ts";
export type { Descriptor, Platform } from "./descriptor.ts";
export type { AppliedDiff, Applier, ApplyConfig } from "./diff/applier.ts";
export { FileSystemApplier } from "./diff/filesystem.ts";
export type { Digest } from "./digest.ts";
export { Digester, digestOf, parseDigest, VerifyingStream, validateDigest } from "./digest.ts";
export * from "./errors.ts";
export { check, imageSize } from "./images/check.ts";
export { childrenHandler, filterPlatforms } from "./images/children.ts";
export type { Handler } from "./images/handlers.ts";
export { dispatch, handlers, SKIP, walk } from "./images/handlers.ts";
export type { Image, ImageStore } from "./images/image.ts";
export { defaultMatcher, hostPlatform, parsePlatform } from "./images/platforms.ts";
export { namespacedContentStore, SqliteLabelStore } from "./metadata/content-labels.ts";
export { openSqliteImageStore } from "./metadata/images.ts";
export type { Lease, LeaseManager, LeaseResource } from "./metadata/leases.ts";
export { Metadata } from "./metadata/metadata.ts";
export type { Namespace, NamespaceStore } from "./metadata/namespaces.ts";
export { ProgressRenderer } from "./progress/render.ts";
export { ProgressTracker } from "./progress/tracker.ts";
export { type PullOptions, type PullResult, pull } from "./pull.ts";
export { familiar, normalize, parseReference } from "./reference/index.ts";
export { checkListen, Htpasswd } from "./registry/auth.ts";
export { RegistryServer, type RegistryServerOptions } from "./registry/server.ts";
export { Upstream, type UpstreamOptions } from "./registry/upstream.ts";
export { StoreView } from "./registry/view.ts";
export type { RegistryOptions } from "./remotes/docker/index.ts";
export { createResolver } from "./remotes/docker/index.ts";
export { fetchBlob, fetchHandler, fetchImage, fetchObject, type Tee } from "./remotes/handlers.ts";
export type { Fetcher, Pusher, Resolved, Resolver } from "./remotes/remotes.ts";
export { openSnapshotterAt } from "./snapshots/open.ts";
export type { Mount, Snapshotter } from "./snapshots/snapshotter.ts";
export { chainID, chainIDs } from "./unpack/chainid.ts";
export {
  type UnpackEvent,
  type UnpackedManifest,
  Unpacker,
  type UnpackerOptions,
  unpackManifest,
} from "./unpack/unpacker.ts";
