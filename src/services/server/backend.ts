/**
 * What the services serve: per-namespace views of the embedded stores under
 * one root, its namespaces and leases. Stores are opened once per namespace
 * and reused for the life of the daemon.
 */
import type { Store } from "../../content/content.ts";
import type { ImageStore } from "../../images/image.ts";
import type { LeaseManager } from "../../metadata/leases.ts";
import type { NamespaceStore } from "../../metadata/namespaces.ts";
import type { Snapshotter } from "../../snapshots/snapshotter.ts";

export interface Backend {
  readonly root: string;
  readonly namespaces: NamespaceStore;
  leases(ns: string): LeaseManager;
  content(ns: string): Promise<Store>;
  images(ns: string): Promise<ImageStore>;
  /** A snapshotter by its containerd name ("overlayfs", "native"); NotFoundError when unknown. */
  snapshotter(ns: string, name: string): Promise<Snapshotter>;
  /** The snapshotter names this daemon serves (for introspection). */
  snapshotters(): string[];
  close(): Promise<void>;
}

/** Memoises an async opener per key. */
export function perKey<T>(open: (key: string) => Promise<T>): { get(key: string): Promise<T>; all(): Promise<T[]> } {
  const cache = new Map<string, Promise<T>>();
  return {
    get(key) {
      let p = cache.get(key);
      if (!p) {
        p = open(key);
        cache.set(key, p);
        p.catch(() => cache.delete(key));
      }
      return p;
    },
    async all() {
      const out: T[] = [];
      for (const p of cache.values()) {
        try {
          out.push(await p);
        } catch {
          // failed opens were never usable
        }
      }
      return out;
    },
  };
}
