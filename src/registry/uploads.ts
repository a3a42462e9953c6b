/**
 * Blob uploads (`--allow-push`): monolithic (one POST or PUT), chunked (PATCH
 * after PATCH, then PUT with the digest) and resumable, into the content
 * store through its writer. An upload session is one copyToWriter whose
 * source is the request bodies as they come, one after another: the store
 * verifies size and digest on commit, and nothing is visible before. Every
 * session has a size bound and an idle bound; one that passes either is
 * aborted and its ingest removed.
 */
import { randomUUID } from "node:crypto";
import type { Readable } from "node:stream";
import type { Ingester, IngestManager } from "../content/content.ts";
import { type CopyResult, copyToWriter } from "../content/helpers.ts";
import type { Digest } from "../digest.ts";
import { RegistryError } from "./errors.ts";

/** Bounds on uploads (`--allow-push`): their size and how long one may stay idle. */
export interface UploadLimits {
  /** Largest blob accepted, in bytes. */
  maxBytes: number;
  /** An upload with no request for this long is aborted (ms). */
  idleMs: number;
}

export const DEFAULT_UPLOAD_LIMITS: UploadLimits = { maxBytes: 64 * 2 ** 30, idleMs: 10 * 60_000 };

interface Chunk {
  body: Readable;
  done: PromiseWithResolvers<void>;
}

const END = Symbol("end");

export class UploadSession {
  readonly id = randomUUID();
  readonly repository: string;
  /** Bytes received so far. */
  offset = 0;
  readonly #limits: UploadLimits;
  readonly #queue: (Chunk | typeof END | Error)[] = [];
  #wake: (() => void) | undefined;
  #digest: Digest | undefined;
  #busy = false;
  #timer: NodeJS.Timeout;
  readonly result: Promise<CopyResult>;
  readonly #onEnd: () => void;

  constructor(store: Ingester & IngestManager, repository: string, limits: UploadLimits, onEnd: () => void) {
    this.repository = repository;
    this.#limits = limits;
    this.#onEnd = onEnd;
    const ref = `upload-${this.id}`;
    this.#timer = setTimeout(() => this.cancel(idle(limits.idleMs)), limits.idleMs);
    this.#timer.unref();
    this.result = (async () => {
      const w = await store.writer({ ref });
      return copyToWriter(w, async () => this.#source(), {
        what: `upload ${this.id}`,
        expectedAtEnd: () => this.#digest,
      });
    })();
    this.result.then(
      () => this.#end(),
      async () => {
        this.#end();
        await store.abort(ref).catch(() => {});
      },
    );
  }

  #end(): void {
    clearTimeout(this.#timer);
    this.#onEnd();
  }

  async *#source(): AsyncGenerator<Buffer> {
    for (;;) {
      const next = await this.#next();
      if (next === END) return;
      if (next instanceof Error) throw next;
      try {
        for await (const data of next.body) {
          const chunk = data as Buffer;
          this.offset += chunk.length;
          this.#timer.refresh();
          if (this.offset > this.#limits.maxBytes) {
            const err = tooLarge(this.#limits.maxBytes);
            next.done.reject(err);
            throw err;
          }
          yield chunk;
        }
        next.done.resolve();
      } catch (err) {
        if (err instanceof RegistryError) throw err;
        // the client went away mid-chunk: what arrived counts, the session stays for a resume
        next.done.reject(err);
      }
    }
  }

  #next(): Promise<Chunk | typeof END | Error> {
    const item = this.#queue.shift();
    if (item !== undefined) return Promise.resolve(item);
    return new Promise((resolve) => {
      this.#wake = () => {
        this.#wake = undefined;
        resolve(this.#queue.shift() as Chunk | typeof END | Error);
      };
    });
  }

  #push(item: Chunk | typeof END | Error): void {
    this.#queue.push(item);
    this.#wake?.();
  }

  /** Appends a request body; resolves once it was all taken. One request at a time. */
  async append(body: Readable): Promise<void> {
    if (this.#busy) {
      throw new RegistryError(409, "BLOB_UPLOAD_INVALID", `upload ${this.id}: another request is writing to it`);
    }
    this.#busy = true;
    this.#timer.refresh();
    const chunk: Chunk = { body, done: Promise.withResolvers<void>() };
    this.#push(chunk);
    try {
      // a copy that failed takes no more chunks
      await Promise.race([chunk.done.promise, this.result.then(() => {})]);
    } finally {
      this.#busy = false;
    }
  }

  /** Ends the upload as the blob `digest`; resolves when it is committed (DataLoss when it is not that digest). */
  finish(digest: Digest): Promise<CopyResult> {
    this.#digest = digest;
    this.#push(END);
    return this.result;
  }

  cancel(reason: Error = new Error("upload cancelled")): void {
    this.#push(reason);
  }
}

function tooLarge(max: number): RegistryError {
  return new RegistryError(413, "SIZE_INVALID", `upload larger than the ${max}-byte limit of this server`);
}

function idle(ms: number): RegistryError {
  return new RegistryError(408, "BLOB_UPLOAD_INVALID", `upload idle for more than ${ms / 1000}s: aborted`);
}

/** The uploads in progress, by id. */
export class Uploads {
  readonly #store: Ingester & IngestManager;
  readonly limits: UploadLimits;
  readonly #sessions = new Map<string, UploadSession>();

  constructor(store: Ingester & IngestManager, limits: Partial<UploadLimits> = {}) {
    this.#store = store;
    this.limits = { ...DEFAULT_UPLOAD_LIMITS, ...limits };
  }

  start(repository: string): UploadSession {
    const s = new UploadSession(this.#store, repository, this.limits, () => this.#sessions.delete(s.id));
    this.#sessions.set(s.id, s);
    // a failure is reported to the request that meets it
    s.result.catch(() => {});
    return s;
  }

  get(repository: string, id: string): UploadSession {
    const s = this.#sessions.get(id);
    if (!s || s.repository !== repository) {
      throw new RegistryError(404, "BLOB_UPLOAD_UNKNOWN", `upload ${id} unknown to this registry`, {
        detail: { uuid: id },
      });
    }
    return s;
  }

  /** Aborts every upload (the server is closing). */
  close(): void {
    for (const s of this.#sessions.values()) s.cancel(new Error("the registry server is closing"));
  }
}
