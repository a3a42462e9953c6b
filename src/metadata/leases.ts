/**
 * Leases, per namespace, in the metadata database: a lease holds the
 * resources listed on it (content, ingests, snapshots) against garbage
 * collection for as long as it exists.
 */
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from "../errors.ts";
import type { Database } from "./db.ts";
import type { NamespaceContents } from "./namespaces.ts";

// The tables keep the names they had when only the daemon used them: they are on disk in existing roots.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS daemon_leases (
  namespace  TEXT NOT NULL,
  id         TEXT NOT NULL,
  labels     TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL,
  PRIMARY KEY (namespace, id)
);
CREATE TABLE IF NOT EXISTS daemon_lease_resources (
  namespace  TEXT NOT NULL,
  lease      TEXT NOT NULL,
  type       TEXT NOT NULL,
  id         TEXT NOT NULL,
  PRIMARY KEY (namespace, lease, type, id),
  FOREIGN KEY (namespace, lease) REFERENCES daemon_leases (namespace, id) ON DELETE CASCADE
);
`;

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

export class SqliteLeaseManager implements LeaseManager {
  readonly #db: Database;
  readonly #ns: string;

  constructor(db: Database, namespace: string) {
    this.#db = db;
    this.#ns = namespace;
    db.exec(SCHEMA);
  }

  create(id: string, labels: Record<string, string> = {}): Lease {
    if (!id) throw new InvalidArgumentError("lease id must not be empty");
    // clients use free-form ids (ctr images mount uses the mount path), so only sanity is checked
    if (id.length > 1024 || /[\x00-\x1f]/.test(id)) throw new InvalidArgumentError(`lease id "${id}" is not valid`);
    const createdAt = new Date();
    try {
      this.#db
        .prepare("INSERT INTO daemon_leases (namespace, id, labels, created_at) VALUES (?, ?, ?, ?)")
        .run(this.#ns, id, JSON.stringify(labels ?? {}), createdAt.getTime());
    } catch (err) {
      if (String((err as Error).message).includes("UNIQUE"))
        throw new AlreadyExistsError(`lease ${id}: already exists`);
      throw err;
    }
    return { id, createdAt, labels: labels ?? {} };
  }

  #get(id: string): Lease {
    const row = this.#db
      .prepare("SELECT id, labels, created_at FROM daemon_leases WHERE namespace = ? AND id = ?")
      .get(this.#ns, id) as { id: string; labels: string; created_at: number } | undefined;
    if (!row) throw new NotFoundError(`lease ${id}: not found`);
    return { id: row.id, labels: JSON.parse(row.labels), createdAt: new Date(row.created_at) };
  }

  delete(id: string): void {
    const r = this.#db.prepare("DELETE FROM daemon_leases WHERE namespace = ? AND id = ?").run(this.#ns, id);
    if (Number(r.changes) === 0) throw new NotFoundError(`lease ${id}: not found`);
  }

  list(): Lease[] {
    const rows = this.#db
      .prepare("SELECT id, labels, created_at FROM daemon_leases WHERE namespace = ? ORDER BY created_at, id")
      .all(this.#ns) as { id: string; labels: string; created_at: number }[];
    return rows.map((r) => ({ id: r.id, labels: JSON.parse(r.labels), createdAt: new Date(r.created_at) }));
  }

  addResource(lease: string, r: LeaseResource): void {
    checkResource(r);
    this.#get(lease);
    this.#db
      .prepare("INSERT OR IGNORE INTO daemon_lease_resources (namespace, lease, type, id) VALUES (?, ?, ?, ?)")
      .run(this.#ns, lease, r.type, r.id);
  }

  deleteResource(lease: string, r: LeaseResource): void {
    this.#get(lease);
    this.#db
      .prepare("DELETE FROM daemon_lease_resources WHERE namespace = ? AND lease = ? AND type = ? AND id = ?")
      .run(this.#ns, lease, r.type ?? "", r.id ?? "");
  }

  listResources(lease: string): LeaseResource[] {
    this.#get(lease);
    const rows = this.#db
      .prepare("SELECT id, type FROM daemon_lease_resources WHERE namespace = ? AND lease = ? ORDER BY type, id")
      .all(this.#ns, lease) as { id: string; type: string }[];
    return rows.map((r) => ({ id: r.id, type: r.type }));
  }
}

/** The leases still held in a namespace ("2 leases"), for the check before it is deleted. */
export function leasesIn(db: Database): NamespaceContents {
  db.exec(SCHEMA);
  return (ns) => {
    const { n } = db.prepare("SELECT count(*) AS n FROM daemon_leases WHERE namespace = ?").get(ns) as { n: number };
    return n > 0 ? `${n} leases` : undefined;
  };
}
