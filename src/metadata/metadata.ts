/**
 * The metadata of a root, as containerd's metadata.DB: one database
 * (`<root>/metadata.db`, schema.ts) holding every namespace's records (images,
 * blobs, ingests, snapshots, leases) over the namespace-free stores below it:
 * the blob store (content/local) and the snapshotters (snapshots/). Callers
 * get a namespace's view of each, and what spans several (deleting a namespace
 * only when it is empty; garbage collection from the images and leases to the
 * content and snapshots they hold) reads them in one transaction.
 *
 * @example
 * ```ts
 * const md = openMetadata("/var/lib/dist");
 * const content = md.content("k8s.io");          // Store: blobs committed in k8s.io
 * const sn = md.snapshotter("k8s.io", "native"); // Snapshotter: k8s.io's keys
 * ```
 */

import { resolve } from "node:path";
import { LocalStore } from "../content/local/store.ts";
import type { ImageStore } from "../images/image.ts";
import type { FsSnapshotter } from "../snapshots/fs-snapshotter.ts";
import { checkName, defaultSnapshotterName, openBackendSnapshotter, type SnapshotterName } from "../snapshots/open.ts";
import { type ContentOptions, NamespacedContentStore } from "./content.ts";
import { type Database, openDatabase } from "./db.ts";
import { SqliteImageStore } from "./images.ts";
import { type LeaseManager, SqliteLeaseManager } from "./leases.ts";
import { type NamespaceStore, SqliteNamespaceStore, validateNamespace } from "./namespaces.ts";
import { migrate } from "./schema.ts";
import { NamespacedSnapshotter, type SnapshotterOptions } from "./snapshots.ts";

/** How a root's Metadata opens its stores. */
export interface MetadataOptions {
  /** How long content writers wait for a ref another writer holds (ms); 60 s when absent. */
  lockTimeout?: number;
}

/** The metadata database of a root (`<root>/metadata.db`): namespaces, and each namespace's images and leases. */
export class Metadata {
  readonly root: string;
  /** @internal the database handle, for this package's own stores */
  readonly db: Database;
  readonly namespaces: NamespaceStore;
  /** The blob store below every namespace's content. */
  readonly blobs: LocalStore;
  readonly #backends = new Map<SnapshotterName, FsSnapshotter>();

  /** Opens (and, once, migrates) the metadata of `root`. */
  constructor(root: string, opts: MetadataOptions = {}) {
    this.root = root;
    this.db = openDatabase(root);
    migrate(this.db, root);
    this.namespaces = new SqliteNamespaceStore(this.db);
    this.blobs = new LocalStore({ root, lockTimeout: opts.lockTimeout });
  }

  images(namespace: string): ImageStore {
    return new SqliteImageStore(this.db, namespace);
  }

  leases(namespace: string): LeaseManager {
    return new SqliteLeaseManager(this.db, validateNamespace(namespace));
  }

  /** The content of a namespace: its blobs and ingests (metadata/content.ts). */
  content(namespace: string, opts: ContentOptions = {}): NamespacedContentStore {
    return new NamespacedContentStore(this.db, this.blobs, validateNamespace(namespace), opts);
  }

  /** A namespace's snapshots on snapshotter `name` (overlay or native; the root's default when absent). */
  snapshotter(namespace: string, name?: string, opts: SnapshotterOptions = {}): NamespacedSnapshotter {
    const backend = this.backendSnapshotter(name, { mountable: opts.mountable });
    return new NamespacedSnapshotter(this.db, backend, validateNamespace(namespace), opts);
  }

  /**
   * @internal The namespace-free snapshotter under this root (opened once; one opened
   * with `mountable: false` is not kept, so a later open still checks it can mount).
   */
  backendSnapshotter(name?: string, opts: { mountable?: boolean } = {}): FsSnapshotter {
    const n = name ? checkName(name) : defaultSnapshotterName(this.root);
    let sn = this.#backends.get(n);
    if (!sn) {
      sn = openBackendSnapshotter(this.root, n, opts);
      if (opts.mountable !== false) this.#backends.set(n, sn);
    }
    return sn;
  }
}

const opened = new Map<string, Metadata>();

/** The Metadata of a root, one per process (a database closed meanwhile is opened again). */
export function openMetadata(root: string): Metadata {
  const path = resolve(root);
  const md = opened.get(path);
  if (md && openDatabase(path) === md.db) return md;
  const fresh = new Metadata(path);
  opened.set(path, fresh);
  return fresh;
}

/** The content store of `namespace` under `root`. */
export function namespacedContentStore(
  root: string,
  namespace = "default",
  opts: ContentOptions = {},
): NamespacedContentStore {
  return openMetadata(root).content(namespace, opts);
}

/** The image store of `namespace` under `root`. */
export function openSqliteImageStore(root: string, namespace = "default"): ImageStore {
  return openMetadata(root).images(namespace);
}

/** The snapshots of `namespace` on snapshotter `name` (the root's default when absent) under `root`. */
export function openSnapshotterAt(
  root: string,
  name?: string,
  namespace = "default",
  opts: SnapshotterOptions = {},
): NamespacedSnapshotter {
  return openMetadata(root).snapshotter(namespace, name, opts);
}
