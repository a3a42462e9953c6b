/**
 * The metadata database (<root>/metadata.db, node:sqlite): image records,
 * content labels, leases and snapshot metadata. Each store creates its own
 * tables with CREATE TABLE IF NOT EXISTS when it opens, so modules stay
 * independent. WAL and a busy timeout let several dist processes share it.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";

export type Database = DatabaseSync;

const open = new Map<string, DatabaseSync>();

/** Opens (once per process) the database at `<root>/metadata.db`. */
export function openDatabase(root: string, file = "metadata.db"): DatabaseSync {
  const path = join(root, file);
  const existing = open.get(path);
  if (existing) return existing;
  mkdirSync(root, { recursive: true });
  const db = new DatabaseSync(path, { timeout: 10_000 });
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;");
  open.set(path, db);
  return db;
}

/** Runs fn inside one write transaction (BEGIN IMMEDIATE), rolling back on error. */
export function transaction<T>(db: DatabaseSync, fn: () => T): T {
  db.exec("BEGIN IMMEDIATE");
  try {
    const result = fn();
    db.exec("COMMIT");
    return result;
  } catch (err) {
    db.exec("ROLLBACK");
    throw err;
  }
}

export function closeAllDatabases(): void {
  for (const db of open.values()) db.close();
  open.clear();
}
