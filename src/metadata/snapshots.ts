/**
 * The snapshots of one namespace on one snapshotter (containerd's metadata
 * snapshotter): each key of the namespace is a record (snapshots table: its
 * parent key, labels and times) mapped onto a snapshot of the namespace-free
 * snapshotter below, named `<namespace>/<n>/<key>`. Keys, parents, labels and
 * usage are the namespace's own: the same key in two namespaces is two
 * snapshots, a parent must be a key of the same namespace, and Walk lists only
 * the namespace's records. The snapshotter keeps only the labels containerd
 * passes down (`containerd.io/snapshot/*`).
 *
 * The snapshotter's records share the database, so a prepare, a commit, an
 * update and a remove change both in one transaction (a prepare fills its
 * directory first, slow, then records both): a backend snapshot never exists
 * without the record that maps onto it, and goes with the last one.
 */
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  isErrorCode,
  NotFoundError,
} from "../errors.ts";
import type { FsSnapshotter } from "../snapshots/fs-snapshotter.ts";
import type {
  Kind,
  LocalSnapshotter,
  Mount,
  SnapshotInfo,
  SnapshotOptions,
  Snapshotter,
  Usage,
} from "../snapshots/snapshotter.ts";
import { nowNs, PreciseDate } from "../time.ts";
import { type Database, statement, transaction } from "./db.ts";
import { applyLabelMask, checkLabels } from "./labels.ts";
import { LeaseContext, snapshotResource } from "./leases.ts";
import { ensureNamespace } from "./namespaces.ts";
import { nextSequence } from "./schema.ts";

/** Labels the snapshotter below keeps too (containerd's FilterInheritedLabels). */
const INHERITED = "containerd.io/snapshot/";

/** The label naming the snapshot a Prepare targets (containerd's remote snapshotters). */
const TARGET = "containerd.io/snapshot.ref";

function inherited(labels: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(labels).filter(([k]) => k.startsWith(INHERITED)));
}

interface Row {
  key: string;
  backend_key: string;
  parent: string | null;
  labels: string;
  created_at: bigint;
  updated_at: bigint;
}

/** A namespace's snapshotter's options: the lease its writes go on, whether it must mount. */
export interface SnapshotterOptions {
  /** The lease a write is made under: what it creates goes on it (NotFound when it does not exist). */
  lease?: string;
  /**
   * false: open an overlay snapshotter even where it could not mount (its records and
   * directories only: removing what a rootless run left). Default true.
   */
  mountable?: boolean;
}

/** A namespace's snapshots (keys, parents, labels) over a namespace-free snapshotter, as containerd's metadata layer keeps them. */
export class NamespacedSnapshotter implements Snapshotter, LocalSnapshotter {
  /** The snapshotter's name ("overlay", "native"). */
  readonly name: string;
  readonly namespace: string;
  /** The snapshotter's directory (LocalSnapshotter: the unpacker's per-ChainID locks go there). */
  readonly root: string;
  readonly #db: Database;
  readonly #backend: FsSnapshotter;
  readonly #lease: LeaseContext;
  readonly #resource: string;

  /** @internal made by Metadata.snapshotter() */
  constructor(db: Database, backend: FsSnapshotter, namespace: string, opts: SnapshotterOptions = {}) {
    this.#db = db;
    this.#backend = backend;
    this.name = backend.name;
    this.root = backend.root;
    this.namespace = namespace;
    this.#lease = new LeaseContext(db, namespace, opts.lease);
    this.#resource = snapshotResource(backend.name);
  }

  #find(key: string): Row | undefined {
    return statement(
      this.#db,
      `SELECT key, backend_key, parent, labels, created_at, updated_at FROM snapshots
       WHERE namespace = ? AND snapshotter = ? AND key = ?`,
    ).get(this.namespace, this.name, key) as Row | undefined;
  }

  #get(key: string): Row {
    const r = this.#find(key);
    if (!r) throw new NotFoundError(`snapshot "${key}" does not exist in namespace ${this.namespace}`);
    return r;
  }

  #info(r: Row, kind: Kind, backendLabels: Record<string, string>): SnapshotInfo {
    const info: SnapshotInfo = {
      name: r.key,
      kind,
      labels: { ...backendLabels, ...(JSON.parse(r.labels) as Record<string, string>) },
      createdAt: new PreciseDate(r.created_at),
      updatedAt: new PreciseDate(r.updated_at),
    };
    if (r.parent) info.parent = r.parent;
    return info;
  }

  /** The snapshotter's record of a key's snapshot: NotFound when either is missing. */
  #resolve(key: string): { row: Row; backend: SnapshotInfo } {
    const row = this.#get(key);
    const b = this.#backend.meta.find(row.backend_key);
    if (!b) throw new NotFoundError(`snapshot "${key}" is missing from the ${this.name} snapshotter`);
    return { row, backend: b };
  }

  async stat(key: string): Promise<SnapshotInfo> {
    const { row, backend } = this.#resolve(key);
    return this.#info(row, backend.kind, backend.labels);
  }

  async update(i: Pick<SnapshotInfo, "name" | "labels">, fieldpaths?: string[]): Promise<SnapshotInfo> {
    if (!i.name) throw new InvalidArgumentError("snapshot name must not be empty");
    return transaction(this.#db, () => {
      const { row } = this.#resolve(i.name);
      const what = `snapshot "${i.name}"`;
      const labels = checkLabels(applyLabelMask(JSON.parse(row.labels), i.labels ?? {}, fieldpaths ?? [], what), what);
      this.#db
        .prepare("UPDATE snapshots SET labels = ?, updated_at = ? WHERE namespace = ? AND snapshotter = ? AND key = ?")
        .run(JSON.stringify(labels), nowNs(), this.namespace, this.name, i.name);
      const b = this.#backend.meta.updateLabels(row.backend_key, inherited(labels), undefined);
      return this.#info(this.#get(i.name), b.kind, b.labels);
    });
  }

  /**
   * Puts an existing snapshot on the snapshotter's lease (nothing without one),
   * so a collection cannot take it while the caller builds on it (an unpack
   * finding a layer's snapshot there). Returns its info; NotFoundError when
   * the namespace has no such key.
   */
  async retain(key: string): Promise<SnapshotInfo> {
    return transaction(this.#db, () => {
      const { row, backend } = this.#resolve(key);
      this.#lease.hold(this.#resource, key);
      return this.#info(row, backend.kind, backend.labels);
    });
  }

  async usage(key: string): Promise<Usage> {
    return this.#backend.usage(this.#get(key).backend_key);
  }

  async mounts(key: string): Promise<Mount[]> {
    return this.#backend.mounts(this.#get(key).backend_key);
  }

  prepare(key: string, parent?: string, opts?: SnapshotOptions): Promise<Mount[]> {
    return this.#create("active", key, parent, opts);
  }

  view(key: string, parent?: string, opts?: { labels?: Record<string, string> }): Promise<Mount[]> {
    return this.#create("view", key, parent, opts);
  }

  /** Refusals of a new key, before anything is made: returns the parent's backend key. */
  #checkCreate(key: string, parent: string | undefined, labels: Record<string, string>): string | undefined {
    const target = labels[TARGET];
    if (target && this.#find(target)) throw new AlreadyExistsError(`target snapshot "${target}" already exists`);
    if (this.#find(key)) {
      throw new AlreadyExistsError(`snapshot "${key}" already exists in namespace ${this.namespace}`);
    }
    if (!parent) return undefined;
    const p = this.#find(parent);
    if (!p) throw new NotFoundError(`parent snapshot "${parent}" does not exist in namespace ${this.namespace}`);
    return p.backend_key;
  }

  async #create(
    kind: "active" | "view",
    key: string,
    parent: string | undefined,
    opts: SnapshotOptions = {},
  ): Promise<Mount[]> {
    if (!key) throw new InvalidArgumentError("snapshot key must not be empty");
    parent = parent || undefined;
    const labels = checkLabels(opts.labels, `snapshot "${key}"`);
    const { backendKey, backendParent } = transaction(this.#db, () => {
      this.#lease.check();
      const backendParent = this.#checkCreate(key, parent, labels);
      return { backendKey: `${this.namespace}/${nextSequence(this.#db, "snapshot")}/${key}`, backendParent };
    });
    const down = { ...opts, labels: inherited(labels) };
    // the namespace's record is written in the transaction that records the backend snapshot
    return this.#backend.create(kind, backendKey, backendParent, down, () => {
      // checked again: another writer may have taken the key or removed the parent meanwhile
      if (this.#checkCreate(key, parent, labels) !== backendParent) {
        throw new FailedPreconditionError(`parent snapshot "${parent}" changed while "${key}" was prepared`);
      }
      this.#lease.check();
      ensureNamespace(this.#db, this.namespace);
      const now = nowNs();
      this.#db
        .prepare(
          `INSERT INTO snapshots (namespace, snapshotter, key, backend_key, parent, labels, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(this.namespace, this.name, key, backendKey, parent ?? null, JSON.stringify(labels), now, now);
      this.#lease.hold(this.#resource, key);
    });
  }

  async commit(name: string, key: string, opts?: { labels?: Record<string, string> }): Promise<void> {
    if (!name) throw new InvalidArgumentError("snapshot name must not be empty");
    if (!key) throw new InvalidArgumentError("snapshot key must not be empty");
    const labels = checkLabels(opts?.labels, `snapshot "${name}"`);
    transaction(this.#db, () => {
      this.#lease.check();
      if (this.#find(name)) {
        throw new AlreadyExistsError(`snapshot "${name}" already exists in namespace ${this.namespace}`);
      }
      const { row } = this.#resolve(key);
      const backendName = `${this.namespace}/${nextSequence(this.#db, "snapshot")}/${name}`;
      // refuses a view or a committed snapshot; the metadata of both changes together or not at all
      this.#backend.meta.commit(backendName, row.backend_key, inherited(labels));
      const now = nowNs();
      this.#db
        .prepare("DELETE FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?")
        .run(this.namespace, this.name, key);
      this.#db
        .prepare(
          `INSERT INTO snapshots (namespace, snapshotter, key, backend_key, parent, labels, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(this.namespace, this.name, name, backendName, row.parent, JSON.stringify(labels), now, now);
      this.#lease.release(this.#resource, key);
      this.#lease.hold(this.#resource, name);
    });
  }

  async remove(key: string): Promise<void> {
    if (!key) throw new InvalidArgumentError("snapshot key must not be empty");
    const cleanup = transaction(this.#db, () => {
      const row = this.#get(key);
      const child = this.#db
        .prepare("SELECT key FROM snapshots WHERE namespace = ? AND snapshotter = ? AND parent = ? LIMIT 1")
        .get(this.namespace, this.name, key) as { key: string } | undefined;
      if (child) {
        throw new FailedPreconditionError(`cannot remove snapshot "${key}": it has a child ("${child.key}")`);
      }
      this.#db
        .prepare("DELETE FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?")
        .run(this.namespace, this.name, key);
      this.#lease.release(this.#resource, key);
      const shared = this.#db
        .prepare("SELECT 1 AS x FROM snapshots WHERE snapshotter = ? AND backend_key = ? LIMIT 1")
        .get(this.name, row.backend_key);
      if (shared || !this.#backend.meta.find(row.backend_key)) return undefined;
      try {
        return this.#backend.detach(row.backend_key);
      } catch (err) {
        // children below that no record maps onto (an interrupted remove): left for garbage collection
        if (isErrorCode(err, "FailedPrecondition")) return undefined;
        throw err;
      }
    });
    await cleanup?.();
  }

  async walk(fn: (info: SnapshotInfo) => void | Promise<void>): Promise<void> {
    const backend = new Map(this.#backend.meta.list().map((r) => [r.name, r]));
    const rows = statement(
      this.#db,
      `SELECT key, backend_key, parent, labels, created_at, updated_at FROM snapshots
       WHERE namespace = ? AND snapshotter = ? ORDER BY key`,
    ).all(this.namespace, this.name) as unknown as Row[];
    for (const r of rows) {
      const b = backend.get(r.backend_key);
      if (b) await fn(this.#info(r, b.kind, b.labels));
    }
  }
}
