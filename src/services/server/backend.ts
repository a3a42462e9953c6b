/**
 * What the services serve: per-namespace views of the embedded stores under
 * one root, its namespaces and leases. A call's writes go on the lease it
 * names (`lease`), as containerd's metadata layer puts them.
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
  content(ns: string, lease?: string): Promise<Store>;
  images(ns: string): Promise<ImageStore>;
  /** A snapshotter by its containerd name ("overlayfs", "native"); InvalidArgumentError when unknown. */
  snapshotter(ns: string, name: string, lease?: string): Promise<Snapshotter>;
  /**
   * The namespace of a snapshots call naming `snapshotter` that sends none: an
   * alias's own (a containerd proxy plugin's calls); undefined for other names.
   */
  proxyNamespace(snapshotter: string): string | undefined;
  /** The snapshotter names this daemon serves (for introspection). */
  snapshotters(): string[];
  close(): Promise<void>;
}
