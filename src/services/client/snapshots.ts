/**
 * A Snapshotter over a daemon's snapshots service. Our names map to
 * containerd's ("overlay" is "overlayfs" there); mounts come back as the
 * daemon made them, valid on this host.
 */
import { containerdSnapshotterName } from "../../images/gc-labels.ts";
import type { Mount, SnapshotInfo, Snapshotter, Usage } from "../../snapshots/snapshotter.ts";
import { mountFromWire, snapshotInfoFromWire, type WireMount, type WireSnapshotInfo } from "../convert.ts";
import { streamCall, unaryCall } from "./call.ts";
import type { Connection } from "./connection.ts";

export class RemoteSnapshotter implements Snapshotter {
  /** The daemon's name for it: it keys containerd's GC labels (gc.ref.snapshot.<name>). */
  readonly name: string;
  readonly #conn: Connection;
  readonly #wire: string;
  constructor(conn: Connection, name: string) {
    this.#conn = conn;
    this.#wire = containerdSnapshotterName(name);
    this.name = this.#wire;
  }

  #call<T>(method: string, req: Record<string, unknown>): Promise<T> {
    return unaryCall<T>(this.#conn, "snapshots", method, { snapshotter: this.#wire, ...req });
  }

  async stat(key: string): Promise<SnapshotInfo> {
    return snapshotInfoFromWire((await this.#call<{ info: WireSnapshotInfo }>("Stat", { key })).info);
  }

  async update(info: Pick<SnapshotInfo, "name" | "labels">, fieldpaths?: string[]): Promise<SnapshotInfo> {
    const res = await this.#call<{ info: WireSnapshotInfo }>("Update", {
      info: { name: info.name, labels: info.labels ?? {} },
      update_mask: fieldpaths && fieldpaths.length > 0 ? { paths: fieldpaths } : null,
    });
    return snapshotInfoFromWire(res.info);
  }

  async usage(key: string): Promise<Usage> {
    const res = await this.#call<{ size: number; inodes: number }>("Usage", { key });
    return { size: Number(res.size), inodes: Number(res.inodes) };
  }

  async mounts(key: string): Promise<Mount[]> {
    return (await this.#call<{ mounts: WireMount[] }>("Mounts", { key })).mounts.map(mountFromWire);
  }

  async prepare(key: string, parent?: string, opts?: { labels?: Record<string, string> }): Promise<Mount[]> {
    const res = await this.#call<{ mounts: WireMount[] }>("Prepare", {
      key,
      parent: parent ?? "",
      labels: opts?.labels ?? {},
    });
    return res.mounts.map(mountFromWire);
  }

  async view(key: string, parent?: string, opts?: { labels?: Record<string, string> }): Promise<Mount[]> {
    const res = await this.#call<{ mounts: WireMount[] }>("View", {
      key,
      parent: parent ?? "",
      labels: opts?.labels ?? {},
    });
    return res.mounts.map(mountFromWire);
  }

  async commit(name: string, key: string, opts?: { labels?: Record<string, string> }): Promise<void> {
    await this.#call("Commit", { name, key, labels: opts?.labels ?? {} });
  }

  async remove(key: string): Promise<void> {
    await this.#call("Remove", { key });
  }

  async walk(fn: (info: SnapshotInfo) => void | Promise<void>): Promise<void> {
    await streamCall<{ info: WireSnapshotInfo[] }>(
      this.#conn,
      "snapshots",
      "List",
      { snapshotter: this.#wire, filters: [] },
      async (m) => {
        for (const i of m.info) await fn(snapshotInfoFromWire(i));
      },
    );
  }
}
