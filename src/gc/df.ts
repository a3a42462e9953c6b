/**
 * Disk usage of a root, as `docker system df` shows it: images, content,
 * snapshots and containers, each with its total, what is in use and what a
 * collection would reclaim. What is reclaimable comes from dry runs of the
 * collector itself (collect.ts), so df and gc never disagree.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Metadata } from "../metadata/metadata.ts";
import { listRecords } from "../run/containers.ts";
import { SNAPSHOTTERS } from "../snapshots/open.ts";
import { type CollectResult, collectGarbage } from "./collect.ts";

/** One row of df. */
export interface UsageRow {
  /** How many there are. */
  count: number;
  /** How many are in use (referenced by an image, a lease, a container...). */
  inUse: number;
  /** Bytes on disk. */
  bytes: number;
  /** Bytes a collection would free (for images: deleting the images no container uses, then collecting). */
  reclaimable: number;
}

/** What diskUsage reports, over every namespace of the root. */
export interface DiskUsage {
  images: UsageRow;
  content: UsageRow;
  snapshots: UsageRow;
  containers: UsageRow;
}

const freed = (r: CollectResult) => r.totals.content.bytes + r.totals.snapshot.bytes + r.totals.ingest.bytes;

/**
 * The disk usage of a root (every namespace; blobs shared by namespaces are counted once).
 *
 * @example
 * ```ts
 * const df = await diskUsage(openMetadata("/var/lib/dist"));
 * console.log(df.content.bytes, "bytes of blobs,", df.content.reclaimable, "reclaimable");
 * ```
 */
export async function diskUsage(md: Metadata, opts: { signal?: AbortSignal } = {}): Promise<DiskUsage> {
  const containers = listRecords(md.root);
  const used = new Set(containers.map((c) => `${c.namespace}\0${c.image}`));
  const plain = await collectGarbage(md, { dryRun: true, signal: opts.signal });
  const withoutImages = await collectGarbage(md, { skipImage: () => true, signal: opts.signal });
  const withoutUnused = await collectGarbage(md, {
    skipImage: (i) => !used.has(`${i.namespace}\0${i.name}`),
    signal: opts.signal,
  });

  const images = md.db.prepare("SELECT namespace, name FROM images").all() as { namespace: string; name: string }[];
  const blobs = { count: 0, bytes: 0 };
  await md.blobs.walk((info) => {
    blobs.count++;
    blobs.bytes += info.size;
  });
  const snaps = { count: 0, bytes: 0 };
  const containerBytes = new Map<string, number>();
  const containerKeys = new Map(containers.map((c) => [`${c.namespace}\0${c.snapshotter}\0${c.snapshotKey}`, c.id]));
  for (const name of SNAPSHOTTERS) {
    if (!existsSync(join(md.root, "snapshots", name))) continue;
    let sn: ReturnType<Metadata["backendSnapshotter"]>;
    try {
      sn = md.backendSnapshotter(name, { mountable: false });
    } catch {
      continue;
    }
    const sizes = new Map<string, number>();
    for (const row of sn.meta.list()) {
      const size = await sn
        .usage(row.name)
        .then((u) => u.size)
        .catch(() => 0);
      sizes.set(row.name, size);
      snaps.count++;
      snaps.bytes += size;
    }
    const records = md.db
      .prepare("SELECT namespace, key, backend_key FROM snapshots WHERE snapshotter = ?")
      .all(name) as {
      namespace: string;
      key: string;
      backend_key: string;
    }[];
    for (const r of records) {
      const id = containerKeys.get(`${r.namespace}\0${name}\0${r.key}`);
      if (id !== undefined) containerBytes.set(id, sizes.get(r.backend_key) ?? 0);
    }
  }
  const containerTotal = [...containerBytes.values()].reduce((a, b) => a + b, 0);
  return {
    images: {
      count: images.length,
      inUse: images.filter((i) => used.has(`${i.namespace}\0${i.name}`)).length,
      bytes: freed(withoutImages) - freed(plain),
      reclaimable: freed(withoutUnused) - freed(plain),
    },
    content: {
      count: blobs.count,
      inUse: blobs.count - plain.removed.filter((r) => r.kind === "content" && r.bytes > 0).length,
      bytes: blobs.bytes,
      reclaimable: plain.totals.content.bytes + plain.totals.ingest.bytes,
    },
    snapshots: {
      count: snaps.count,
      // each snapshot the collection would remove, less the records of nothing and the stray directories
      inUse: snaps.count - plain.removed.filter((r) => r.kind === "snapshot" && r.reason === undefined).length,
      bytes: snaps.bytes,
      reclaimable: plain.totals.snapshot.bytes,
    },
    // a container's snapshot goes with the container (dist rm), never with a collection
    containers: { count: containers.length, inUse: containers.length, bytes: containerTotal, reclaimable: 0 },
  };
}
