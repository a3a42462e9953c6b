/**
 * The Applier (containerd's diff.Applier): applies a layer blob onto the mounts
 * of an active snapshot, reading it from a content provider, and returns the
 * diffID of its uncompressed tar. The unpacker and the daemon's Diff service
 * both call one; FileSystemApplier (./filesystem.ts) is the implementation.
 */
import type { Readable } from "node:stream";
import type { Descriptor } from "../descriptor.ts";
import type { Digest } from "../digest.ts";
import type { Mount } from "../snapshots/snapshotter.ts";

/** Options of Applier.apply. */
export interface ApplyConfig {
  signal?: AbortSignal;
  /** Apply numeric ownership from the layer (default: when running as root). */
  sameOwner?: boolean;
  /** Non-fatal problems (xattrs the filesystem refuses, devices skipped without root). */
  onWarning?: (message: string) => void;
  /** Compressed bytes of the layer consumed so far, as they go. */
  onProgress?: (bytes: number) => void;
  /**
   * The layer's bytes while they download (a fetch teed into the applier: one
   * pass), instead of the blob read from the content provider. Like the stored
   * blob, they are verified: the stream errors unless the download commits.
   */
  stream?: Readable;
}

/** What Applier.apply applied: the layer's diffID and uncompressed size. */
export interface AppliedDiff {
  /** Digest of the uncompressed tar. */
  diffID: Digest;
  /** Bytes of the uncompressed tar. */
  size: number;
}

/** Applies a layer blob onto the mounts of an active snapshot (containerd's diff.Applier). */
export interface Applier {
  /** Applies the layer `desc` onto `mounts` (one bind or overlay mount of an active snapshot). */
  apply(desc: Descriptor, mounts: Mount[], config?: ApplyConfig): Promise<AppliedDiff>;
}
