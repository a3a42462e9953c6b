/** The Backend over the embedded stores under one dist root. */

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { LocalStore } from "../../content/local/store.ts";
import { InvalidArgumentError } from "../../errors.ts";
import { openDatabase } from "../../metadata/db.ts";
import { openSqliteImageStore } from "../../metadata/images.ts";
import { defaultSnapshotterName, openSnapshotterAt, overlaySupported } from "../../snapshots/open.ts";
import type { Snapshotter } from "../../snapshots/snapshotter.ts";
import { type Backend, perKey } from "./backend.ts";
import { DaemonMeta } from "./meta.ts";

/** containerd's snapshotter names → ours. */
const ALIASES: Record<string, "overlay" | "native"> = { overlayfs: "overlay", overlay: "overlay", native: "native" };

export function embeddedBackend(root: string): Backend {
  const meta = new DaemonMeta(openDatabase(root));
  // The daemon answers a busy ref at once (Unavailable); containerd clients retry with backoff.
  const content = perKey(async (ns) => new LocalStore({ root, namespace: ns, lockTimeout: 0 }));
  const images = perKey(async (ns) => openSqliteImageStore(root, ns));
  const snapshotters = perKey(async (name): Promise<Snapshotter> => openSnapshotterAt(root, name));
  const overlay = () => {
    const dir = join(root, "snapshots");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return overlaySupported(dir);
  };
  return {
    root,
    meta,
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
