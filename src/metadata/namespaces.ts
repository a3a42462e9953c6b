/**
 * Namespaces, with their labels, in the metadata database. Images, content
 * labels and leases each belong to one; a namespace is created by its first
 * write (as containerd does) or explicitly, and deleted only once empty.
 */
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errors.ts";
import { type Database, transaction } from "./db.ts";

// The table keeps the name it had when only the daemon used it: it is on disk in existing roots.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS daemon_namespaces (
  name       TEXT PRIMARY KEY,
  labels     TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL
);
`;

/** A namespace: a name and labels. */
export interface Namespace {
  name: string;
  labels: Record<string, string>;
}

/** The namespaces of a root. */
export interface NamespaceStore {
  /** NotFoundError when it does not exist. */
  get(name: string): Namespace;
  list(): Namespace[];
  /** AlreadyExistsError when it exists. */
  create(ns: Namespace): Namespace;
  /** Changes labels through an update mask (see applyLabelMask). */
  update(ns: Namespace, paths: string[]): Namespace;
  /** FailedPreconditionError naming what still lives in it unless it is empty. */
  delete(name: string): void;
  /** Records a namespace as used: a write into it creates it. */
  ensure(name: string): void;
}

/**
 * What still lives in a namespace, as "3 leases"; undefined when nothing of
 * its kind does. Each store of namespaced records provides one.
 */
export type NamespaceContents = (namespace: string) => string | undefined;

export class SqliteNamespaceStore implements NamespaceStore {
  readonly #db: Database;
  readonly #contents: NamespaceContents[];

  /** `contents` are asked in order before a delete; the first that answers stops it. */
  constructor(db: Database, contents: NamespaceContents[] = []) {
    this.#db = db;
    this.#contents = contents;
    db.exec(SCHEMA);
  }

  ensure(name: string): void {
    this.#db
      .prepare("INSERT OR IGNORE INTO daemon_namespaces (name, labels, created_at) VALUES (?, '{}', ?)")
      .run(name, Date.now());
  }

  get(name: string): Namespace {
    const row = this.#db.prepare("SELECT name, labels FROM daemon_namespaces WHERE name = ?").get(name) as
      | { name: string; labels: string }
      | undefined;
    if (!row) throw new NotFoundError(`namespace ${name}: not found`);
    return { name: row.name, labels: JSON.parse(row.labels) };
  }

  list(): Namespace[] {
    const rows = this.#db.prepare("SELECT name, labels FROM daemon_namespaces ORDER BY name").all() as {
      name: string;
      labels: string;
    }[];
    return rows.map((r) => ({ name: r.name, labels: JSON.parse(r.labels) }));
  }

  create(ns: Namespace): Namespace {
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

  update(ns: Namespace, paths: string[]): Namespace {
    return transaction(this.#db, () => {
      const cur = this.get(ns.name);
      const labels = applyLabelMask(cur.labels, ns.labels ?? {}, paths, `namespace ${ns.name}`);
      this.#db.prepare("UPDATE daemon_namespaces SET labels = ? WHERE name = ?").run(JSON.stringify(labels), ns.name);
      return { name: ns.name, labels };
    });
  }

  delete(name: string): void {
    transaction(this.#db, () => {
      this.get(name);
      for (const contents of this.#contents) {
        const what = contents(name);
        if (what) throw new FailedPreconditionError(`namespace ${name} must be empty, but it still has ${what}`);
      }
      this.#db.prepare("DELETE FROM daemon_namespaces WHERE name = ?").run(name);
    });
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
