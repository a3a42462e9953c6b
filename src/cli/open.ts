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

export async function openContentStore(_g: GlobalOptions): Promise<Store> {
  throw new UnimplementedError("content store not built yet");
}

export async function openImageStore(_g: GlobalOptions): Promise<ImageStore> {
  throw new UnimplementedError("image store not built yet");
}

export async function openSnapshotter(_g: GlobalOptions, _name?: string): Promise<Snapshotter> {
  throw new UnimplementedError("snapshotters not built yet");
}
