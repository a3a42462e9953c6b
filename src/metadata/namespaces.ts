/**
 * Namespaces, with their labels, in the metadata database. Every namespaced
 * record (images, blobs, ingests, snapshots, leases) belongs to one; a
 * namespace is created by its first write (as containerd does) or explicitly,
 * and deleted only once empty.
 */
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errors.ts";
import { nowNs } from "../time.ts";
import { type Database, transaction } from "./db.ts";
import { applyLabelMask } from "./labels.ts";

const NAME = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;

/**
 * containerd's identifier rule for a namespace: letters and digits separated by
 * single ".", "_" or "-", at most 76 characters. Returns it; InvalidArgument otherwise.
 */
export function validateNamespace(ns: string): string {
  if (typeof ns !== "string" || ns === "") throw new InvalidArgumentError("namespace must not be empty");
  if (ns.length > 76 || !NAME.test(ns)) {
    throw new InvalidArgumentError(
      `namespace "${ns}": must be letters and digits separated by single ".", "_" or "-", at most 76 characters`,
    );
  }
  return ns;
}

/** Records a namespace as used, inside the caller's write (a write into a namespace creates it). */
export function ensureNamespace(db: Database, name: string): void {
  db.prepare("INSERT OR IGNORE INTO namespaces (name, labels, created_at) VALUES (?, '{}', ?)").run(name, nowNs());
}

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

/** What may still live in a namespace, in the order a refusal names them. */
const CONTENTS: [table: string, what: string][] = [
  ["leases", "leases"],
  ["images", "images"],
  ["content_blobs", "blobs"],
  ["content_ingests", "ingests"],
  ["snapshots", "snapshots"],
];

export class SqliteNamespaceStore implements NamespaceStore {
  readonly #db: Database;

  constructor(db: Database) {
    this.#db = db;
  }

  /** What still lives in a namespace ("1 leases, 3 blobs"), or undefined. */
  #remaining(name: string): string | undefined {
    const out: string[] = [];
    for (const [table, what] of CONTENTS) {
      const { n } = this.#db.prepare(`SELECT count(*) AS n FROM ${table} WHERE namespace = ?`).get(name) as {
        n: number;
      };
      if (n > 0) out.push(`${n} ${what}`);
    }
    return out.length > 0 ? out.join(", ") : undefined;
  }

  ensure(name: string): void {
    ensureNamespace(this.#db, validateNamespace(name));
  }

  get(name: string): Namespace {
    const row = this.#db.prepare("SELECT name, labels FROM namespaces WHERE name = ?").get(name) as
      | { name: string; labels: string }
      | undefined;
    if (!row) throw new NotFoundError(`namespace ${name}: not found`);
    return { name: row.name, labels: JSON.parse(row.labels) };
  }

  list(): Namespace[] {
    const rows = this.#db.prepare("SELECT name, labels FROM namespaces ORDER BY name").all() as {
      name: string;
      labels: string;
    }[];
    return rows.map((r) => ({ name: r.name, labels: JSON.parse(r.labels) }));
  }

  create(ns: Namespace): Namespace {
    try {
      this.#db
        .prepare("INSERT INTO namespaces (name, labels, created_at) VALUES (?, ?, ?)")
        .run(validateNamespace(ns.name), JSON.stringify(ns.labels ?? {}), nowNs());
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
      this.#db.prepare("UPDATE namespaces SET labels = ? WHERE name = ?").run(JSON.stringify(labels), ns.name);
      return { name: ns.name, labels };
    });
  }

  delete(name: string): void {
    transaction(this.#db, () => {
      this.get(name);
      const what = this.#remaining(name);
      if (what) throw new FailedPreconditionError(`namespace ${name} must be empty, but it still has ${what}`);
      this.#db.prepare("DELETE FROM namespaces WHERE name = ?").run(name);
    });
  }
}
