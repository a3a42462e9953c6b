/**
 * The content Store over a daemon's content service. Reads stream `Read`
 * (1 MiB messages); the Writer speaks the bidi `Write` protocol: STAT
 * negotiates the resume offset, every WRITE carries the offset it expects,
 * COMMIT verifies size and digest on the server. A busy ref (Unavailable) is
 * retried with randomised backoff, as containerd's clients do.
 */
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type * as grpc from "@grpc/grpc-js";
import type {
  CommitOptions,
  Info,
  ReadOptions,
  Status,
  Store,
  WalkFilter,
  Writer,
  WriterOptions,
} from "../../content/content.ts";
import type { Digest } from "../../digest.ts";
import { validateDigest } from "../../digest.ts";
import {
  DataLossError,
  FailedPreconditionError,
  InvalidArgumentError,
  isErrorCode,
  OutOfRangeError,
  UnavailableError,
} from "../../errors.ts";
import { preciseNow } from "../../time.ts";
import { infoFromWire, statusFromWire, type WireInfo, type WireStatus } from "../convert.ts";
import { fromGrpcError } from "../errors.ts";
import { fromTimestamp, type Timestamp } from "../proto.ts";
import { streamCall, streamOpen, unaryCall } from "./call.ts";
import type { Connection } from "./connection.ts";

const CHUNK = 1 << 20;
/** How long writer() keeps retrying a ref another client is writing. */
const BUSY_TIMEOUT = 60_000;

export function regexpEscape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

function quote(s: string): string {
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** containerd filter strings for a WalkFilter (prefixes OR'ed, labels AND'ed). */
export function walkFilters(f: WalkFilter = {}): string[] {
  const labels = (f.labels ?? []).map((l) => {
    const i = l.indexOf("=");
    return i < 0 ? `labels.${quote(l)}` : `labels.${quote(l.slice(0, i))}==${quote(l.slice(i + 1))}`;
  });
  const prefixes = f.digestPrefixes ?? [];
  if (prefixes.length === 0) return labels.length ? [labels.join(",")] : [];
  // a bare hex prefix matches after any algorithm, as the local store does
  const re = (p: string) => (p.includes(":") ? `^${regexpEscape(p)}` : `^[a-z0-9]+:${regexpEscape(p)}`);
  return prefixes.map((p) => [`digest~=${quote(re(p))}`, ...labels].join(","));
}

interface WriteResponse {
  action: string;
  started_at: Timestamp | null;
  updated_at: Timestamp | null;
  offset: number;
  total: number;
  digest: string;
}

/** One request, one response, in order, over a duplex call. */
class Exchange {
  readonly #call: grpc.ClientDuplexStream<unknown, WriteResponse>;
  readonly #waiting: { resolve: (r: WriteResponse) => void; reject: (e: unknown) => void }[] = [];
  #failure: unknown;
  #ended = false;
  readonly ended: Promise<void>;
  constructor(call: grpc.ClientDuplexStream<unknown, WriteResponse>, what: string) {
    this.#call = call;
    let endResolve!: () => void;
    this.ended = new Promise((r) => {
      endResolve = r;
    });
    call.on("data", (m: WriteResponse) => this.#waiting.shift()?.resolve(m));
    call.on("error", (err) => {
      this.#failure = fromGrpcError(err, what);
      for (const w of this.#waiting.splice(0)) w.reject(this.#failure);
      endResolve();
    });
    call.on("end", () => {
      this.#ended = true;
      for (const w of this.#waiting.splice(0))
        w.reject(new DataLossError(`${what}: the daemon ended the write stream`));
      endResolve();
    });
    call.on("status", () => endResolve());
  }
  send(req: Record<string, unknown>): Promise<WriteResponse> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#ended) return Promise.reject(new FailedPreconditionError("write stream already ended"));
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      this.#call.write(req);
    });
  }
  end(): void {
    this.#call.end();
  }
  cancel(): void {
    this.#call.cancel();
  }
}

class RemoteWriter implements Writer {
  readonly #ex: Exchange;
  readonly #ref: string;
  #offset: number;
  #total: number;
  readonly #expected?: Digest;
  #digest: string;
  readonly #startedAt: Date;
  #updatedAt: Date;
  #done = false;

  constructor(ex: Exchange, opts: WriterOptions, stat: WriteResponse) {
    this.#ex = ex;
    this.#ref = opts.ref;
    this.#offset = Number(stat.offset);
    this.#total = Number(stat.total) || opts.total || 0;
    this.#expected = opts.expected;
    this.#digest = stat.digest;
    this.#startedAt = fromTimestamp(stat.started_at);
    this.#updatedAt = fromTimestamp(stat.updated_at);
  }

  #check(): void {
    if (this.#done) throw new FailedPreconditionError(`writer for ${this.#ref} is closed`);
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.#check();
    for (let i = 0; i < chunk.length; i += CHUNK) {
      const part = chunk.subarray(i, Math.min(chunk.length, i + CHUNK));
      const res = await this.#ex.send({ action: "WRITE", offset: this.#offset, data: part });
      const want = this.#offset + part.length;
      if (Number(res.offset) !== want) {
        throw new DataLossError(`write to ${this.#ref}: the daemon is at ${res.offset}, expected ${want}`);
      }
      this.#offset = want;
      if (res.digest) this.#digest = res.digest;
      this.#updatedAt = preciseNow();
    }
  }

  status(): Status {
    return {
      ref: this.#ref,
      offset: this.#offset,
      total: this.#total,
      expected: this.#expected,
      startedAt: this.#startedAt,
      updatedAt: this.#updatedAt,
    };
  }

  digest(): Digest {
    return this.#digest as Digest;
  }

  async commit(size?: number, expected?: Digest, opts?: CommitOptions): Promise<void> {
    this.#check();
    const total = size ?? (this.#total || 0);
    const want = expected ?? this.#expected;
    try {
      const res = await this.#ex.send({
        action: "COMMIT",
        offset: this.#offset,
        total,
        expected: want ?? "",
        labels: opts?.labels ?? {},
      });
      if (total > 0 && Number(res.offset) !== total) {
        throw new DataLossError(`commit of ${this.#ref}: size ${res.offset}, expected ${total}`);
      }
      if (want && res.digest !== want) {
        throw new DataLossError(`commit of ${this.#ref}: digest ${res.digest}, expected ${want}`);
      }
      this.#digest = res.digest;
    } finally {
      await this.#finish();
    }
  }

  async #finish(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    this.#ex.end();
    await this.#ex.ended;
  }

  async close(): Promise<void> {
    await this.#finish();
  }

  async truncate(size: 0): Promise<void> {
    if (size !== 0) throw new InvalidArgumentError("truncate: only 0 is supported");
    this.#check();
    // the daemon restarts the ingest when the next write says offset 0
    this.#offset = 0;
  }
}

export class RemoteContentStore implements Store {
  readonly #conn: Connection;
  constructor(conn: Connection) {
    this.#conn = conn;
  }

  async info(digest: Digest): Promise<Info> {
    const res = await unaryCall<{ info: WireInfo }>(this.#conn, "content", "Info", { digest });
    return infoFromWire(res.info);
  }

  async openRead(digest: Digest, opts: ReadOptions = {}): Promise<Readable> {
    validateDigest(digest);
    await this.#conn.ready();
    const offset = opts.offset ?? 0;
    const info = await this.info(digest);
    if (offset > info.size) {
      throw new OutOfRangeError(`read of ${digest} at ${offset}: past its end (${info.size} bytes)`);
    }
    // size 0 means "to the end" on the wire, so an empty range never asks
    if (opts.length === 0) return Readable.from([]);
    const call = streamOpen(this.#conn, "content", "Read", { digest, offset, size: opts.length ?? 0 });
    const out = new Readable({
      highWaterMark: 4 * CHUNK,
      read() {
        call.resume();
      },
      destroy(err, cb) {
        call.cancel();
        cb(err);
      },
    });
    call.on("data", (m: { data: Buffer }) => {
      if (!out.push(m.data)) call.pause();
    });
    call.on("end", () => out.push(null));
    call.on("error", (err) => out.destroy(fromGrpcError(err, `read ${digest}`)));
    opts.signal?.addEventListener("abort", () => out.destroy(opts.signal?.reason as Error), { once: true });
    return out;
  }

  async readAt(digest: Digest, buf: Uint8Array, position: number): Promise<number> {
    let n = 0;
    try {
      await streamCall<{ offset: number; data: Buffer }>(
        this.#conn,
        "content",
        "Read",
        { digest, offset: position, size: buf.length },
        (m) => {
          const len = Math.min(m.data.length, buf.length - n);
          buf.set(m.data.subarray(0, len), n);
          n += len;
        },
      );
    } catch (err) {
      if (isErrorCode(err, "OutOfRange")) return 0;
      throw err;
    }
    return n;
  }

  async walk(fn: (info: Info) => void | Promise<void>, filter?: WalkFilter): Promise<void> {
    await streamCall<{ info: WireInfo[] }>(
      this.#conn,
      "content",
      "List",
      { filters: walkFilters(filter) },
      async (m) => {
        for (const i of m.info) await fn(infoFromWire(i));
      },
    );
  }

  async delete(digest: Digest): Promise<void> {
    await unaryCall(this.#conn, "content", "Delete", { digest });
  }

  async update(digest: Digest, labels: Record<string, string>, fieldpaths?: string[]): Promise<Info> {
    const res = await unaryCall<{ info: WireInfo }>(this.#conn, "content", "Update", {
      info: { digest, labels },
      update_mask: { paths: fieldpaths && fieldpaths.length > 0 ? fieldpaths : ["labels"] },
    });
    return infoFromWire(res.info);
  }

  async writer(opts: WriterOptions): Promise<Writer> {
    if (!opts.ref) throw new InvalidArgumentError("must specify a ref for the ingest");
    await this.#conn.ready();
    const deadline = Date.now() + BUSY_TIMEOUT;
    let delay = 16;
    for (;;) {
      opts.signal?.throwIfAborted();
      const client = this.#conn.client("content") as unknown as {
        Write(md: grpc.Metadata): grpc.ClientDuplexStream<unknown, WriteResponse>;
      };
      const call = client.Write(this.#conn.metadata());
      const ex = new Exchange(call, `write ${opts.ref}`);
      try {
        const stat = await ex.send({
          action: "STAT",
          ref: opts.ref,
          total: opts.total ?? 0,
          expected: opts.expected ?? "",
        });
        const w = new RemoteWriter(ex, opts, stat);
        opts.signal?.addEventListener("abort", () => ex.cancel(), { once: true });
        return w;
      } catch (err) {
        ex.cancel();
        if (!isErrorCode(err, "Unavailable") || Date.now() >= deadline) {
          if (isErrorCode(err, "Unavailable")) {
            throw new UnavailableError(`ref ${opts.ref} is still being written by another client`, { cause: err });
          }
          throw err;
        }
        await sleep(delay * (0.5 + Math.random() / 2), undefined, { signal: opts.signal });
        delay = Math.min(delay * 2, 2048);
      }
    }
  }

  async status(ref: string): Promise<Status> {
    const res = await unaryCall<{ status: WireStatus }>(this.#conn, "content", "Status", { ref });
    return statusFromWire(res.status);
  }

  async listStatuses(filter: { refPrefixes?: string[] } = {}): Promise<Status[]> {
    const filters = (filter.refPrefixes ?? []).map((p) => `ref~=${quote(`^${regexpEscape(p)}`)}`);
    const res = await unaryCall<{ statuses: WireStatus[] }>(this.#conn, "content", "ListStatuses", { filters });
    return res.statuses.map(statusFromWire);
  }

  async abort(ref: string): Promise<void> {
    await unaryCall(this.#conn, "content", "Abort", { ref });
  }
}
