/**
 * The metadata database's schema (PRAGMA user_version) and the migration of a
 * root written before namespaces held content, ingests and snapshots.
 *
 * Version 1, the records of each namespace (containerd's metadata buckets);
 * every time is nanoseconds since the epoch:
 *   namespaces       (name, labels, created_at)
 *   images           (namespace, name → target descriptor, labels, created_at, updated_at)
 *   content_blobs    (namespace, digest → size, labels, created_at = its commit in the namespace, updated_at)
 *   content_ingests  (namespace, ref → backend_ref: the blob store's ingest; expected and size
 *                     when it stands for a blob committed in another namespace, which it holds)
 *   snapshots        (namespace, snapshotter, key → backend_key: the snapshotter's name for it;
 *                     parent (a key of the same namespace), labels, created_at, updated_at)
 *   leases           (namespace, id, labels, created_at)
 *   lease_resources  (namespace, lease, type, id): content (a digest), ingests (a ref),
 *                     snapshots/<snapshotter> (a key), as containerd's leases hold them
 *   sequences        (name, value): numbers for backend keys
 * Below them, namespace-free: the blob files (content/), and each snapshotter's
 * own table (backend_snapshots, snapshots/storage.ts). A blob's bytes stay while
 * a namespace records it or an ingest stands for it; a backend snapshot while a
 * record maps onto it.
 *
 * Version 0 (dist before this schema): blobs visible in every namespace with
 * per-namespace labels (content_labels), one store-wide ingest area and
 * snapshot table (`snapshots`, with the snapshotter's names), daemon_namespaces,
 * daemon_leases, daemon_lease_resources, all times in milliseconds. Its
 * migration loses nothing that was visible: every blob is recorded in each
 * namespace the root knew (default, and any named by a namespace, image, label
 * or lease record), ingests in `default`, committed snapshots in every known
 * namespace (sharing their backend snapshot), active ones and views in `default`.
 */
import { type BigIntStats, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { isDigest } from "../digest.ts";
import { FailedPreconditionError } from "../errors.ts";
import { BACKEND_TABLE } from "../snapshots/storage.ts";
import { nowNs } from "../time.ts";
import { transaction } from "./db.ts";

export const SCHEMA_VERSION = 1;

const TABLES = `
CREATE TABLE IF NOT EXISTS namespaces (
  name       TEXT PRIMARY KEY,
  labels     TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
  namespace  TEXT NOT NULL,
  name       TEXT NOT NULL,
  digest     TEXT NOT NULL,
  media_type TEXT NOT NULL,
  size       INTEGER NOT NULL,
  target     TEXT NOT NULL,
  labels     TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (namespace, name)
);
CREATE INDEX IF NOT EXISTS images_by_digest ON images (namespace, digest);
CREATE TABLE IF NOT EXISTS content_blobs (
  namespace  TEXT NOT NULL,
  digest     TEXT NOT NULL,
  size       INTEGER NOT NULL,
  labels     TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (namespace, digest)
);
CREATE INDEX IF NOT EXISTS content_blobs_by_digest ON content_blobs (digest);
CREATE TABLE IF NOT EXISTS content_ingests (
  namespace   TEXT NOT NULL,
  ref         TEXT NOT NULL,
  backend_ref TEXT NOT NULL UNIQUE,
  expected    TEXT,
  size        INTEGER,
  created_at  INTEGER NOT NULL,
  PRIMARY KEY (namespace, ref)
);
CREATE INDEX IF NOT EXISTS content_ingests_by_expected ON content_ingests (expected);
CREATE TABLE IF NOT EXISTS snapshots (
  namespace   TEXT NOT NULL,
  snapshotter TEXT NOT NULL,
  key         TEXT NOT NULL,
  backend_key TEXT NOT NULL,
  parent      TEXT,
  labels      TEXT NOT NULL DEFAULT '{}',
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  PRIMARY KEY (namespace, snapshotter, key)
);
CREATE INDEX IF NOT EXISTS snapshots_by_parent ON snapshots (namespace, snapshotter, parent);
CREATE INDEX IF NOT EXISTS snapshots_by_backend ON snapshots (snapshotter, backend_key);
CREATE TABLE IF NOT EXISTS leases (
  namespace  TEXT NOT NULL,
  id         TEXT NOT NULL,
  labels     TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL,
  PRIMARY KEY (namespace, id)
);
CREATE TABLE IF NOT EXISTS lease_resources (
  namespace  TEXT NOT NULL,
  lease      TEXT NOT NULL,
  type       TEXT NOT NULL,
  id         TEXT NOT NULL,
  PRIMARY KEY (namespace, lease, type, id),
  FOREIGN KEY (namespace, lease) REFERENCES leases (namespace, id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS sequences (
  name  TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
`;

const MS = 1_000_000;

function userVersion(db: DatabaseSync): number {
  return Number((db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version);
}

function tableNames(db: DatabaseSync): Set<string> {
  const rows = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[];
  return new Set(rows.map((r) => r.name));
}

function columns(db: DatabaseSync, table: string): Set<string> {
  const rows = db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[];
  return new Set(rows.map((r) => r.name));
}

/**
 * Brings the database of `root` to SCHEMA_VERSION (once: later opens only read
 * the version). One write transaction, so concurrent openers wait and then
 * find it done, and a migration that fails leaves the old layout whole.
 */
export function migrate(db: DatabaseSync, root: string): void {
  if (userVersion(db) === SCHEMA_VERSION) return;
  transaction(db, () => {
    const version = userVersion(db);
    if (version === SCHEMA_VERSION) return;
    if (version > SCHEMA_VERSION) {
      throw new FailedPreconditionError(
        `the metadata of ${root} has schema version ${version}, newer than this dist's ${SCHEMA_VERSION}: upgrade dist`,
      );
    }
    const before = tableNames(db);
    if (before.has("snapshots") && columns(db, "snapshots").has("snapshotter") && !before.has(BACKEND_TABLE)) {
      // the snapshotters' table, before namespaces: it keeps its rows, under its new name
      db.exec(`ALTER TABLE snapshots RENAME TO ${BACKEND_TABLE}; DROP INDEX IF EXISTS snapshots_by_parent;`);
      db.exec(`UPDATE ${BACKEND_TABLE} SET created_at = created_at * ${MS}, updated_at = updated_at * ${MS}`);
    }
    db.exec(TABLES);
    // before, a root used only for content had no database at all: its blobs and ingests count too
    migrateFromV0(db, root, before);
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
  });
}

/** The records of a root written before this schema (see the module comment). */
function migrateFromV0(db: DatabaseSync, root: string, before: Set<string>): void {
  const now = nowNs();
  if (before.has("daemon_namespaces")) {
    db.exec(`INSERT OR IGNORE INTO namespaces (name, labels, created_at)
             SELECT name, labels, created_at * ${MS} FROM daemon_namespaces; DROP TABLE daemon_namespaces;`);
  }
  if (before.has("images"))
    db.exec(`UPDATE images SET created_at = created_at * ${MS}, updated_at = updated_at * ${MS}`);
  if (before.has("daemon_leases")) {
    db.exec(`INSERT OR IGNORE INTO leases (namespace, id, labels, created_at)
             SELECT namespace, id, labels, created_at * ${MS} FROM daemon_leases;`);
  }
  if (before.has("daemon_lease_resources")) {
    db.exec(`INSERT OR IGNORE INTO lease_resources (namespace, lease, type, id)
             SELECT namespace, lease, type, id FROM daemon_lease_resources; DROP TABLE daemon_lease_resources;`);
  }
  if (before.has("daemon_leases")) db.exec("DROP TABLE daemon_leases");

  const known = new Set<string>(["default"]);
  const addFrom = (sql: string) => {
    for (const r of db.prepare(sql).all() as { ns: string }[]) known.add(r.ns);
  };
  addFrom("SELECT name AS ns FROM namespaces");
  addFrom("SELECT DISTINCT namespace AS ns FROM images");
  addFrom("SELECT DISTINCT namespace AS ns FROM leases");
  const labels = new Map<string, { labels: Record<string, string>; updatedNs: bigint }>();
  if (before.has("content_labels")) {
    addFrom("SELECT DISTINCT namespace AS ns FROM content_labels");
    const rows = db.prepare("SELECT namespace, digest, key, value, updated_at FROM content_labels").all() as {
      namespace: string;
      digest: string;
      key: string;
      value: string;
      updated_at: number;
    }[];
    for (const r of rows) {
      const k = `${r.namespace}\0${r.digest}`;
      const set = labels.get(k) ?? { labels: {}, updatedNs: 0n };
      set.labels[r.key] = r.value;
      const at = BigInt(r.updated_at) * BigInt(MS);
      if (at > set.updatedNs) set.updatedNs = at;
      labels.set(k, set);
    }
    db.exec("DROP TABLE content_labels");
  }

  const insertBlob = db.prepare(
    "INSERT OR IGNORE INTO content_blobs (namespace, digest, size, labels, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
  );
  for (const { digest, st } of blobFiles(join(root, "content", "blobs"))) {
    for (const ns of known) {
      const set = labels.get(`${ns}\0${digest}`);
      const updated = set && set.updatedNs > st.mtimeNs ? set.updatedNs : st.mtimeNs;
      insertBlob.run(ns, digest, st.size, JSON.stringify(set?.labels ?? {}), st.mtimeNs, updated);
    }
  }

  const insertIngest = db.prepare(
    "INSERT OR IGNORE INTO content_ingests (namespace, ref, backend_ref, created_at) VALUES ('default', ?, ?, ?)",
  );
  for (const ref of ingestRefs(join(root, "content", "ingest"))) insertIngest.run(ref, ref, now);

  if (tableNames(db).has(BACKEND_TABLE)) {
    const insertSnapshot = db.prepare(
      `INSERT OR IGNORE INTO snapshots (namespace, snapshotter, key, backend_key, parent, labels, created_at, updated_at)
       SELECT ?, snapshotter, name, name, parent, labels, created_at, updated_at FROM ${BACKEND_TABLE} WHERE kind = 'committed' OR ? = 'default'`,
    );
    for (const ns of known) insertSnapshot.run(ns, ns);
  }
  // a namespace exists once something is recorded in it
  for (const table of ["images", "leases", "content_blobs", "content_ingests", "snapshots"]) {
    db.prepare(
      `INSERT OR IGNORE INTO namespaces (name, labels, created_at) SELECT DISTINCT namespace, '{}', ? FROM ${table}`,
    ).run(now);
  }
}

/** The committed blobs under content/blobs/<alg>/<hex>, with their stats. */
function* blobFiles(dir: string): Generator<{ digest: string; st: BigIntStats }> {
  for (const alg of safeReaddir(dir)) {
    for (const hex of safeReaddir(join(dir, alg))) {
      const digest = `${alg}:${hex}`;
      if (!isDigest(digest)) continue;
      let st: BigIntStats;
      try {
        st = statSync(join(dir, alg, hex), { bigint: true });
      } catch {
        continue;
      }
      if (st.isFile()) yield { digest, st };
    }
  }
}

/** The refs of the ingests under content/ingest/<sha256(ref)>/ref. */
function* ingestRefs(dir: string): Generator<string> {
  for (const name of safeReaddir(dir)) {
    try {
      const ref = readFileSync(join(dir, name, "ref"), "utf8");
      if (ref !== "") yield ref;
    } catch {
      // half-created: nothing to keep
    }
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

/** The next number of a sequence (backend keys of ingests and snapshots), inside a write transaction. */
export function nextSequence(db: DatabaseSync, name: string): number {
  db.prepare(
    "INSERT INTO sequences (name, value) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET value = value + 1",
  ).run(name);
  return Number((db.prepare("SELECT value FROM sequences WHERE name = ?").get(name) as { value: number }).value);
}
