/**
 * Client adapters for `--address`: the content Store, ImageStore and
 * Snapshotter interfaces over a containerd-compatible daemon socket (dist's
 * own daemon or containerd). One connection per address and namespace.
 */

import { unaryCall } from "./call.ts";
import { type Connection, connect } from "./connection.ts";
import { RemoteContentStore } from "./content.ts";
import { RemoteImageStore } from "./images.ts";
import { RemoteSnapshotter } from "./snapshots.ts";

export { type Connection, connect } from "./connection.ts";
export { RemoteContentStore } from "./content.ts";
export { RemoteImageStore } from "./images.ts";
export { RemoteSnapshotter } from "./snapshots.ts";

const connections = new Map<string, Connection>();

export interface RemoteOptions {
  address: string;
  namespace: string;
  connectTimeout?: number;
}

/**
 * The shared connection for an address and namespace. It holds a lease while
 * the process works; the lease is released when the process runs out of work
 * (beforeExit) or by closeConnections().
 */
export function connection(o: RemoteOptions): Connection {
  const key = `${o.address}\0${o.namespace}`;
  let c = connections.get(key);
  if (!c) {
    c = connect(o.address, { namespace: o.namespace, connectTimeout: o.connectTimeout, lease: true });
    connections.set(key, c);
    if (connections.size === 1) process.once("beforeExit", () => void closeConnections());
  }
  return c;
}

export function remoteContentStore(o: RemoteOptions): RemoteContentStore {
  return new RemoteContentStore(connection(o));
}

export function remoteImageStore(o: RemoteOptions): RemoteImageStore {
  return new RemoteImageStore(connection(o));
}

/**
 * A snapshotter of the daemon. Without a name, the daemon's overlayfs when it
 * has one (containerd's default), else native, as introspection lists them.
 */
export async function remoteSnapshotter(o: RemoteOptions, name?: string): Promise<RemoteSnapshotter> {
  const conn = connection(o);
  if (name) return new RemoteSnapshotter(conn, name);
  const res = await unaryCall<{ plugins: { type: string; id: string; init_err: { code: number } | null }[] }>(
    conn,
    "introspection",
    "Plugins",
    {
      filters: ["type==io.containerd.snapshotter.v1"],
    },
  ).catch(() => ({ plugins: [] }));
  const ids = res.plugins
    .filter((p) => p.type === "io.containerd.snapshotter.v1" && !p.init_err?.code)
    .map((p) => p.id);
  return new RemoteSnapshotter(
    conn,
    ids.length === 0 || ids.includes("overlayfs") ? "overlay" : ids.includes("native") ? "native" : ids[0],
  );
}

/** Releases the leases and closes every connection. */
export async function closeConnections(): Promise<void> {
  const all = [...connections.values()];
  connections.clear();
  await Promise.all(all.map((c) => c.close()));
}
