/**
 * The metadata database (<root>/metadata.db, node:sqlite): image records,
 * content labels, leases and snapshot metadata. Each store creates its own
 * tables with CREATE TABLE IF NOT EXISTS when it opens, so modules stay
 * independent. WAL and a busy timeout let several dist processes share it.
 */
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { createPrivateFile, prepareRoot } from "../store-root.ts";

export type Database = DatabaseSync;

const open = new Map<string, DatabaseSync>();

/** Opens (once per process) the database at `<root>/metadata.db`. */
export function openDatabase(root: string, file = "metadata.db"): DatabaseSync {
  const path = join(root, file);
  const existing = open.get(path);
  if (existing) return existing;
  prepareRoot(root);
  // 0600 before SQLite opens it: SQLite gives the -wal and -shm files the database's mode
  createPrivateFile(path);
  const db = new DatabaseSync(path, { timeout: BUSY_TIMEOUT_MS });
  enableWal(db);
  db.exec("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;");
  open.set(path, db);
  return db;
}

const BUSY_TIMEOUT_MS = 10_000;

/**
 * Switching a new database file to WAL needs an exclusive lock that SQLite does
 * not wait for (the busy timeout does not apply): two dist processes opening a
 * fresh root at once made one fail with "database is locked" (1 run in ~40 of 4
 * processes). Once the file is in WAL mode the pragma is a no-op.
 */
export function enableWal(db: Pick<DatabaseSync, "exec">): void {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      db.exec("PRAGMA journal_mode = WAL");
      return;
    } catch (err) {
      // SQLITE_BUSY (5); the extended codes keep it in the low byte
      const busy = ((err as { errcode?: number }).errcode ?? 0) % 256 === 5;
      if (!busy || Date.now() > deadline) throw err;
      Atomics.wait(pause, 0, 0, 10 + Math.floor(Math.random() * 20));
    }
  }
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
