/**
 * The first pass of an import: every file of the archive goes into the
 * content store as it streams by, whatever the order of the entries (a tar on
 * a pipe may carry index.json or manifest.json after the blobs, and cannot be
 * read twice). A `blobs/<alg>/<hex>` entry is verified against its name while
 * it is written; any other file (a docker-save layer or config) is stored
 * under the digest of its bytes and remembered by its path. The layout's own
 * small files are kept in memory, capped. Memory holds only paths and digests.
 *
 * The archive is hostile input: paths leaving the root, duplicate entries,
 * links inside `blobs/` or in place of the layout's files, unexpected names
 * under `blobs/`, oversized metadata are all refused with a one-line error.
 * What the import wrote is listed (`created`), so that the caller can remove
 * whatever no imported image turns out to reference, or all of it on failure.
 */
import { randomUUID } from "node:crypto";
import { Readable } from "node:stream";
import type { Ingester, IngestManager, Provider } from "../content/content.ts";
import { checkSize, MAX_MANIFEST_SIZE, readAtMost, writeBlob } from "../content/helpers.ts";
import type { Digest } from "../digest.ts";
import { InvalidArgumentError, isErrorCode, wrapError } from "../errors.ts";
import type { ProgressTracker } from "../progress/tracker.ts";
import { type ArchiveEntry, linkTarget } from "./archive-entries.ts";
import { DOCKER_MANIFEST_FILE, REPOSITORIES_FILE } from "./docker-archive.ts";
import { BLOBS_DIR, digestOfBlobPath, INDEX_FILE, isBlobsDir, LAYOUT_FILE } from "./oci-layout.ts";

/** The layout's files read into memory, and the most each may hold. */
const METADATA_LIMITS: ReadonlyMap<string, number> = new Map([
  [LAYOUT_FILE, 4096],
  [INDEX_FILE, MAX_MANIFEST_SIZE],
  [DOCKER_MANIFEST_FILE, MAX_MANIFEST_SIZE],
  [REPOSITORIES_FILE, MAX_MANIFEST_SIZE],
]);

/** Entries beyond this are refused: the maps of paths are the only memory that grows with an archive. */
export const MAX_ENTRIES = 100_000;

export interface StoredFile {
  digest: Digest;
  size: number;
}

export interface CollectOptions {
  content: Provider & Ingester & IngestManager;
  signal?: AbortSignal;
  progress?: ProgressTracker;
}

export class ArchiveCollector {
  /** oci-layout, index.json, manifest.json, repositories: their bytes. */
  readonly files = new Map<string, Buffer>();
  /** Every file stored as a blob, by archive path. */
  readonly stored = new Map<string, StoredFile>();
  /** Each link's path → the archive path it names. */
  readonly links = new Map<string, string>();
  /** Blobs this import added to the store (they were not there before). */
  readonly created = new Set<Digest>();
  readonly #opts: CollectOptions;
  readonly #seen = new Map<string, ArchiveEntry["type"]>();

  constructor(opts: CollectOptions) {
    this.#opts = opts;
  }

  async add(e: ArchiveEntry): Promise<void> {
    this.#opts.signal?.throwIfAborted();
    if (e.path === "") return;
    const before = this.#seen.get(e.path);
    if (before !== undefined && !(before === "dir" && e.type === "dir")) {
      throw new InvalidArgumentError(`duplicate entry ${e.path} in the archive`);
    }
    if (this.#seen.size >= MAX_ENTRIES) {
      throw new InvalidArgumentError(`the archive has more than ${MAX_ENTRIES} entries`);
    }
    this.#seen.set(e.path, e.type);
    const inBlobs = e.path === BLOBS_DIR || e.path.startsWith(`${BLOBS_DIR}/`);
    switch (e.type) {
      case "dir":
        if (inBlobs && !isBlobsDir(e.path)) {
          throw new InvalidArgumentError(`unexpected directory ${e.path}: not blobs/<algorithm>`);
        }
        return;
      case "symlink":
      case "link":
        if (inBlobs || METADATA_LIMITS.has(e.path)) {
          throw new InvalidArgumentError(`${e.path} is a link: a layout's blobs and files must be regular files`);
        }
        this.links.set(e.path, linkTarget(e));
        return;
      case "file":
        await this.#file(e);
    }
  }

  async #file(e: ArchiveEntry): Promise<void> {
    const limit = METADATA_LIMITS.get(e.path);
    if (limit !== undefined) {
      checkSize(e.path, e.size, limit);
      const body = e.body ? await e.body() : Readable.from([]);
      this.files.set(e.path, await readAtMost(body, limit, e.path));
      return;
    }
    const digest = digestOfBlobPath(e.path);
    // docker-save's per-layer v1 metadata: nothing an image needs
    if (!digest && /(^|\/)(json|VERSION)$/.test(e.path) && e.path.includes("/")) return;
    this.stored.set(e.path, await this.#store(e, digest));
  }

  /** Writes a file into the store: verified against the digest its path names, else stored under its own. */
  async #store(e: ArchiveEntry, expected: Digest | undefined): Promise<StoredFile> {
    const { content, signal, progress } = this.#opts;
    const key = e.path;
    progress?.update(key, { state: "waiting", total: e.size });
    // one ref per blob lets an interrupted import resume; other files get a ref of their own
    const ref = expected ? `import-${expected}` : `import-${randomUUID()}`;
    const body = e.body ? await e.body() : Readable.from([]);
    try {
      const r = await writeBlob(content, ref, body, {
        size: e.size,
        expected,
        signal,
        onStart: (offset) => progress?.update(key, { state: "importing", offset, startOffset: offset }),
        onData: progress ? (offset) => progress.update(key, { offset }) : undefined,
      });
      // a blob already stored was not read: its source goes (a directory's file is open)
      if (body instanceof Readable) body.destroy();
      progress?.update(key, { state: r.existed ? "exists" : "done" });
      if (!r.existed) this.created.add(r.digest);
      return { digest: r.digest, size: e.size };
    } catch (err) {
      if (body instanceof Readable) body.destroy();
      progress?.update(key, { state: "error" });
      // an import that failed leaves no ingest behind (a failed verification already emptied it)
      await content.abort(ref).catch(() => {});
      if (signal?.aborted) throw err;
      if (expected && isErrorCode(err, "DataLoss")) {
        throw wrapError(err, `${e.path}: the blob's bytes do not match its name`);
      }
      throw wrapError(err, `importing ${e.path}`);
    }
  }

  /** The stored file at an archive path, following links (a few hops at most). */
  resolve(path: string): StoredFile | undefined {
    let p = path;
    for (let hops = 0; hops < 16; hops++) {
      const f = this.stored.get(p);
      if (f) return f;
      const next = this.links.get(p);
      if (next === undefined) return undefined;
      p = next;
    }
    throw new InvalidArgumentError(`${path}: too many levels of links in the archive`);
  }
}
