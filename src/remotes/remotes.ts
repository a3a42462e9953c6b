/**
 * Remotes: a Resolver turns a reference into a canonical name and a root
 * descriptor, and hands out Fetchers and Pushers for that repository.
 * Decisions about hosts, mirrors, auth and retries stay behind these interfaces.
 */
import type { Readable } from "node:stream";
import type { Writer } from "../content/content.ts";
import type { OpenAt } from "../content/helpers.ts";
import type { Descriptor } from "../descriptor.ts";

/** A resolved reference: the canonical name and the root descriptor (a manifest or an index). */
export interface Resolved {
  /** Canonical, normalised name to record in the image store (e.g. docker.io/library/redis:latest). */
  name: string;
  desc: Descriptor;
}

/** Options of Fetcher.fetch: a resume offset, a signal, whether to verify. */
export interface FetchOptions {
  /** Resume: start at this byte (a Range request). */
  offset?: number;
  signal?: AbortSignal;
  /**
   * false: the caller verifies the digest itself (the content store's writer does
   * on commit), so the fetcher does not hash the bytes a second time. The size is
   * enforced either way: more bytes than the descriptor says is an error.
   */
  verify?: boolean;
}

/** Streams objects (manifests, indexes, blobs) of one repository by descriptor. */
export interface Fetcher {
  /**
   * Streams the object. The stream is verified while it flows: it errors with
   * DataLossError when the size or digest differ from the descriptor (the digest
   * only for a whole object read with `verify` left on).
   */
  fetch(desc: Descriptor, opts?: FetchOptions): Promise<Readable>;
}

/** What a push did with an object: sent it, found it there already, or mounted it from another repository. */
export type PushStatus = "pushed" | "exists" | "mounted";

/** How Pusher.pushBlob goes about it: cancellation, a mount source, progress. */
export interface UploadOptions {
  signal?: AbortSignal;
  /** A repository of the same registry holding the blob: tried as a cross-repository mount. */
  mountFrom?: string;
  /** Bytes of the blob sent so far, counted from its start. */
  onProgress?: (offset: number) => void;
}

/** Uploads objects to one repository, each through a Writer. */
export interface Pusher {
  /** A writer whose commit completes the upload; AlreadyExistsError when the remote has it. */
  push(desc: Descriptor, opts?: { signal?: AbortSignal }): Promise<Writer>;
  /**
   * Uploads a blob read from `open(offset)` unless the remote has it (or can
   * mount it), resuming an interrupted upload from the remote's offset.
   */
  pushBlob(desc: Descriptor, open: OpenAt, opts?: UploadOptions): Promise<PushStatus>;
  /** Stores a manifest or index (its bytes) by digest, or under `tag`. */
  pushManifest(desc: Descriptor, bytes: Buffer, opts?: { tag?: string; signal?: AbortSignal }): Promise<PushStatus>;
}

/** Turns a reference into a name and a root descriptor, and hands out the repository's Fetcher and Pusher. */
export interface Resolver {
  resolve(ref: string, opts?: { signal?: AbortSignal }): Promise<Resolved>;
  fetcher(ref: string): Promise<Fetcher>;
  pusher(ref: string): Promise<Pusher>;
}
