/** The Backend over the embedded stores under one dist root. */

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { InvalidArgumentError } from "../../errors.ts";
import { Metadata } from "../../metadata/metadata.ts";
import { defaultSnapshotterName, overlaySupported } from "../../snapshots/open.ts";
import type { Backend } from "./backend.ts";

/** containerd's snapshotter names → ours. */
const ALIASES: Record<string, "overlay" | "native"> = { overlayfs: "overlay", overlay: "overlay", native: "native" };

/**
 * How long a Write waits for a ref another writer still holds, before
 * Unavailable. containerd's local store tries 10 times with random backoff (up
 * to ~1 s in all): a client's writer that is closing (containerd's proxy writer
 * half-closes its stream without waiting for the server) releases it well within.
 */
export const WRITE_LOCK_WAIT = 2000;

export function embeddedBackend(root: string): Backend {
  const metadata = new Metadata(root, { lockTimeout: WRITE_LOCK_WAIT });
  const overlay = () => {
    const dir = join(root, "snapshots");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return overlaySupported(dir);
  };
  return {
    root,
    namespaces: metadata.namespaces,
    leases: (ns) => metadata.leases(ns),
    content: async (ns, lease) => metadata.content(ns, { lease }),
    images: async (ns) => metadata.images(ns),
    async snapshotter(ns, name, lease) {
      const ours = name ? ALIASES[name] : defaultSnapshotterName(root);
      if (!ours || (ours === "overlay" && !overlay())) {
        throw new InvalidArgumentError(
          `snapshotter "${name}" is not loaded (this daemon has: ${this.snapshotters().join(", ")})`,
        );
      }
      return metadata.snapshotter(ns, ours, { lease });
    },
    snapshotters: () => (overlay() ? ["overlayfs", "native"] : ["native"]),
    async close() {},
  };
}
