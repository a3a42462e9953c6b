/**
 * The content store of one namespace (containerd's metadata contentStore):
 * records over the namespace-free blob store (content/local). A blob is
 * visible in a namespace once a commit recorded it there (content_blobs: its
 * size, labels and the commit's time); an ingest is the namespace's record of a
 * ref (content_ingests) mapped onto an ingest of the blob store
 * (`<namespace>/<n>/<ref>`), so refs and their locks never meet across
 * namespaces.
 *
 * Sharing, containerd's default policy: a writer in this namespace for a digest
 * whose bytes another namespace committed starts at offset = size, with no
 * bytes copied; its commit records the blob here. AlreadyExists only when this
 * namespace has it. A blob's bytes go when the last namespace that records it
 * deletes it, unless an ingest stands for it.
 *
 * Every publication is atomic with its record: the blob file is renamed into
 * place (or found there) inside the transaction that records it, and removed
 * inside the one that drops its last record, so no namespace ever sees a
 * record without its file, nor loses a file another commit just recorded.
 */
import { dirname } from "node:path";
import type { Readable } from "node:stream";
import {
  type BlobFiles,
  type CommitOptions,
  checkWriterOptions,
  type Info,
  type IngestFiles,
  type ReadOptions,
  type Retainer,
  type Status,
  type Store,
  type WalkFilter,
  type Writer,
  type WriterOptions,
} from "../content/content.ts";
import type { LocalStore } from "../content/local/store.ts";
import { type LocalWriter, syncDir } from "../content/local/writer.ts";
import { type Digest, validateDigest } from "../digest.ts";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  isAlreadyExists,
  isNotFound,
  NotFoundError,
} from "../errors.ts";
import { nowNs, PreciseDate, preciseNow } from "../time.ts";
import { type Database, statement, transaction } from "./db.ts";
import { applyLabelMask, checkLabels } from "./labels.ts";
import { LeaseContext } from "./leases.ts";
import { ensureNamespace } from "./namespaces.ts";
import { nextSequence } from "./schema.ts";

/** A namespace's content store's options: the lease its writes go on, the ref lock wait. */
export interface ContentOptions {
  /** The lease a write is made under: what it creates goes on it (NotFound when it does not exist). */
  lease?: string;
  /** How long a writer waits for a ref another writer holds (ms); the blob store's default otherwise. */
  lockTimeout?: number;
}

interface BlobRow {
  digest: Digest;
  size: bigint;
  labels: string;
  created_at: bigint;
  updated_at: bigint;
}

interface IngestRow {
  ref: string;
  backend_ref: string;
  expected: Digest | null;
  size: bigint | null;
  created_at: bigint;
}

const toInfo = (r: BlobRow): Info => ({
  digest: r.digest,
  size: Number(r.size),
  createdAt: new PreciseDate(r.created_at),
  updatedAt: new PreciseDate(r.updated_at),
  labels: JSON.parse(r.labels) as Record<string, string>,
});

/** Whether a namespace records the blob, or an ingest stands for it: its bytes must stay. */
export function blobHeld(db: Database, digest: Digest): boolean {
  return (
    db.prepare("SELECT 1 AS x FROM content_blobs WHERE digest = ? LIMIT 1").get(digest) !== undefined ||
    db.prepare("SELECT 1 AS x FROM content_ingests WHERE expected = ? LIMIT 1").get(digest) !== undefined
  );
}

/** A namespace's content: its own blob records and ingests over the shared, namespace-free blob store (containerd's shared policy). */
export class NamespacedContentStore implements Store, BlobFiles, IngestFiles, Retainer {
  readonly namespace: string;
  readonly #db: Database;
  readonly #blobs: LocalStore;
  readonly #lease: LeaseContext;
  readonly #lockTimeout: number | undefined;

  /** @internal made by Metadata.content() */
  constructor(db: Database, blobs: LocalStore, namespace: string, opts: ContentOptions = {}) {
    this.#db = db;
    this.#blobs = blobs;
    this.namespace = namespace;
    this.#lease = new LeaseContext(db, namespace, opts.lease);
    this.#lockTimeout = opts.lockTimeout;
  }

  /** The blob store's file (check info() first: the file may belong to another namespace only). */
  blobPath(digest: Digest): string {
    return this.#blobs.blobPath(digest);
  }

  /**
   * The file receiving the bytes of this namespace's ingest of `ref`: its data file in the
   * blob store, or, for an ingest that stands for a blob another namespace committed, that
   * blob's file (its bytes are all there). NotFound when the namespace has no such ingest.
   */
  ingestDataPath(ref: string): string {
    const rec = this.#ingest(ref);
    if (!rec) throw new NotFoundError(`ingest ${ref}: not found in namespace ${this.namespace}`);
    if (rec.size !== null && rec.expected) return this.#blobs.blobPath(rec.expected);
    return this.#blobs.ingestDataPath(rec.backend_ref);
  }

  #row(digest: Digest): BlobRow | undefined {
    return statement(
      this.#db,
      "SELECT digest, size, labels, created_at, updated_at FROM content_blobs WHERE namespace = ? AND digest = ?",
    ).get(this.namespace, digest) as BlobRow | undefined;
  }

  #has(digest: Digest): boolean {
    return this.#row(digest) !== undefined;
  }

  #notFound(digest: Digest): NotFoundError {
    return new NotFoundError(`content ${digest}: not found in namespace ${this.namespace}`);
  }

  // ---- Provider

  async info(digest: Digest): Promise<Info> {
    const row = this.#row(validateDigest(digest));
    if (!row) throw this.#notFound(digest);
    return toInfo(row);
  }

  async openRead(digest: Digest, opts: ReadOptions = {}): Promise<Readable> {
    await this.info(digest);
    return this.#blobs.openRead(digest, opts);
  }

  async readAt(digest: Digest, buf: Uint8Array, position: number): Promise<number> {
    await this.info(digest);
    return this.#blobs.readAt(digest, buf, position);
  }

  // ---- Manager

  async walk(fn: (info: Info) => void | Promise<void>, filter: WalkFilter = {}): Promise<void> {
    const prefixes = filter.digestPrefixes ?? [];
    const labelFilters = (filter.labels ?? []).map(parseLabelFilter);
    const rows = statement(
      this.#db,
      "SELECT digest, size, labels, created_at, updated_at FROM content_blobs WHERE namespace = ? ORDER BY digest",
    ).all(this.namespace) as unknown as BlobRow[];
    for (const row of rows) {
      const hex = row.digest.slice(row.digest.indexOf(":") + 1);
      // a prefix without an algorithm ("2cf24d") matches the hex of any algorithm
      if (prefixes.length > 0 && !prefixes.some((p) => row.digest.startsWith(p) || hex.startsWith(p))) continue;
      const info = toInfo(row);
      if (!labelFilters.every((f) => matchLabel(info.labels, f))) continue;
      await fn(info);
    }
  }

  /** Drops this namespace's record; the bytes go with the last record (see the module comment). */
  async delete(digest: Digest): Promise<void> {
    validateDigest(digest);
    transaction(this.#db, () => {
      const r = this.#db
        .prepare("DELETE FROM content_blobs WHERE namespace = ? AND digest = ?")
        .run(this.namespace, digest);
      if (Number(r.changes) === 0) throw this.#notFound(digest);
      this.#lease.release("content", digest);
      if (!blobHeld(this.#db, digest)) this.#blobs.removeBlob(digest);
    });
  }

  /**
   * Puts a blob this namespace has on the store's lease (nothing without one), as
   * containerd's writer does when the content exists: a flow that finds a blob
   * already here holds it, so a collection cannot take it before the flow's
   * own records reference it. NotFoundError when the namespace does not have it.
   */
  async retain(digest: Digest): Promise<void> {
    validateDigest(digest);
    transaction(this.#db, () => {
      if (!this.#has(digest)) throw this.#notFound(digest);
      this.#lease.hold("content", digest);
    });
  }

  async update(digest: Digest, labels: Record<string, string>, fieldpaths?: string[]): Promise<Info> {
    validateDigest(digest);
    return transaction(this.#db, () => {
      const row = this.#row(digest);
      if (!row) throw this.#notFound(digest);
      const what = `content ${digest}`;
      const next = checkLabels(applyLabelMask(toInfo(row).labels, labels ?? {}, fieldpaths ?? [], what), what);
      this.#db
        .prepare("UPDATE content_blobs SET labels = ?, updated_at = ? WHERE namespace = ? AND digest = ?")
        .run(JSON.stringify(next), nowNs(), this.namespace, digest);
      return toInfo(this.#row(digest) as BlobRow);
    });
  }

  // ---- Ingester

  async writer(opts: WriterOptions): Promise<Writer> {
    const { ref, total, expected } = checkWriterOptions(opts);
    for (let attempt = 0; ; attempt++) {
      opts.signal?.throwIfAborted();
      if (expected && this.#has(expected)) {
        transaction(this.#db, () => this.#lease.hold("content", expected));
        throw new AlreadyExistsError(`content ${expected} already exists in namespace ${this.namespace}`);
      }
      // the shared policy: bytes another namespace committed stand in for this ingest's
      const present = expected ? this.#blobs.blobSize(expected) : undefined;
      const sharable = present !== undefined && (total === 0 || total === present) ? present : undefined;
      const { rec, created, shared } = transaction(this.#db, () => {
        // a ref another writer is filling is not taken over (its commit would find its record gone):
        // this writer waits for that one's ref like any other
        const active = this.#ingest(ref);
        const shared = sharable !== undefined && (!active || active.size !== null) ? sharable : undefined;
        return { ...this.#openRecord(ref, shared === undefined ? undefined : expected, shared), shared };
      });
      if (shared !== undefined && expected) {
        return new NamespacedWriter(this.#writerContext(), ref, rec.backend_ref, undefined, {
          digest: expected,
          size: shared,
          startedAt: preciseNow(),
        });
      }
      let backend: LocalWriter;
      try {
        backend = await this.#blobs.writer({
          ref: rec.backend_ref,
          total,
          // with bytes of another size present, this is other content: a fresh writer, checked at commit
          expected: present === undefined ? expected : undefined,
          signal: opts.signal,
          lockTimeout: this.#lockTimeout,
        });
      } catch (err) {
        // committed elsewhere meanwhile: share it
        if (isAlreadyExists(err) && attempt < 3) continue;
        // a record this call made for an ingest that never was: nobody else knows its backend ref
        if (created) this.#drop(rec);
        throw err;
      }
      if (this.#backendRef(ref) === rec.backend_ref) {
        return new NamespacedWriter(this.#writerContext(), ref, rec.backend_ref, backend);
      }
      // committed or aborted while this writer waited for the ref: that ingest is over
      await backend.close();
      await this.#blobs.abort(rec.backend_ref).catch(() => {});
    }
  }

  /** The ingest record of `ref` (made when missing), inside a transaction. */
  #openRecord(
    ref: string,
    expected: Digest | undefined,
    size: number | undefined,
  ): { rec: IngestRow; created: boolean } {
    this.#lease.check();
    ensureNamespace(this.#db, this.namespace);
    let rec = this.#ingest(ref);
    const created = !rec;
    if (!rec) {
      const backendRef = `${this.namespace}/${nextSequence(this.#db, "ingest")}/${ref}`;
      this.#db
        .prepare(
          "INSERT INTO content_ingests (namespace, ref, backend_ref, expected, size, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .run(this.namespace, ref, backendRef, expected ?? null, size ?? null, nowNs());
    } else {
      this.#db
        .prepare("UPDATE content_ingests SET expected = ?, size = ? WHERE namespace = ? AND ref = ?")
        .run(expected ?? null, size ?? null, this.namespace, ref);
    }
    rec = this.#ingest(ref) as IngestRow;
    this.#lease.hold("ingests", ref);
    return { rec, created };
  }

  #drop(rec: IngestRow): void {
    transaction(this.#db, () => {
      this.#db
        .prepare("DELETE FROM content_ingests WHERE namespace = ? AND ref = ? AND backend_ref = ?")
        .run(this.namespace, rec.ref, rec.backend_ref);
      this.#lease.release("ingests", rec.ref);
    });
  }

  #ingest(ref: string): IngestRow | undefined {
    return statement(
      this.#db,
      "SELECT ref, backend_ref, expected, size, created_at FROM content_ingests WHERE namespace = ? AND ref = ?",
    ).get(this.namespace, ref) as IngestRow | undefined;
  }

  #backendRef(ref: string): string | undefined {
    return this.#ingest(ref)?.backend_ref;
  }

  #writerContext(): WriterContext {
    return {
      namespace: this.namespace,
      db: this.#db,
      blobs: this.#blobs,
      lease: this.#lease,
      lockTimeout: this.#lockTimeout,
      backendRef: (ref) => this.#backendRef(ref),
      has: (digest) => this.#has(digest),
    };
  }

  // ---- IngestManager

  async status(ref: string): Promise<Status> {
    const rec = this.#ingest(ref);
    const st = rec ? await this.#status(rec) : undefined;
    if (!st) throw new NotFoundError(`ingest ${ref}: not found in namespace ${this.namespace}`);
    return st;
  }

  /** The blob store's status under this namespace's ref; a shared ingest's own; undefined when gone. */
  async #status(rec: IngestRow): Promise<Status | undefined> {
    try {
      const st = await this.#blobs.status(rec.backend_ref);
      return { ...st, ref: rec.ref, expected: st.expected ?? rec.expected ?? undefined };
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (rec.expected === null || rec.size === null) return undefined;
    const at = new PreciseDate(rec.created_at);
    const size = Number(rec.size);
    return { ref: rec.ref, offset: size, total: size, expected: rec.expected, startedAt: at, updatedAt: at };
  }

  async listStatuses(filter: { refPrefixes?: string[] } = {}): Promise<Status[]> {
    const prefixes = filter.refPrefixes ?? [];
    const rows = statement(
      this.#db,
      "SELECT ref, backend_ref, expected, size, created_at FROM content_ingests WHERE namespace = ? ORDER BY ref",
    ).all(this.namespace) as unknown as IngestRow[];
    const out: Status[] = [];
    for (const rec of rows) {
      if (prefixes.length > 0 && !prefixes.some((p) => rec.ref.startsWith(p))) continue;
      const st = await this.#status(rec);
      if (st) out.push(st);
    }
    return out;
  }

  /**
   * Drops the ingest at once, as containerd does, even while a writer holds it:
   * the record goes first (that writer's commit then fails: it finds no record),
   * then the blob store's ingest (see LocalStore.abort).
   */
  async abort(ref: string): Promise<void> {
    if (ref === "") throw new InvalidArgumentError("must specify a ref to abort");
    const rec = transaction(this.#db, () => {
      const r = this.#ingest(ref);
      if (!r) throw new NotFoundError(`ingest ${ref}: not found in namespace ${this.namespace}`);
      this.#db.prepare("DELETE FROM content_ingests WHERE namespace = ? AND ref = ?").run(this.namespace, ref);
      this.#lease.release("ingests", ref);
      return r;
    });
    await this.#blobs.abort(rec.backend_ref).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
  }

  /**
   * Removes this namespace's ingests not written to for `olderThanMs`, except
   * those a writer holds (dist content prune). Returns what was removed.
   */
  async pruneIngests(olderThanMs: number): Promise<Status[]> {
    const rows = statement(
      this.#db,
      "SELECT ref, backend_ref, expected, size, created_at FROM content_ingests WHERE namespace = ?",
    ).all(this.namespace) as unknown as IngestRow[];
    const byBackend = new Map(rows.map((r) => [r.backend_ref, r]));
    const removed = await this.#blobs.pruneIngests(olderThanMs, (bref) => bref !== undefined && byBackend.has(bref));
    const out: Status[] = [];
    transaction(this.#db, () => {
      const drop = this.#db.prepare("DELETE FROM content_ingests WHERE namespace = ? AND backend_ref = ?");
      for (const st of removed) {
        const rec = byBackend.get(st.ref);
        if (!rec) continue;
        drop.run(this.namespace, st.ref);
        out.push({ ...st, ref: rec.ref });
      }
    });
    return out;
  }
}

/** What a namespace's writer needs of its store. */
interface WriterContext {
  namespace: string;
  db: Database;
  blobs: LocalStore;
  lease: LeaseContext;
  lockTimeout: number | undefined;
  /** The blob store's ref of this namespace's ingest of `ref`, while it exists. */
  backendRef(ref: string): string | undefined;
  /** Whether the namespace has recorded this blob. */
  has(digest: Digest): boolean;
}

/** A shared ingest: bytes another namespace committed, not copied unless written to. */
interface Shared {
  digest: Digest;
  size: number;
  startedAt: PreciseDate;
}

class NamespacedWriter implements Writer {
  readonly #ctx: WriterContext;
  readonly #ref: string;
  readonly #backendRef: string;
  #backend: LocalWriter | undefined;
  readonly #shared: Shared | undefined;
  #done = false;

  constructor(ctx: WriterContext, ref: string, backendRef: string, backend: LocalWriter | undefined, shared?: Shared) {
    this.#ctx = ctx;
    this.#ref = ref;
    this.#backendRef = backendRef;
    this.#backend = backend;
    this.#shared = shared;
  }

  #open(): void {
    if (this.#done) throw new FailedPreconditionError(`writer for ref ${this.#ref} is closed`);
  }

  /**
   * Turns a shared ingest into a real one holding the first `size` bytes of the
   * shared blob (containerd's createAndCopy): it is about to be written to.
   */
  async #unshare(size: number): Promise<LocalWriter> {
    const shared = this.#shared as Shared;
    const w = await this.#ctx.blobs.writer({ ref: this.#backendRef, lockTimeout: this.#ctx.lockTimeout });
    try {
      if (w.status().offset > 0) await w.truncate(0);
      if (size > 0) {
        for await (const chunk of await this.#ctx.blobs.openRead(shared.digest, { length: size })) {
          await w.write(chunk as Buffer);
        }
      }
    } catch (err) {
      await w.close().catch(() => {});
      throw err;
    }
    this.#backend = w;
    return w;
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.#open();
    if (!this.#backend) {
      if (chunk.length === 0) return;
      await this.#unshare((this.#shared as Shared).size);
    }
    await (this.#backend as LocalWriter).write(chunk);
  }

  status(): Status {
    if (this.#backend) {
      const st = this.#backend.status();
      return { ...st, ref: this.#ref };
    }
    const s = this.#shared as Shared;
    return {
      ref: this.#ref,
      offset: s.size,
      total: s.size,
      expected: s.digest,
      startedAt: s.startedAt,
      updatedAt: s.startedAt,
    };
  }

  digest(): Digest {
    return this.#backend ? this.#backend.digest() : (this.#shared as Shared).digest;
  }

  async truncate(size: 0): Promise<void> {
    this.#open();
    if (size !== 0) throw new InvalidArgumentError(`truncate of ref ${this.#ref}: only 0 is supported`);
    if (this.#backend) await this.#backend.truncate(0);
    else await this.#unshare(0);
  }

  async commit(size?: number, expected?: Digest, opts: CommitOptions = {}): Promise<void> {
    this.#open();
    const { namespace, db, lease } = this.#ctx;
    const labels = checkLabels(opts.labels, `commit of ref ${this.#ref}`);
    const want = expected ? validateDigest(expected) : undefined;
    let verified: { digest: Digest; size: number };
    const backend = this.#backend;
    if (backend) {
      // the slow part (fsync, a second hash) before the transaction; a mismatch keeps the ingest
      try {
        verified = await backend.verify(size, want);
      } finally {
        this.#done = true;
      }
    } else {
      const s = this.#shared as Shared;
      this.#done = true;
      if (size !== undefined && size !== 0 && size !== s.size) {
        throw new FailedPreconditionError(
          `commit of ref ${this.#ref} failed: ${s.digest} is ${s.size} bytes, expected ${size}`,
        );
      }
      if (want && want !== s.digest) {
        throw new FailedPreconditionError(
          `commit of ref ${this.#ref} failed: got digest ${s.digest}, expected ${want}`,
        );
      }
      verified = { digest: s.digest, size: s.size };
    }
    let published: "created" | "existed" | undefined;
    let already: boolean;
    try {
      already = transaction(db, () => {
        if (this.#ctx.backendRef(this.#ref) !== this.#backendRef) {
          // two shared writers of one ref: the first commit recorded the same bytes
          if (!backend && this.#ctx.has(verified.digest)) return true;
          throw new NotFoundError(`commit of ref ${this.#ref}: the ingest was aborted`);
        }
        // every refusal before the blob is published: after it, nothing here fails
        lease.check();
        if (backend) published = backend.publish({ holdRef: true });
        else if (!this.#ctx.blobs.hasBlob(verified.digest)) {
          throw new NotFoundError(`commit of ref ${this.#ref}: content ${verified.digest} is gone`);
        }
        db.prepare("DELETE FROM content_ingests WHERE namespace = ? AND ref = ?").run(namespace, this.#ref);
        lease.release("ingests", this.#ref);
        lease.hold("content", verified.digest);
        ensureNamespace(db, namespace);
        const now = nowNs();
        const r = db
          .prepare(
            `INSERT INTO content_blobs (namespace, digest, size, labels, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (namespace, digest) DO NOTHING`,
          )
          .run(namespace, verified.digest, verified.size, JSON.stringify(labels), now, now);
        // already recorded here: containerd's AlreadyExists, the ingest over all the same
        return Number(r.changes) === 0;
      });
    } catch (err) {
      // published, then not recorded: bytes no namespace holds must not stay
      if (published === "created") {
        try {
          transaction(db, () => {
            if (!blobHeld(db, verified.digest)) this.#ctx.blobs.removeBlob(verified.digest);
          });
        } catch {}
      }
      if (!published) await backend?.close().catch(() => {});
      throw err;
    } finally {
      // only now may a writer waiting for the ref look at the records
      backend?.releaseRef();
    }
    if (published === "created") await syncDir(dirname(this.#ctx.blobs.blobPath(verified.digest)));
    if (already) throw new AlreadyExistsError(`content ${verified.digest} already exists in namespace ${namespace}`);
  }

  async close(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    await this.#backend?.close();
  }
}

interface LabelFilter {
  key: string;
  value?: string;
}

function parseLabelFilter(s: string): LabelFilter {
  const i = s.indexOf("=");
  if (i === 0) throw new InvalidArgumentError(`invalid label filter "${s}": expected key or key=value`);
  return i < 0 ? { key: s } : { key: s.slice(0, i), value: s.slice(i + 1) };
}

function matchLabel(labels: Record<string, string>, f: LabelFilter): boolean {
  if (!Object.hasOwn(labels, f.key)) return false;
  return f.value === undefined || labels[f.key] === f.value;
}
