/**
 * The metadata database (<root>/metadata.db, node:sqlite): the namespaced
 * records of metadata/ (schema and migrations in schema.ts) and the
 * snapshotters' own tables. WAL and a busy timeout let several dist processes
 * share it.
 */
import { join } from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { wrapError } from "../errors.ts";
import { createPrivateFile, prepareRoot } from "../store-root.ts";

export type Database = DatabaseSync;

const open = new Map<string, DatabaseSync>();

/** Opens (once per process) the database at `<root>/metadata.db`. */
export function openDatabase(root: string, file = "metadata.db"): DatabaseSync {
  const path = join(root, file);
  const existing = open.get(path);
  if (existing) return existing;
  let db: DatabaseSync;
  try {
    prepareRoot(root);
    // 0600 before SQLite opens it: SQLite gives the -wal and -shm files the database's mode
    createPrivateFile(path);
    db = new DatabaseSync(path, { timeout: BUSY_TIMEOUT_MS });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EACCES" || code === "EPERM" || code === "EROFS") {
      throw wrapError(err, `cannot write to the store in ${root}`, "PermissionDenied");
    }
    throw err;
  }
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

/**
 * Runs fn inside one write transaction (BEGIN IMMEDIATE: the write lock is taken
 * at once, so two processes never deadlock upgrading a read), rolling back on
 * error. Inside another transaction it is a savepoint: a store's transaction may
 * call another's. fn must be synchronous: the connection is shared by the whole
 * process, so an await inside would let other statements into the transaction.
 * SQLite rolls back by itself when a COMMIT fails (SQLITE_FULL on a full disk):
 * the caller then sees the original error, not the ROLLBACK's.
 */
export function transaction<T>(db: DatabaseSync, fn: () => T): T {
  if (db.isTransaction) {
    const name = `sp${++savepoints}`;
    db.exec(`SAVEPOINT ${name}`);
    try {
      const result = fn();
      db.exec(`RELEASE ${name}`);
      return result;
    } catch (err) {
      db.exec(`ROLLBACK TO ${name}`);
      db.exec(`RELEASE ${name}`);
      throw err;
    }
  }
  db.exec("BEGIN IMMEDIATE");
  try {
    const result = fn();
    db.exec("COMMIT");
    return result;
  } catch (err) {
    if (db.isTransaction) {
      try {
        db.exec("ROLLBACK");
      } catch {}
    }
    throw err;
  }
}

let savepoints = 0;

/**
 * A statement whose INTEGER columns come back as bigint: times are nanoseconds
 * since the epoch, past Number's 2^53. Callers turn sizes and ids into numbers.
 */
export function statement(db: DatabaseSync, sql: string): StatementSync {
  const st = db.prepare(sql);
  st.setReadBigInts(true);
  return st;
}

export function closeAllDatabases(): void {
  for (const db of open.values()) db.close();
  open.clear();
}
