/**
 * Snapshotters: filesystems keyed by name. Active snapshots (prepare/view) are
 * writable or read-only working trees; committed ones are immutable parents
 * named by ChainID. Same model and error kinds as containerd's.
 */
/** A snapshot's kind: active (writable), view (read-only) or committed (an immutable parent). */
export type Kind = "active" | "view" | "committed";

/** A mount of a snapshot, as mount(8) takes it: type, source and options. */
export interface Mount {
  type: string;
  source: string;
  options: string[];
}

/** A snapshot's record: name, parent, kind, labels and times. */
export interface SnapshotInfo {
  name: string;
  parent?: string;
  kind: Kind;
  labels: Record<string, string>;
  /** PreciseDates from the stores (nanoseconds kept); a commit's created and updated are its time. */
  createdAt: Date;
  updatedAt: Date;
}

/** The disk usage of a snapshot: bytes and inodes. */
export interface Usage {
  size: number;
  inodes: number;
}

/** Options of Snapshotter.prepare. */
export interface SnapshotOptions {
  labels?: Record<string, string>;
  /**
   * Hint from a layer applier: the new snapshot will only get entries created,
   * replaced (unlink, then create) and removed, never an existing file written
   * in place. A copying driver may then share the parent's file inodes instead
   * of copying their data. Never set it for a snapshot handed to a container.
   */
  applyOnly?: boolean;
}

/**
 * A capability of a snapshotter whose snapshots live under a directory on this
 * machine: what must be shared with other processes using it (the unpacker's
 * per-ChainID locks) goes there.
 */
export interface LocalSnapshotter {
  readonly root: string;
}

/** The root of a snapshotter that declares the LocalSnapshotter capability. */
export function localRoot(sn: Snapshotter): string | undefined {
  const root = (sn as Partial<LocalSnapshotter>).root;
  return typeof root === "string" ? root : undefined;
}

/** Filesystems keyed by name, containerd's model: prepare (active) or view a snapshot on a parent, commit an active one under a name (a ChainID for layers), mount, remove. */
export interface Snapshotter {
  readonly name: string;
  stat(key: string): Promise<SnapshotInfo>;
  update(info: Pick<SnapshotInfo, "name" | "labels">, fieldpaths?: string[]): Promise<SnapshotInfo>;
  usage(key: string): Promise<Usage>;
  /** Mounts of an active or view snapshot. */
  mounts(key: string): Promise<Mount[]>;
  prepare(key: string, parent?: string, opts?: SnapshotOptions): Promise<Mount[]>;
  view(key: string, parent?: string, opts?: { labels?: Record<string, string> }): Promise<Mount[]>;
  commit(name: string, key: string, opts?: { labels?: Record<string, string> }): Promise<void>;
  remove(key: string): Promise<void>;
  walk(fn: (info: SnapshotInfo) => void | Promise<void>): Promise<void>;
  close?(): Promise<void> | void;
}
