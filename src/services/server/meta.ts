/**
 * What the daemon keeps beside the stores, in the shared metadata database:
 * namespaces (with labels) and leases (with labels and resources).
 */

import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../../errors.ts";
import type { Database } from "../../metadata/db.ts";
import { transaction } from "../../metadata/db.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS daemon_namespaces (
  name       TEXT PRIMARY KEY,
  labels     TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL
);
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

export interface Namespace {
  name: string;
  labels: Record<string, string>;
}

export interface Lease {
  id: string;
  createdAt: Date;
  labels: Record<string, string>;
}

export interface LeaseResource {
  id: string;
  type: string;
}

/** Resource types containerd accepts on a lease. */
function checkResource(r: LeaseResource): void {
  if (!r?.id) throw new InvalidArgumentError("lease resource needs an id");
  const t = r.type ?? "";
  if (t === "content" || t === "ingests") return;
  if (/^snapshots\/[A-Za-z0-9._-]+$/.test(t)) return;
  throw new InvalidArgumentError(`lease resource type "${t}": expected content, ingests or snapshots/<snapshotter>`);
}

export class DaemonMeta {
  readonly #db: Database;
  constructor(db: Database) {
    this.#db = db;
    db.exec(SCHEMA);
  }

  // ---- namespaces

  touchNamespace(name: string): void {
    this.#db
      .prepare("INSERT OR IGNORE INTO daemon_namespaces (name, labels, created_at) VALUES (?, '{}', ?)")
      .run(name, Date.now());
  }

  getNamespace(name: string): Namespace {
    const row = this.#db.prepare("SELECT name, labels FROM daemon_namespaces WHERE name = ?").get(name) as
      | { name: string; labels: string }
      | undefined;
    if (!row) throw new NotFoundError(`namespace ${name}: not found`);
    return { name: row.name, labels: JSON.parse(row.labels) };
  }

  listNamespaces(): Namespace[] {
    const rows = this.#db.prepare("SELECT name, labels FROM daemon_namespaces ORDER BY name").all() as {
      name: string;
      labels: string;
    }[];
    return rows.map((r) => ({ name: r.name, labels: JSON.parse(r.labels) }));
  }

  createNamespace(ns: Namespace): Namespace {
    try {
      this.#db
        .prepare("INSERT INTO daemon_namespaces (name, labels, created_at) VALUES (?, ?, ?)")
        .run(ns.name, JSON.stringify(ns.labels ?? {}), Date.now());
    } catch (err) {
      if (String((err as Error).message).includes("UNIQUE")) {
        throw new AlreadyExistsError(`namespace ${ns.name}: already exists`);
      }
      throw err;
    }
    return { name: ns.name, labels: ns.labels ?? {} };
  }

  updateNamespace(ns: Namespace, paths: string[]): Namespace {
    return transaction(this.#db, () => {
      const cur = this.getNamespace(ns.name);
      const labels = applyLabelMask(cur.labels, ns.labels ?? {}, paths, `namespace ${ns.name}`);
      this.#db.prepare("UPDATE daemon_namespaces SET labels = ? WHERE name = ?").run(JSON.stringify(labels), ns.name);
      return { name: ns.name, labels };
    });
  }

  /** Deletes an empty namespace; `inUse` names what still lives in it. */
  deleteNamespace(name: string, inUse: (ns: string) => string | undefined): void {
    transaction(this.#db, () => {
      this.getNamespace(name);
      const leases = this.#db.prepare("SELECT count(*) AS n FROM daemon_leases WHERE namespace = ?").get(name) as {
        n: number;
      };
      const what = leases.n > 0 ? `${leases.n} leases` : inUse(name);
      if (what) throw new FailedPreconditionError(`namespace ${name} must be empty, but it still has ${what}`);
      this.#db.prepare("DELETE FROM daemon_namespaces WHERE name = ?").run(name);
    });
  }

  // ---- leases

  createLease(ns: string, id: string, labels: Record<string, string>): Lease {
    if (!id) throw new InvalidArgumentError("lease id must not be empty");
    // clients use free-form ids (ctr images mount uses the mount path), so only sanity is checked
    if (id.length > 1024 || /[\x00-\x1f]/.test(id)) throw new InvalidArgumentError(`lease id "${id}" is not valid`);
    const createdAt = new Date();
    try {
      this.#db
        .prepare("INSERT INTO daemon_leases (namespace, id, labels, created_at) VALUES (?, ?, ?, ?)")
        .run(ns, id, JSON.stringify(labels ?? {}), createdAt.getTime());
    } catch (err) {
      if (String((err as Error).message).includes("UNIQUE"))
        throw new AlreadyExistsError(`lease ${id}: already exists`);
      throw err;
    }
    return { id, createdAt, labels: labels ?? {} };
  }

  #lease(ns: string, id: string): Lease {
    const row = this.#db
      .prepare("SELECT id, labels, created_at FROM daemon_leases WHERE namespace = ? AND id = ?")
      .get(ns, id) as { id: string; labels: string; created_at: number } | undefined;
    if (!row) throw new NotFoundError(`lease ${id}: not found`);
    return { id: row.id, labels: JSON.parse(row.labels), createdAt: new Date(row.created_at) };
  }

  deleteLease(ns: string, id: string): void {
    const r = this.#db.prepare("DELETE FROM daemon_leases WHERE namespace = ? AND id = ?").run(ns, id);
    if (Number(r.changes) === 0) throw new NotFoundError(`lease ${id}: not found`);
  }

  listLeases(ns: string): Lease[] {
    const rows = this.#db
      .prepare("SELECT id, labels, created_at FROM daemon_leases WHERE namespace = ? ORDER BY created_at, id")
      .all(ns) as { id: string; labels: string; created_at: number }[];
    return rows.map((r) => ({ id: r.id, labels: JSON.parse(r.labels), createdAt: new Date(r.created_at) }));
  }

  addResource(ns: string, lease: string, r: LeaseResource): void {
    checkResource(r);
    this.#lease(ns, lease);
    this.#db
      .prepare("INSERT OR IGNORE INTO daemon_lease_resources (namespace, lease, type, id) VALUES (?, ?, ?, ?)")
      .run(ns, lease, r.type, r.id);
  }

  deleteResource(ns: string, lease: string, r: LeaseResource): void {
    this.#lease(ns, lease);
    this.#db
      .prepare("DELETE FROM daemon_lease_resources WHERE namespace = ? AND lease = ? AND type = ? AND id = ?")
      .run(ns, lease, r.type ?? "", r.id ?? "");
  }

  listResources(ns: string, lease: string): LeaseResource[] {
    this.#lease(ns, lease);
    return this.#db
      .prepare("SELECT id, type FROM daemon_lease_resources WHERE namespace = ? AND lease = ? ORDER BY type, id")
      .all(ns, lease) as unknown as LeaseResource[];
  }
}

/**
 * Applies an update mask to a label map, as containerd does: no paths
 * replaces all labels; "labels" replaces all; "labels.<key>" sets or (empty
 * value) removes one key. Any other path is InvalidArgument.
 */
export function applyLabelMask(
  current: Record<string, string>,
  incoming: Record<string, string>,
  paths: string[],
  what: string,
  otherPaths: string[] = [],
): Record<string, string> {
  if (paths.length === 0) return { ...incoming };
  let labels = { ...current };
  for (const p of paths) {
    if (p === "labels") labels = { ...incoming };
    else if (p.startsWith("labels.")) {
      const key = p.slice("labels.".length);
      const v = incoming[key];
      if (v === undefined || v === "") delete labels[key];
      else labels[key] = v;
    } else if (!otherPaths.includes(p)) {
      throw new InvalidArgumentError(`${what}: cannot update field "${p}"`);
    }
  }
  return labels;
}
