/**
 * Where CLI commands get their stores: the embedded ones under --root, or,
 * with --address, client adapters over a daemon socket that implement the
 * same interfaces. Commands call these and never construct stores themselves.
 */
import type { Store } from "../content/content.ts";
import type { ProcessLease } from "../gc/process-lease.ts";
import type { ImageStore } from "../images/image.ts";
import type { Snapshotter } from "../snapshots/snapshotter.ts";
import { prepareRoot } from "../store-root.ts";
import { config } from "./config.ts";
import type { GlobalOptions } from "./globals.ts";
import { log } from "./log.ts";

/** The daemon connection options of --address (set when this is called). */
function remote(g: GlobalOptions) {
  return { address: g.address as string, namespace: g.namespace, connectTimeout: g.connectTimeout };
}

const prepared = new Set<string>();

/**
 * The embedded store's root: created private, or an existing one tightened (saying so
 * in one line), before anything in it is opened; once per process.
 */
export function embeddedRoot(g: GlobalOptions): string {
  if (!prepared.has(g.root)) {
    prepareRoot(g.root, { onNote: (msg) => log.info(msg), onWarning: (msg) => log.warn(msg) });
    prepared.add(g.root);
  }
  return g.root;
}

let held: { root: string; namespace: string; lease: ProcessLease } | undefined;

/**
 * Makes what this command writes from now on go on a lease held while the
 * process runs (gc/process-lease.ts): a collection meanwhile keeps it, and if
 * the process dies, the next collection takes whatever nothing else
 * references. A daemon connection holds a lease of its own (--address).
 */
export async function holdCommandLease(g: GlobalOptions): Promise<void> {
  if (g.address || held) return;
  const [{ openMetadata }, { holdProcessLease }] = await Promise.all([
    import("../metadata/metadata.ts"),
    import("../gc/process-lease.ts"),
  ]);
  const root = embeddedRoot(g);
  held = { root, namespace: g.namespace, lease: await holdProcessLease(openMetadata(root), g.namespace) };
}

/** Ends the command's lease (what it held is garbage unless referenced by now). */
export function releaseCommandLease(): void {
  held?.lease.release();
  held = undefined;
}

/** The lease of the stores opened for `g`, if the command holds one there. */
function leaseOf(g: GlobalOptions): string | undefined {
  return held && held.root === g.root && held.namespace === g.namespace ? held.lease.id : undefined;
}

export async function openContentStore(g: GlobalOptions): Promise<Store> {
  if (g.address) return (await import("../services/client/index.ts")).remoteContentStore(remote(g));
  const { namespacedContentStore } = await import("../metadata/metadata.ts");
  return namespacedContentStore(embeddedRoot(g), g.namespace, { lease: leaseOf(g) });
}

/** Runs fn with the content store, closed afterwards. */
export async function withContentStore<T>(g: GlobalOptions, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await openContentStore(g);
  try {
    return await fn(store);
  } finally {
    await store.close?.();
  }
}

export async function openImageStore(g: GlobalOptions): Promise<ImageStore> {
  if (g.address) return (await import("../services/client/index.ts")).remoteImageStore(remote(g));
  const { openSqliteImageStore } = await import("../metadata/metadata.ts");
  return openSqliteImageStore(embeddedRoot(g), g.namespace);
}

/**
 * The namespace's snapshots on snapshotter `name` (overlay or native); when absent,
 * DIST_SNAPSHOTTER's, the config file's, else overlay where root and supported.
 * `mountable: false` opens an overlay snapshotter where it could not mount.
 */
export async function openSnapshotter(
  g: GlobalOptions,
  name?: string,
  opts: { mountable?: boolean } = {},
): Promise<Snapshotter> {
  name ??= process.env.DIST_SNAPSHOTTER ? undefined : config().snapshotter;
  if (g.address) return (await import("../services/client/index.ts")).remoteSnapshotter(remote(g), name);
  const { openSnapshotterAt } = await import("../metadata/metadata.ts");
  return openSnapshotterAt(embeddedRoot(g), name, g.namespace, { ...opts, lease: leaseOf(g) });
}
