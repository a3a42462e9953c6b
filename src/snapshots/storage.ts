/**
 * A snapshotter's own records in the shared SQLite database (table
 * backend_snapshots): one row per snapshot (active, view or committed) per
 * snapshotter, with the containerd rules enforced inside write transactions so
 * several dist processes can share it: a parent must be committed, keys and
 * names share one space, views are never committed and a snapshot with children
 * is never removed. Names here are the snapshotter's; the metadata layer
 * (metadata/snapshots.ts) maps each namespace's keys onto them.
 */
import type { DatabaseSync } from "node:sqlite";
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errors.ts";
import { statement, transaction } from "../metadata/db.ts";
import { nowNs, PreciseDate } from "../time.ts";
import type { Kind, SnapshotInfo } from "./snapshotter.ts";

export interface SnapshotRecord extends SnapshotInfo {
  /** Names the snapshot's directory; stable across commit. */
  id: number;
}

interface Row {
  id: bigint;
  name: string;
  parent: string | null;
  kind: string;
  labels: string;
  created_at: bigint;
  updated_at: bigint;
}

function toRecord(r: Row): SnapshotRecord {
  return {
    id: Number(r.id),
    name: r.name,
    parent: r.parent ?? undefined,
    kind: r.kind as Kind,
    labels: JSON.parse(r.labels) as Record<string, string>,
    createdAt: new PreciseDate(r.created_at),
    updatedAt: new PreciseDate(r.updated_at),
  };
}

/** The snapshotters' table; a root written before namespaces had it as `snapshots` (metadata/schema.ts renames it). */
export const BACKEND_TABLE = "backend_snapshots";

export function validateLabels(labels: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels ?? {})) {
    if (k === "" || k.length > 4096 || typeof v !== "string" || v.length > 4096) {
      throw new InvalidArgumentError(`invalid snapshot label "${k.slice(0, 64)}": keys and values are 1-4096 chars`);
    }
    out[k] = v;
  }
  return out;
}

export class MetaStore {
  readonly db: DatabaseSync;
  readonly snapshotter: string;

  constructor(db: DatabaseSync, snapshotter: string) {
    this.db = db;
    this.snapshotter = snapshotter;
    db.exec(`CREATE TABLE IF NOT EXISTS ${BACKEND_TABLE} (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      snapshotter TEXT NOT NULL,
      name TEXT NOT NULL,
      parent TEXT,
      kind TEXT NOT NULL,
      labels TEXT NOT NULL DEFAULT '{}',
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      UNIQUE (snapshotter, name)
    );
    CREATE INDEX IF NOT EXISTS backend_snapshots_by_parent ON ${BACKEND_TABLE} (snapshotter, parent);`);
  }

  /** Runs fn in one write transaction (a savepoint inside another); fs work inside it must be quick (renames, mkdirs). */
  tx<T>(fn: () => T): T {
    return transaction(this.db, fn);
  }

  find(name: string): SnapshotRecord | undefined {
    const row = statement(this.db, `SELECT * FROM ${BACKEND_TABLE} WHERE snapshotter = ? AND name = ?`).get(
      this.snapshotter,
      name,
    ) as Row | undefined;
    return row ? toRecord(row) : undefined;
  }

  get(name: string): SnapshotRecord {
    const r = this.find(name);
    if (!r) throw new NotFoundError(`snapshot "${name}" does not exist (snapshotter ${this.snapshotter})`);
    return r;
  }

  /** The committed ancestors, immediate parent first. */
  parents(r: SnapshotRecord): SnapshotRecord[] {
    const out: SnapshotRecord[] = [];
    let p = r.parent;
    while (p) {
      const pr = this.get(p);
      out.push(pr);
      p = pr.parent;
      if (out.length > 10_000) throw new FailedPreconditionError(`snapshot "${r.name}": parent chain too long`);
    }
    return out;
  }

  list(): SnapshotRecord[] {
    const rows = statement(this.db, `SELECT * FROM ${BACKEND_TABLE} WHERE snapshotter = ? ORDER BY id`).all(
      this.snapshotter,
    ) as unknown as Row[];
    return rows.map(toRecord);
  }

  /** Checks what createActive would refuse, without writing (fail fast before slow copies). */
  checkCreate(key: string, parent: string | undefined): SnapshotRecord | undefined {
    if (key === "") throw new InvalidArgumentError("snapshot key must not be empty");
    if (this.find(key)) throw new AlreadyExistsError(`snapshot "${key}" already exists`);
    if (!parent) return undefined;
    const p = this.find(parent);
    if (!p) throw new NotFoundError(`parent snapshot "${parent}" does not exist`);
    if (p.kind !== "committed") {
      throw new FailedPreconditionError(`parent snapshot "${parent}" is not committed (it is ${p.kind})`);
    }
    return p;
  }

  /** Inserts an active or view record; call inside tx(). */
  createActive(
    key: string,
    parent: string | undefined,
    kind: "active" | "view",
    labels: Record<string, string>,
  ): SnapshotRecord {
    this.checkCreate(key, parent);
    const now = nowNs();
    this.db
      .prepare(
        `INSERT INTO ${BACKEND_TABLE} (snapshotter, name, parent, kind, labels, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(this.snapshotter, key, parent ?? null, kind, JSON.stringify(labels), now, now);
    return this.get(key);
  }

  /** Turns active `key` into committed `name` (same id, same parent); call inside tx(). */
  commit(name: string, key: string, labels: Record<string, string> | undefined): SnapshotRecord {
    if (name === "") throw new InvalidArgumentError("snapshot name must not be empty");
    const a = this.get(key);
    if (a.kind === "committed")
      throw new FailedPreconditionError(`snapshot "${key}" is not active (already committed)`);
    if (a.kind === "view")
      throw new FailedPreconditionError(`snapshot "${key}" is a read-only view and cannot be committed`);
    if (this.find(name)) throw new AlreadyExistsError(`snapshot "${name}" already exists`);
    const merged = { ...a.labels, ...validateLabels(labels) };
    // a commit makes a new snapshot: created and updated are the commit's time (containerd's storage)
    const now = nowNs();
    this.db
      .prepare(
        `UPDATE ${BACKEND_TABLE} SET name = ?, kind = 'committed', labels = ?, created_at = ?, updated_at = ? WHERE id = ?`,
      )
      .run(name, JSON.stringify(merged), now, now, a.id);
    return this.get(name);
  }

  /** Deletes the record of `key`; refuses when it has children. Call inside tx(). */
  remove(key: string): SnapshotRecord {
    const r = this.get(key);
    const child = this.db
      .prepare(`SELECT name FROM ${BACKEND_TABLE} WHERE snapshotter = ? AND parent = ? LIMIT 1`)
      .get(this.snapshotter, key) as { name: string } | undefined;
    if (child) {
      throw new FailedPreconditionError(`cannot remove snapshot "${key}": it has a child ("${child.name}")`);
    }
    this.db.prepare(`DELETE FROM ${BACKEND_TABLE} WHERE id = ?`).run(r.id);
    return r;
  }

  updateLabels(name: string, labels: Record<string, string>, fieldpaths?: string[]): SnapshotRecord {
    return this.tx(() => {
      const r = this.get(name);
      let next: Record<string, string>;
      const given = validateLabels(labels);
      if (!fieldpaths || fieldpaths.length === 0) {
        next = given;
      } else {
        next = { ...r.labels };
        for (const fp of fieldpaths) {
          if (fp === "labels") {
            next = given;
            continue;
          }
          if (!fp.startsWith("labels.")) {
            throw new InvalidArgumentError(`cannot update field "${fp}" of snapshot "${name}": only labels`);
          }
          const k = fp.slice("labels.".length);
          if (k in given) next[k] = given[k];
          else delete next[k];
        }
      }
      this.db
        .prepare(`UPDATE ${BACKEND_TABLE} SET labels = ?, updated_at = ? WHERE id = ?`)
        .run(JSON.stringify(next), nowNs(), r.id);
      return this.get(name);
    });
  }
}
