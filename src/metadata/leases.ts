/**
 * Leases, per namespace, in the metadata database: a lease holds the
 * resources listed on it (content, ingests, snapshots) against garbage
 * collection for as long as it exists. A write made under a lease (the
 * daemon's `containerd-lease` header; a store opened with `lease`) lists what
 * it creates on that lease in the same transaction, as containerd's metadata
 * layer does; a lease that does not exist fails the write (NotFound).
 */

import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from "../errors.ts";
import { containerdSnapshotterName } from "../images/gc-labels.ts";
import { PreciseDate, preciseNow } from "../time.ts";
import { type Database, statement, transaction } from "./db.ts";
import { ensureNamespace } from "./namespaces.ts";

/** A lease: an id and labels; while it exists, what it holds is safe from garbage collection. */
export interface Lease {
  id: string;
  createdAt: Date;
  labels: Record<string, string>;
}

/** What a lease holds: `content` (id a digest), `ingests` (a ref) or `snapshots/<snapshotter>` (a key). */
export interface LeaseResource {
  id: string;
  type: string;
}

/** The leases of one namespace. */
export interface LeaseManager {
  /** AlreadyExistsError when the id is taken. */
  create(id: string, labels?: Record<string, string>): Lease;
  /** NotFoundError when there is no such lease. */
  delete(id: string): void;
  list(): Lease[];
  /** Sets (or, with an empty value, removes) the given labels; NotFoundError when there is no such lease. */
  update(id: string, labels: Record<string, string>): Lease;
  addResource(lease: string, r: LeaseResource): void;
  deleteResource(lease: string, r: LeaseResource): void;
  listResources(lease: string): LeaseResource[];
}

/** Resource types containerd accepts on a lease. */
function checkResource(r: LeaseResource): void {
  if (!r?.id) throw new InvalidArgumentError("lease resource needs an id");
  const t = r.type ?? "";
  if (t === "content" || t === "ingests") return;
  if (/^snapshots\/[A-Za-z0-9._-]+$/.test(t)) return;
  throw new InvalidArgumentError(`lease resource type "${t}": expected content, ingests or snapshots/<snapshotter>`);
}

interface LeaseRow {
  id: string;
  labels: string;
  created_at: bigint;
}

const toLease = (r: LeaseRow): Lease => ({
  id: r.id,
  labels: JSON.parse(r.labels),
  createdAt: new PreciseDate(r.created_at),
});

export class SqliteLeaseManager implements LeaseManager {
  readonly #db: Database;
  readonly #ns: string;

  constructor(db: Database, namespace: string) {
    this.#db = db;
    this.#ns = namespace;
  }

  create(id: string, labels: Record<string, string> = {}): Lease {
    if (!id) throw new InvalidArgumentError("lease id must not be empty");
    // clients use free-form ids (ctr images mount uses the mount path), so only sanity is checked
    if (id.length > 1024 || /[\x00-\x1f]/.test(id)) throw new InvalidArgumentError(`lease id "${id}" is not valid`);
    const createdAt = preciseNow();
    try {
      ensureNamespace(this.#db, this.#ns);
      this.#db
        .prepare("INSERT INTO leases (namespace, id, labels, created_at) VALUES (?, ?, ?, ?)")
        .run(this.#ns, id, JSON.stringify(labels ?? {}), createdAt.epochNs);
    } catch (err) {
      if (String((err as Error).message).includes("UNIQUE"))
        throw new AlreadyExistsError(`lease ${id}: already exists`);
      throw err;
    }
    return { id, createdAt, labels: labels ?? {} };
  }

  #get(id: string): Lease {
    const row = statement(this.#db, "SELECT id, labels, created_at FROM leases WHERE namespace = ? AND id = ?").get(
      this.#ns,
      id,
    ) as LeaseRow | undefined;
    if (!row) throw new NotFoundError(`lease ${id}: not found`);
    return toLease(row);
  }

  delete(id: string): void {
    const r = this.#db.prepare("DELETE FROM leases WHERE namespace = ? AND id = ?").run(this.#ns, id);
    if (Number(r.changes) === 0) throw new NotFoundError(`lease ${id}: not found`);
  }

  list(): Lease[] {
    const rows = statement(
      this.#db,
      "SELECT id, labels, created_at FROM leases WHERE namespace = ? ORDER BY created_at, id",
    ).all(this.#ns) as unknown as LeaseRow[];
    return rows.map(toLease);
  }

  update(id: string, labels: Record<string, string>): Lease {
    return transaction(this.#db, () => {
      const next = { ...this.#get(id).labels };
      for (const [k, v] of Object.entries(labels)) {
        if (v === "") delete next[k];
        else next[k] = v;
      }
      this.#db
        .prepare("UPDATE leases SET labels = ? WHERE namespace = ? AND id = ?")
        .run(JSON.stringify(next), this.#ns, id);
      return this.#get(id);
    });
  }

  addResource(lease: string, r: LeaseResource): void {
    checkResource(r);
    this.#get(lease);
    this.#db
      .prepare("INSERT OR IGNORE INTO lease_resources (namespace, lease, type, id) VALUES (?, ?, ?, ?)")
      .run(this.#ns, lease, r.type, r.id);
  }

  deleteResource(lease: string, r: LeaseResource): void {
    this.#get(lease);
    this.#db
      .prepare("DELETE FROM lease_resources WHERE namespace = ? AND lease = ? AND type = ? AND id = ?")
      .run(this.#ns, lease, r.type ?? "", r.id ?? "");
  }

  listResources(lease: string): LeaseResource[] {
    this.#get(lease);
    const rows = this.#db
      .prepare("SELECT id, type FROM lease_resources WHERE namespace = ? AND lease = ? ORDER BY type, id")
      .all(this.#ns, lease) as { id: string; type: string }[];
    return rows.map((r) => ({ id: r.id, type: r.type }));
  }
}

/**
 * The lease a write is made under, if any: what it creates goes on the lease
 * (hold), what it removes comes off (release), in the caller's transaction.
 */
export class LeaseContext {
  readonly #db: Database;
  readonly #ns: string;
  readonly id: string | undefined;

  constructor(db: Database, namespace: string, id: string | undefined) {
    this.#db = db;
    this.#ns = namespace;
    this.id = id || undefined;
  }

  /** NotFoundError when the write's lease does not exist (checked before anything is written). */
  check(): void {
    if (this.id === undefined) return;
    const row = this.#db.prepare("SELECT 1 AS x FROM leases WHERE namespace = ? AND id = ?").get(this.#ns, this.id);
    if (!row) throw new NotFoundError(`lease ${this.id} does not exist in namespace ${this.#ns}`);
  }

  hold(type: string, id: string): void {
    if (this.id === undefined) return;
    this.check();
    this.#db
      .prepare("INSERT OR IGNORE INTO lease_resources (namespace, lease, type, id) VALUES (?, ?, ?, ?)")
      .run(this.#ns, this.id, type, id);
  }

  release(type: string, id: string): void {
    if (this.id === undefined) return;
    this.#db
      .prepare("DELETE FROM lease_resources WHERE namespace = ? AND lease = ? AND type = ? AND id = ?")
      .run(this.#ns, this.id, type, id);
  }
}

/** The lease resource type of a snapshotter's snapshots, with containerd's names ("overlay" is "overlayfs"). */
export function snapshotResource(snapshotter: string): string {
  return `snapshots/${containerdSnapshotterName(snapshotter)}`;
}
