/**
 * What the services serve: per-namespace views of the embedded stores under
 * one root, its namespaces and leases. A call's writes go on the lease it
 * names (`lease`), as containerd's metadata layer puts them.
 */
import type { Store } from "../../content/content.ts";
import type { GcScheduler } from "../../gc/scheduler.ts";
import type { ImageStore } from "../../images/image.ts";
import type { LeaseManager } from "../../metadata/leases.ts";
import type { NamespaceStore } from "../../metadata/namespaces.ts";
import type { Snapshotter } from "../../snapshots/snapshotter.ts";

export interface Backend {
  readonly root: string;
  readonly namespaces: NamespaceStore;
  leases(ns: string): LeaseManager;
  content(ns: string, lease?: string): Promise<Store>;
  images(ns: string): Promise<ImageStore>;
  /** A snapshotter by its containerd name ("overlayfs", "native"); InvalidArgumentError when unknown. */
  snapshotter(ns: string, name: string, lease?: string): Promise<Snapshotter>;
  /**
   * The namespace of a snapshots call naming `snapshotter` that sends none: an
   * alias's own (a containerd proxy plugin's calls); undefined for other names.
   */
  proxyNamespace(snapshotter: string): string | undefined;
  /**
   * The collector of the root (containerd's gc scheduler): told of deletes
   * that can free something, of leases' expiries, and asked on demand (a sync
   * delete). A backend without one never collects.
   */
  readonly gc?: Pick<GcScheduler, "schedule" | "collectNow" | "expireAt">;
  /** The snapshotter names this daemon serves (for introspection). */
  snapshotters(): string[];
  close(): Promise<void>;
}
