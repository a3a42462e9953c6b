/**
 * Shared downloads of the pull-through cache: every request for a blob that is
 * being fetched from upstream joins the one download, whenever it arrives. The
 * bytes go through the content store's writer (copyToWriter, verified on
 * commit) into the ingest's file, and each waiting client reads that file
 * behind the writer as it grows, from the offset it asked for. The last byte
 * is held back until the commit verified the digest, so no client receives a
 * complete body of bad content; a failed download fails its readers (their
 * connections are cut, and clients retry).
 */
import { type FileHandle, open } from "node:fs/promises";
import { Readable } from "node:stream";
import { hasIngestFiles, type Ingester, type Provider, type Writer } from "../content/content.ts";
import { copyToWriter, type OpenAt } from "../content/helpers.ts";
import type { Digest } from "../digest.ts";
import { DataLossError, isAlreadyExists } from "../errors.ts";

const CHUNK = 1 << 20;

/** Where a download's bytes come from: its size, then the stream from an offset. */
export interface DownloadSource {
  size: number;
  open: OpenAt;
  /** Releases what was opened before the download knew it was not needed. */
  discard(): void;
}

export class Download {
  readonly digest: Digest;
  readonly size: number;
  readonly #store: Provider;
  readonly #fh: FileHandle | undefined;
  #available = 0;
  #done = false;
  #error: Error | undefined;
  #users = 1;
  #pulse: { promise: Promise<void>; resolve: () => void };
  readonly finished: Promise<void>;

  constructor(store: Provider, digest: Digest, size: number, fh: FileHandle | undefined, copy: Promise<unknown>) {
    this.#store = store;
    this.digest = digest;
    this.size = size;
    this.#fh = fh;
    this.#pulse = Promise.withResolvers<void>();
    this.finished = copy.then(
      () => {
        this.#done = true;
        this.#wake();
        this.#release();
      },
      (err: unknown) => {
        this.#error = err instanceof Error ? err : new Error(String(err));
        this.#wake();
        this.#release();
        throw this.#error;
      },
    );
    // readers see the failure; nobody else has to
    this.finished.catch(() => {});
  }

  /** Bytes in the file so far: readers waiting for more are woken when it grows. */
  progress(n: number): void {
    if (n === this.#available) return;
    this.#available = n;
    this.#wake();
  }

  #wake(): void {
    const p = this.#pulse;
    this.#pulse = Promise.withResolvers<void>();
    p.resolve();
  }

  #release(): void {
    if (--this.#users === 0) void this.#fh?.close().catch(() => {});
  }

  /** The bytes a reader may have: all once committed, else all but the last of those in the file. */
  #limit(): number {
    return this.#done ? this.size : Math.min(this.#available, this.size - 1);
  }

  /** The bytes start..end (inclusive) as they arrive. */
  async reader(start: number, end: number): Promise<Readable> {
    if (!this.#fh) {
      // a store whose ingests are not files: the blob is served once committed
      await this.finished;
      return this.#store.openRead(this.digest, { offset: start, length: end - start + 1 });
    }
    const fh = this.#fh;
    this.#users++;
    let pos = start;
    let released = false;
    const release = () => {
      if (!released) {
        released = true;
        this.#release();
      }
    };
    const follow = async function* (this: Download): AsyncGenerator<Buffer> {
      try {
        while (pos <= end) {
          if (this.#error) throw this.#error;
          const limit = Math.min(this.#limit(), end + 1);
          if (pos < limit) {
            const buf = Buffer.allocUnsafe(Math.min(CHUNK, limit - pos));
            const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
            if (bytesRead > 0) {
              pos += bytesRead;
              yield buf.subarray(0, bytesRead);
              continue;
            }
            if (this.#done) throw new DataLossError(`blob ${this.digest}: the download's file ends early`);
          }
          // the writer's batch has not reached the file yet, or the network has not sent more
          await this.#pulse.promise;
        }
      } finally {
        release();
      }
    }.call(this);
    const stream = Readable.from(follow, { objectMode: false, highWaterMark: CHUNK });
    stream.once("close", release);
    return stream;
  }
}

/**
 * The downloads in flight, by digest. A request forwarded by a mirror joins
 * one too: it cannot be waiting on that mirror, since every server orders
 * the same peers the same way and never asks itself (Upstream.plan); peers
 * whose lists disagree could wait on each other until the stall timeout.
 */
export class Downloads {
  readonly #store: Provider & Ingester;
  readonly #inflight = new Map<Digest, Promise<Download | undefined>>();
  readonly #ctrl = new AbortController();

  constructor(store: Provider & Ingester) {
    this.#store = store;
  }

  /** The download of `digest` in flight, if any. */
  get(digest: Digest): Promise<Download | undefined> | undefined {
    return this.#inflight.get(digest);
  }

  /**
   * Joins the download of `digest`, or starts it from what `begin` opens.
   * Undefined when the blob turned out to be in the store already.
   */
  join(digest: Digest, what: string, begin: () => Promise<DownloadSource>): Promise<Download | undefined> {
    const known = this.#inflight.get(digest);
    if (known) return known;
    const started = this.#start(digest, what, begin);
    this.#inflight.set(digest, started);
    const forget = () => {
      if (this.#inflight.get(digest) === started) this.#inflight.delete(digest);
    };
    started.then((d) => (d ? d.finished.then(forget, forget) : forget()), forget);
    return started;
  }

  async #start(digest: Digest, what: string, begin: () => Promise<DownloadSource>): Promise<Download | undefined> {
    const src = await begin();
    const ref = `serve-${digest}`;
    let w: Writer;
    try {
      w = await this.#store.writer({ ref, total: src.size, expected: digest, signal: this.#ctrl.signal });
    } catch (err) {
      src.discard();
      if (isAlreadyExists(err)) return undefined;
      throw err;
    }
    let fh: FileHandle | undefined;
    try {
      if (hasIngestFiles(this.#store)) fh = await open(this.#store.ingestDataPath(ref), "r");
    } catch (err) {
      src.discard();
      await w.close().catch(() => {});
      throw err;
    }
    let download: Download | undefined;
    const copy = copyToWriter(w, src.open, {
      what,
      size: src.size,
      expected: digest,
      signal: this.#ctrl.signal,
      // the writer's offset counts what reached the file (the copy gathers chunks into batches)
      onStart: () => download?.progress(w.status().offset),
      onData: () => download?.progress(w.status().offset),
    });
    download = new Download(this.#store, digest, src.size, fh, copy);
    return download;
  }

  /** Stops every download (the server is closing); their ingests stay for a later resume. */
  close(): void {
    this.#ctrl.abort(new Error("the registry server is closing"));
  }
}
