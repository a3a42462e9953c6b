/**
 * dist as a library: the same pieces the CLI is built from. The README's Library
 * section shows a pull and lists every export; examples/ has one program per main
 * entry point (pull, fetch, resolver, content store, snapshotters, apply).
 *
 * Each export has a doc comment and is named in the README: test/package/api.test.ts
 * fails otherwise, and when a public signature uses a type of this project that is
 * not exported here (a consumer could not name it).
 */
export { type ApplyOptions, type ApplyResult, applyLayer, type LayerFile } from "./archive/apply.ts";
export { type Compression, compressStream, decompressStream, detectCompression } from "./archive/compression.ts";
export { type DiffOptions, writeDiff } from "./archive/diff.ts";
export type { TarEntry, TarEntryType, TarHeader, TarHeaderInit } from "./archive/tar/index.ts";
export { readTar, TarWriter } from "./archive/tar/index.ts";
export type * from "./content/content.ts";
export { hasBlobFiles } from "./content/content.ts";
export type { CopyOptions, CopyResult, OpenAt, Source, WriteBlobOptions, WriteBlobResult } from "./content/helpers.ts";
export { copyToWriter, MAX_MANIFEST_SIZE, readBlob, readVerified, writeBlob } from "./content/helpers.ts";
export { LocalStore } from "./content/local/index.ts";
export type { LocalStoreOptions, LocalWriterOptions } from "./content/local/store.ts";
export type { LocalWriter } from "./content/local/writer.ts";
export type { Descriptor, Platform } from "./descriptor.ts";
export type { AppliedDiff, Applier, ApplyConfig } from "./diff/applier.ts";
export { FileSystemApplier } from "./diff/filesystem.ts";
export type { Algorithm, Digest } from "./digest.ts";
export { Digester, digestOf, parseDigest, VerifyingStream, validateDigest } from "./digest.ts";
export {
  AlreadyExistsError,
  DataLossError,
  DistError,
  type ErrorCode,
  errorMessage,
  FailedPreconditionError,
  InvalidArgumentError,
  isAlreadyExists,
  isErrorCode,
  isNotFound,
  NotFoundError,
  OutOfRangeError,
  PermissionDeniedError,
  UnauthenticatedError,
  UnavailableError,
  UnimplementedError,
  wrapError,
} from "./errors.ts";
export {
  type CollectOptions,
  type CollectResult,
  collectGarbage,
  type Removed,
  type RemovedKind,
  type RemovedTotals,
} from "./gc/collect.ts";
export { type DiskUsage, diskUsage, type UsageRow } from "./gc/df.ts";
export { discardUnpackedLayers } from "./gc/discard.ts";
export { holdProcessLease, type ProcessLease, type ProcessLeaseOptions } from "./gc/process-lease.ts";
export { GcScheduler, type GcSchedulerOptions } from "./gc/scheduler.ts";
export { type CheckResult, check, imageSize } from "./images/check.ts";
export { childrenHandler, filterPlatforms, type NoteFn } from "./images/children.ts";
export type { Handler } from "./images/handlers.ts";
export { type DispatchOptions, dispatch, handlers, Limiter, SKIP, SkipError, walk } from "./images/handlers.ts";
export type { Image, ImageStore } from "./images/image.ts";
export { type Index, type Manifest, parseIndex, parseManifest } from "./images/manifest.ts";
export { isConfig, isIndex, isLayer, isManifest, MediaType } from "./images/mediatypes.ts";
export { narrowIndex } from "./images/narrow.ts";
export {
  allPlatforms,
  defaultMatcher,
  formatPlatform,
  hostPlatform,
  only,
  ordered,
  type PlatformMatcher,
  parsePlatform,
} from "./images/platforms.ts";
export {
  type IndexChildren,
  MAX_INDEX_DEPTH,
  type Selection,
  type SelectOptions,
  selectManifests,
} from "./images/select.ts";
export { type ImageTree, imageTree, type MissingBlob } from "./images/tree.ts";
export { type ContentOptions, NamespacedContentStore } from "./metadata/content.ts";
export type { Lease, LeaseManager, LeaseResource } from "./metadata/leases.ts";
export {
  Metadata,
  type MetadataOptions,
  namespacedContentStore,
  openMetadata,
  openSnapshotterAt,
  openSqliteImageStore,
} from "./metadata/metadata.ts";
export type { Namespace, NamespaceStore } from "./metadata/namespaces.ts";
export { NamespacedSnapshotter, type SnapshotterOptions } from "./metadata/snapshots.ts";
export { type ProgressEvent, type ProgressSummary, progressEvent, progressSummary } from "./progress/events.ts";
export { type JsonProgressOptions, JsonProgressWriter } from "./progress/json.ts";
export { type ProgressOutput, ProgressRenderer, type RendererOptions, tableLines } from "./progress/render.ts";
export {
  type ProgressEntry,
  type ProgressState,
  ProgressTracker,
  type ProgressUpdate,
  type TrackerEvents,
} from "./progress/tracker.ts";
export { type PullOptions, type PullResult, pull } from "./pull.ts";
export { familiar, normalize, parseReference } from "./reference/index.ts";
export type { ParseOptions, Reference } from "./reference/reference.ts";
export { checkListen, Htpasswd } from "./registry/auth.ts";
export {
  type ListenOptions,
  RegistryServer,
  type RegistryServerOptions,
  type RequestEntry,
} from "./registry/server.ts";
export type { UploadLimits } from "./registry/uploads.ts";
export { Upstream, type UpstreamOptions } from "./registry/upstream.ts";
export { findHostDirectory, readCertsDir, systemHostsDirs } from "./remotes/docker/certsd.ts";
export type { ClientKeyPair } from "./remotes/docker/client-certs.ts";
export type { DockerResolver, ProxyConfig, RegistryOptions } from "./remotes/docker/index.ts";
export { createResolver } from "./remotes/docker/index.ts";
export {
  type BlobResult,
  type ContentTarget,
  type FetchBlobOptions,
  FetchGroup,
  type FetchHandlerOptions,
  type FetchImageOptions,
  type FetchImageResult,
  fetchBlob,
  fetchHandler,
  fetchImage,
  fetchObject,
  type Tee,
} from "./remotes/handlers.ts";
export { type FetchMissingLayersOptions, fetchMissingLayers } from "./remotes/refetch.ts";
export type {
  Fetcher,
  FetchOptions,
  Pusher,
  PushStatus,
  Resolved,
  Resolver,
  UploadOptions,
} from "./remotes/remotes.ts";
export { distributionSourceKey, mountCandidate } from "./remotes/source-labels.ts";
export { SNAPSHOTTERS, type SnapshotterName } from "./snapshots/open.ts";
export type {
  Kind as SnapshotKind,
  LocalSnapshotter,
  Mount,
  SnapshotInfo,
  SnapshotOptions,
  Snapshotter,
  Usage as SnapshotUsage,
} from "./snapshots/snapshotter.ts";
export { type ModeChange, type PrepareRootOptions, prepareRoot } from "./store-root.ts";
export { epochNsOf, PreciseDate } from "./time.ts";
export { type CopyImageOptions, type CopyImageResult, copyImage } from "./transfer/copy.ts";
export { type ExportOptions, type ExportOutput, type ExportResult, exportImages } from "./transfer/export.ts";
export { type ImportOptions, type ImportResult, importImages } from "./transfer/import.ts";
export type { NamingOptions } from "./transfer/import-names.ts";
export { type LocalContent, type PushImageOptions, type PushImageResult, pushImage } from "./transfer/push.ts";
export { type PushedTree, type PushTreeOptions, pushTree, type TransferSource } from "./transfer/push-tree.ts";
export { chainID, chainIDs } from "./unpack/chainid.ts";
export {
  type UnpackContent,
  type UnpackEvent,
  type UnpackedManifest,
  Unpacker,
  type UnpackerOptions,
  type UnpackStatus,
  unpackManifest,
} from "./unpack/unpacker.ts";
