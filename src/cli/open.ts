/**
 * Where CLI commands get their stores: the embedded ones under --root, or,
 * with --address, client adapters over a daemon socket that implement the
 * same interfaces. Commands call these and never construct stores themselves.
 */
import type { Store } from "../content/content.ts";
import { UnimplementedError } from "../errors.ts";
import type { ImageStore } from "../images/image.ts";
import type { Snapshotter } from "../snapshots/snapshotter.ts";
import type { GlobalOptions } from "./globals.ts";

export async function openContentStore(g: GlobalOptions): Promise<Store> {
  if (g.address) throw new UnimplementedError(`content store over the daemon socket ${g.address} is not built yet`);
  const { LocalStore } = await import("../content/local/store.ts");
  return new LocalStore({ root: g.root, namespace: g.namespace });
}

export async function openImageStore(g: GlobalOptions): Promise<ImageStore> {
  if (g.address) throw new UnimplementedError(`image store over the daemon socket ${g.address} is not built yet`);
  const { openSqliteImageStore } = await import("../metadata/images.ts");
  return openSqliteImageStore(g.root, g.namespace);
}

/** The snapshotter `name` (overlay or native; the default when absent: overlay where root and supported). */
export async function openSnapshotter(g: GlobalOptions, name?: string): Promise<Snapshotter> {
  if (g.address) throw new UnimplementedError(`snapshotters over the daemon socket ${g.address} are not built yet`);
  const { openSnapshotterAt } = await import("../snapshots/open.ts");
  return openSnapshotterAt(g.root, name);
}
