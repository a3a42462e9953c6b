/** The Backend over the embedded stores under one dist root. */

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { InvalidArgumentError } from "../../errors.ts";
import { namespacedContentStore } from "../../metadata/content-labels.ts";
import { Metadata } from "../../metadata/metadata.ts";
import { defaultSnapshotterName, openSnapshotterAt, overlaySupported } from "../../snapshots/open.ts";
import type { Snapshotter } from "../../snapshots/snapshotter.ts";
import { type Backend, perKey } from "./backend.ts";

/** containerd's snapshotter names → ours. */
const ALIASES: Record<string, "overlay" | "native"> = { overlayfs: "overlay", overlay: "overlay", native: "native" };

export function embeddedBackend(root: string): Backend {
  const metadata = new Metadata(root);
  // The daemon answers a busy ref at once (Unavailable); containerd clients retry with backoff.
  const content = perKey(async (ns) => namespacedContentStore(root, ns, { lockTimeout: 0 }));
  const images = perKey(async (ns) => metadata.images(ns));
  const snapshotters = perKey(async (name): Promise<Snapshotter> => openSnapshotterAt(root, name));
  const overlay = () => {
    const dir = join(root, "snapshots");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return overlaySupported(dir);
  };
  return {
    root,
    namespaces: metadata.namespaces,
    leases: (ns) => metadata.leases(ns),
    content: (ns) => content.get(ns),
    images: (ns) => images.get(ns),
    async snapshotter(_ns, name) {
      const ours = name ? ALIASES[name] : defaultSnapshotterName(root);
      if (!ours || (ours === "overlay" && !overlay())) {
        throw new InvalidArgumentError(
          `snapshotter "${name}" is not loaded (this daemon has: ${this.snapshotters().join(", ")})`,
        );
      }
      return snapshotters.get(ours);
    },
    snapshotters: () => (overlay() ? ["overlayfs", "native"] : ["native"]),
    async close() {
      for (const s of await snapshotters.all()) await s.close?.();
      for (const s of await content.all()) await s.close?.();
    },
  };
}
