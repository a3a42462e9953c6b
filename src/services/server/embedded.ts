/** The Backend over the embedded stores under one dist root. */

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { FailedPreconditionError, InvalidArgumentError } from "../../errors.ts";
import { PROXY_NAMESPACE_LABEL } from "../../gc/labels.ts";
import { GcScheduler, type GcSchedulerOptions } from "../../gc/scheduler.ts";
import { Metadata } from "../../metadata/metadata.ts";
import { defaultSnapshotterName, overlaySupported, type SnapshotterName } from "../../snapshots/open.ts";
import { DEFAULT_ALIAS, resolveSnapshotterName } from "../snapshotter-names.ts";
import type { Backend } from "./backend.ts";

/**
 * How long a Write waits for a ref another writer still holds, before
 * Unavailable. containerd's local store tries 10 times with random backoff (up
 * to ~1 s in all): a client's writer that is closing (containerd's proxy writer
 * half-closes its stream without waiting for the server) releases it well within.
 */
export const WRITE_LOCK_WAIT = 2000;

/** Options of embeddedBackend. */
export interface EmbeddedBackendOptions {
  /**
   * More snapshotter names (containerd's proxy plugins send their own): NAME →
   * overlay or native (snapshotter-names.ts). Default: `dist` → the root's default.
   */
  snapshotterAliases?: Record<string, SnapshotterName>;
  /** How the root's garbage is collected after deletes (gc/scheduler.ts); false: never. */
  gc?: GcSchedulerOptions | false;
}

export function embeddedBackend(root: string, opts: EmbeddedBackendOptions = {}): Backend {
  const metadata = new Metadata(root, { lockTimeout: WRITE_LOCK_WAIT });
  const overlay = () => {
    const dir = join(root, "snapshots");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return overlaySupported(dir);
  };
  const aliases = opts.snapshotterAliases ?? { [DEFAULT_ALIAS]: defaultSnapshotterName(root) };
  for (const [name, target] of Object.entries(aliases)) {
    if (target === "overlay" && !overlay()) {
      throw new FailedPreconditionError(
        `snapshotter alias ${name}=overlay: the overlay snapshotter needs root and an overlayfs kernel that mounts on ${root}`,
      );
    }
  }
  markProxyNamespaces(metadata, Object.keys(aliases));
  const gc = opts.gc === false ? undefined : new GcScheduler(metadata, opts.gc);
  return {
    gc,
    root,
    namespaces: metadata.namespaces,
    leases: (ns) => metadata.leases(ns),
    content: async (ns, lease) => metadata.content(ns, { lease }),
    images: async (ns) => metadata.images(ns),
    async snapshotter(ns, name, lease) {
      const ours = name ? resolveSnapshotterName(name, aliases) : defaultSnapshotterName(root);
      if (!ours || (ours === "overlay" && !overlay())) {
        throw new InvalidArgumentError(
          `snapshotter "${name}" is not loaded (this daemon has: ${this.snapshotters().join(", ")})`,
        );
      }
      return metadata.snapshotter(ns, ours, { lease });
    },
    proxyNamespace: (name) => (Object.hasOwn(aliases, name) ? name : undefined),
    // an alias of overlay was refused above where overlay is not there
    snapshotters: () => [...(overlay() ? ["overlayfs", "native"] : ["native"]), ...Object.keys(aliases)],
    async close() {
      await gc?.close();
    },
  };
}

/**
 * Labels each alias's namespace as a containerd's (PROXY_NAMESPACE_LABEL), so
 * that garbage collection, by this daemon or by `dist gc`, leaves its
 * snapshots to that containerd. The label stays when the alias goes: the
 * snapshots may still be that containerd's.
 */
function markProxyNamespaces(metadata: Metadata, aliases: readonly string[]): void {
  for (const name of aliases) {
    metadata.namespaces.ensure(name);
    const ns = metadata.namespaces.get(name);
    if (ns.labels[PROXY_NAMESPACE_LABEL] === name) continue;
    metadata.namespaces.update({ name, labels: { [PROXY_NAMESPACE_LABEL]: name } }, [
      `labels.${PROXY_NAMESPACE_LABEL}`,
    ]);
  }
}
