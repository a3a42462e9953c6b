/**
 * The metadata of a root, as containerd's metadata.DB: one database
 * (`<root>/metadata.db`) for every namespaced record (images, leases; content
 * labels in content-labels.ts) and the namespaces themselves, so that what
 * spans several stores (deleting a namespace only when it is empty; later,
 * garbage collection from the images and leases to the content and snapshots
 * they hold) reads them in one transaction.
 */
import type { ImageStore } from "../images/image.ts";
import { type Database, openDatabase } from "./db.ts";
import { imagesIn, SqliteImageStore } from "./images.ts";
import { type LeaseManager, leasesIn, SqliteLeaseManager } from "./leases.ts";
import { type NamespaceStore, SqliteNamespaceStore } from "./namespaces.ts";

/** The metadata database of a root (`<root>/metadata.db`): namespaces, and each namespace's images and leases. */
export class Metadata {
  readonly root: string;
  /** @internal the database handle, for this package's own stores */
  readonly db: Database;
  readonly namespaces: NamespaceStore;
  readonly #leases = new Map<string, LeaseManager>();

  constructor(root: string) {
    this.root = root;
    this.db = openDatabase(root);
    // a namespace is empty when it holds neither leases nor images (the order of the refusal's message)
    this.namespaces = new SqliteNamespaceStore(this.db, [leasesIn(this.db), imagesIn(this.db)]);
  }

  images(namespace: string): ImageStore {
    return new SqliteImageStore(this.db, namespace);
  }

  leases(namespace: string): LeaseManager {
    let leases = this.#leases.get(namespace);
    if (!leases) {
      leases = new SqliteLeaseManager(this.db, namespace);
      this.#leases.set(namespace, leases);
    }
    return leases;
  }
}
