/**
 * Labels on content, per namespace, in the metadata database: the label store
 * the local content store is opened with. Blobs are shared by every namespace;
 * their labels are not. Reads never create the database, so listing an empty
 * or read-only root works.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { LabelSet, LabelStore } from "../content/local/labels.ts";
import { LocalStore } from "../content/local/store.ts";
import type { Digest } from "../digest.ts";
import { type Database, openDatabase, transaction } from "./db.ts";

const SCHEMA = `CREATE TABLE IF NOT EXISTS content_labels (
  namespace TEXT NOT NULL,
  digest TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (namespace, digest, key)
)`;

/** The labels of one namespace's content in `<root>/metadata.db`. */
export class SqliteLabelStore implements LabelStore {
  readonly #root: string;
  readonly #namespace: string;
  #db: Database | undefined;

  constructor(root: string, namespace: string) {
    this.#root = root;
    this.#namespace = namespace;
  }

  /** The database, or undefined when it does not exist and `create` is false. */
  #open(create: boolean): Database | undefined {
    if (this.#db) return this.#db;
    if (!create && !existsSync(join(this.#root, "metadata.db"))) return undefined;
    const db = openDatabase(this.#root);
    db.exec(SCHEMA);
    this.#db = db;
    return db;
  }

  get(digest: Digest): LabelSet {
    const db = this.#open(false);
    if (!db) return { labels: {}, updatedAt: 0 };
    const rows = db
      .prepare("SELECT key, value, updated_at FROM content_labels WHERE namespace = ? AND digest = ? ORDER BY key")
      .all(this.#namespace, digest) as { key: string; value: string; updated_at: number }[];
    return toSet(rows);
  }

  /** Every labelled digest of the namespace. */
  all(): Map<Digest, LabelSet> {
    const out = new Map<Digest, LabelSet>();
    const db = this.#open(false);
    if (!db) return out;
    const rows = db
      .prepare("SELECT digest, key, value, updated_at FROM content_labels WHERE namespace = ? ORDER BY digest, key")
      .all(this.#namespace) as { digest: Digest; key: string; value: string; updated_at: number }[];
    for (const row of rows) {
      let set = out.get(row.digest);
      if (!set) {
        set = { labels: {}, updatedAt: 0 };
        out.set(row.digest, set);
      }
      set.labels[row.key] = row.value;
      set.updatedAt = Math.max(set.updatedAt, row.updated_at);
    }
    return out;
  }

  /** Replaces all labels of a digest in this namespace (empty values are dropped). */
  replace(digest: Digest, labels: Record<string, string>): void {
    const db = this.#open(true)!;
    const now = Date.now();
    transaction(db, () => {
      db.prepare("DELETE FROM content_labels WHERE namespace = ? AND digest = ?").run(this.#namespace, digest);
      const insert = db.prepare(
        "INSERT INTO content_labels (namespace, digest, key, value, updated_at) VALUES (?, ?, ?, ?, ?)",
      );
      for (const [key, value] of Object.entries(labels)) {
        if (value !== "") insert.run(this.#namespace, digest, key, value, now);
      }
    });
  }

  /** Sets the given keys (an empty value removes the key), leaving others alone. */
  patch(digest: Digest, changes: Record<string, string>): void {
    const db = this.#open(true)!;
    const now = Date.now();
    transaction(db, () => {
      const del = db.prepare("DELETE FROM content_labels WHERE namespace = ? AND digest = ? AND key = ?");
      const upsert = db.prepare(
        `INSERT INTO content_labels (namespace, digest, key, value, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (namespace, digest, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
      );
      for (const [key, value] of Object.entries(changes)) {
        if (value === "") del.run(this.#namespace, digest, key);
        else upsert.run(this.#namespace, digest, key, value, now);
      }
    });
  }

  /** Removes the labels of a digest in every namespace (the blob is gone for all). */
  removeAll(digest: Digest): void {
    const db = this.#open(false);
    if (!db) return;
    db.prepare("DELETE FROM content_labels WHERE digest = ?").run(digest);
  }
}

function toSet(rows: { key: string; value: string; updated_at: number }[]): LabelSet {
  const set: LabelSet = { labels: {}, updatedAt: 0 };
  for (const row of rows) {
    set.labels[row.key] = row.value;
    set.updatedAt = Math.max(set.updatedAt, row.updated_at);
  }
  return set;
}

/** The content store of `namespace` under `root`: the blobs of every namespace, this one's labels. */
export function namespacedContentStore(
  root: string,
  namespace = "default",
  opts: { lockTimeout?: number } = {},
): LocalStore {
  return new LocalStore({ root, lockTimeout: opts.lockTimeout, labels: new SqliteLabelStore(root, namespace) });
}
