/**
 * The image store on node:sqlite: per namespace, a name → target descriptor
 * record with labels and created/updated times. Names are opaque here (the CLI
 * normalises references before they arrive); targets are validated.
 */
import type { Descriptor } from "../descriptor.ts";
import { validateDigest } from "../digest.ts";
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from "../errors.ts";
import type { Image, ImageStore } from "../images/image.ts";
import { nowNs, PreciseDate } from "../time.ts";
import { type Database, statement, transaction } from "./db.ts";
import { ensureNamespace, validateNamespace } from "./namespaces.ts";

type NewImage = Omit<Image, "createdAt" | "updatedAt">;

interface Row {
  name: string;
  target: string;
  labels: string;
  created_at: bigint;
  updated_at: bigint;
}

function checkName(name: string): void {
  if (typeof name !== "string" || name === "") throw new InvalidArgumentError("image name must not be empty");
}

function checkTarget(name: string, t: Descriptor): void {
  if (!t || typeof t.mediaType !== "string" || t.mediaType === "") {
    throw new InvalidArgumentError(`image ${name}: target needs a media type`);
  }
  validateDigest(t.digest);
  if (!Number.isSafeInteger(t.size) || t.size < 0) {
    throw new InvalidArgumentError(`image ${name}: target size ${t.size} is not a non-negative integer`);
  }
}

function checkLabels(name: string, labels: Record<string, string>): void {
  for (const [k, v] of Object.entries(labels ?? {})) {
    if (k === "" || typeof v !== "string") throw new InvalidArgumentError(`image ${name}: invalid label "${k}"`);
  }
}

function toImage(r: Row): Image {
  return {
    name: r.name,
    target: JSON.parse(r.target) as Descriptor,
    labels: JSON.parse(r.labels) as Record<string, string>,
    createdAt: new PreciseDate(r.created_at),
    updatedAt: new PreciseDate(r.updated_at),
  };
}

/** Monotonic nanoseconds, so an update is never older than its creation even if the clock steps back. */
let last = 0n;
function now(): bigint {
  const t = nowNs();
  last = t > last ? t : last;
  return last;
}

export class SqliteImageStore implements ImageStore {
  readonly #db: Database;
  readonly #ns: string;

  /** The images of `namespace` in a database Metadata has opened (and migrated). */
  constructor(db: Database, namespace: string) {
    this.#db = db;
    this.#ns = validateNamespace(namespace);
  }

  get namespace(): string {
    return this.#ns;
  }

  #row(name: string): Row | undefined {
    return statement(
      this.#db,
      "SELECT name, target, labels, created_at, updated_at FROM images WHERE namespace = ? AND name = ?",
    ).get(this.#ns, name) as Row | undefined;
  }

  async get(name: string): Promise<Image> {
    const r = this.#row(name);
    if (!r) throw new NotFoundError(`image "${name}" not found in namespace ${this.#ns}`);
    return toImage(r);
  }

  async list(filter: { names?: string[] } = {}): Promise<Image[]> {
    const rows = statement(
      this.#db,
      "SELECT name, target, labels, created_at, updated_at FROM images WHERE namespace = ? ORDER BY name",
    ).all(this.#ns) as unknown as Row[];
    const names = filter.names ? new Set(filter.names) : undefined;
    return rows.filter((r) => !names || names.has(r.name)).map(toImage);
  }

  #insert(image: NewImage, created: bigint, updated: bigint): void {
    const t = image.target;
    ensureNamespace(this.#db, this.#ns);
    this.#db
      .prepare(
        `INSERT INTO images (namespace, name, digest, media_type, size, target, labels, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (namespace, name) DO UPDATE SET digest = excluded.digest, media_type = excluded.media_type,
           size = excluded.size, target = excluded.target, labels = excluded.labels, updated_at = excluded.updated_at`,
      )
      .run(
        this.#ns,
        image.name,
        t.digest,
        t.mediaType,
        t.size,
        JSON.stringify(t),
        JSON.stringify(image.labels ?? {}),
        created,
        updated,
      );
  }

  async create(image: NewImage): Promise<Image> {
    checkName(image.name);
    checkTarget(image.name, image.target);
    checkLabels(image.name, image.labels);
    return transaction(this.#db, () => {
      if (this.#row(image.name))
        throw new AlreadyExistsError(`image "${image.name}" already exists in namespace ${this.#ns}`);
      const t = now();
      this.#insert(image, t, t);
      return toImage(this.#row(image.name) as Row);
    });
  }

  async update(image: NewImage, fieldpaths?: string[]): Promise<Image> {
    checkName(image.name);
    return transaction(this.#db, () => {
      const r = this.#row(image.name);
      if (!r) throw new NotFoundError(`image "${image.name}" not found in namespace ${this.#ns}`);
      const cur = toImage(r);
      let target = cur.target;
      let labels = { ...cur.labels };
      if (!fieldpaths || fieldpaths.length === 0) {
        target = image.target;
        labels = { ...(image.labels ?? {}) };
      } else {
        for (const f of fieldpaths) {
          if (f === "target") target = image.target;
          else if (f === "labels") labels = { ...(image.labels ?? {}) };
          else if (f.startsWith("labels.")) {
            const k = f.slice("labels.".length);
            const v = image.labels?.[k];
            if (v === undefined) delete labels[k];
            else labels[k] = v;
          } else throw new InvalidArgumentError(`cannot update field "${f}" of image ${image.name}`);
        }
      }
      checkTarget(image.name, target);
      checkLabels(image.name, labels);
      this.#insert({ name: image.name, target, labels }, r.created_at, now());
      return toImage(this.#row(image.name) as Row);
    });
  }

  async put(image: NewImage): Promise<Image> {
    checkName(image.name);
    checkTarget(image.name, image.target);
    checkLabels(image.name, image.labels);
    return transaction(this.#db, () => {
      const r = this.#row(image.name);
      const t = now();
      this.#insert(image, r ? r.created_at : t, t);
      return toImage(this.#row(image.name) as Row);
    });
  }

  async delete(name: string): Promise<void> {
    const res = this.#db.prepare("DELETE FROM images WHERE namespace = ? AND name = ?").run(this.#ns, name);
    if (Number(res.changes) === 0) throw new NotFoundError(`image "${name}" not found in namespace ${this.#ns}`);
  }
}
