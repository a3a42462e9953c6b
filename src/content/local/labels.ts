/**
 * Where the local store keeps blob labels. Blob files are immutable and shared;
 * labels are mutable and belong to a namespace, so they live elsewhere (the
 * metadata database: metadata/content-labels.ts) and whoever opens the store
 * hands it one of these, already bound to the store's namespace.
 */
import type { Digest } from "../../digest.ts";

/** A blob's labels and when they last changed. */
export interface LabelSet {
  labels: Record<string, string>;
  /** When the labels last changed (ms since the epoch); 0 when there are none. */
  updatedAt: number;
}

/** Where LocalStore keeps the labels of its blobs, bound to a namespace (SqliteLabelStore). */
export interface LabelStore {
  get(digest: Digest): LabelSet;
  /** Every labelled digest. */
  all(): Map<Digest, LabelSet>;
  /** Replaces all labels of a digest (empty values are dropped). */
  replace(digest: Digest, labels: Record<string, string>): void;
  /** Sets the given keys (an empty value removes the key), leaving others alone. */
  patch(digest: Digest, changes: Record<string, string>): void;
  /** Forgets a deleted blob's labels, in every namespace: its bytes are gone for all. */
  removeAll(digest: Digest): void;
}
