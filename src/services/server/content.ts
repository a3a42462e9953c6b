/**
 * containerd.services.content.v1.Content over a content Store, with
 * containerd's Write protocol: the first message names the ref and takes the
 * writer (held for the life of the stream); every message is answered with the
 * current offset; a non-zero offset must equal it (OutOfRange otherwise); an
 * offset of 0 on a non-empty ingest restarts it; COMMIT verifies and commits.
 * A stream that ends or breaks without COMMIT leaves the ingest resumable.
 */
import type * as grpc from "@grpc/grpc-js";
import type { Writer } from "../../content/content.ts";
import { type Digest, validateDigest } from "../../digest.ts";
import { AlreadyExistsError, InvalidArgumentError, NotFoundError, OutOfRangeError } from "../../errors.ts";
import { infoToWire, statusToWire, type WireInfo } from "../convert.ts";
import { adaptor, knownOnly, matchFilters, parseFilters } from "../filters.ts";
import { toTimestamp } from "../proto.ts";
import type { Backend } from "./backend.ts";
import { bidi, messageReader, type RpcHost, serverStream, unary } from "./rpc.ts";

const READ_CHUNK = 1 << 20;
const LIST_BATCH = 100;

interface WriteRequest {
  action: "STAT" | "WRITE" | "COMMIT";
  ref: string;
  total: number;
  expected: string;
  offset: number;
  data: Buffer;
  labels: Record<string, string>;
}

function digestArg(s: string): Digest {
  if (!s) throw new InvalidArgumentError("digest must not be empty");
  return validateDigest(s);
}

function size(n: number, what: string): number {
  const v = Number(n);
  if (!Number.isSafeInteger(v)) throw new InvalidArgumentError(`${what} ${n} is not a valid integer`);
  return v;
}

export function contentService(host: RpcHost, backend: Backend): grpc.UntypedServiceImplementation {
  const store = (ctx: { namespace: string; lease?: string }) => backend.content(ctx.namespace, ctx.lease);
  const M = "content.";
  return {
    Info: unary(host, `${M}Info`, async (req: { digest: string }, ctx) => {
      const info = await (await store(ctx)).info(digestArg(req.digest));
      return { info: infoToWire(info) };
    }),

    Update: unary(
      host,
      `${M}Update`,
      async (req: { info: WireInfo | null; update_mask: { paths: string[] } | null }, ctx) => {
        if (!req.info) throw new InvalidArgumentError("update needs info");
        const digest = digestArg(req.info.digest);
        const paths = req.update_mask?.paths ?? [];
        for (const p of paths) {
          if (p !== "labels" && !p.startsWith("labels.")) {
            throw new InvalidArgumentError(`cannot update "${p}" of content ${digest}: only labels can change`);
          }
        }
        const s = await store(ctx);
        const info = await s.update(digest, req.info.labels ?? {}, paths.length ? paths : undefined);
        return { info: infoToWire(info) };
      },
      { mutating: true },
    ),

    List: serverStream(host, `${M}List`, async (req: { filters: string[] }, ctx, send) => {
      const filters = knownOnly(parseFilters(req.filters), ["digest", "size", "labels"], (m) => ctx.log.warn(m));
      let batch: WireInfo[] = [];
      await (await store(ctx)).walk(async (info) => {
        const get = adaptor({ digest: info.digest, size: String(info.size) }, info.labels);
        if (!matchFilters(filters, get)) return;
        batch.push(infoToWire(info));
        if (batch.length >= LIST_BATCH) {
          const b = batch;
          batch = [];
          await send({ info: b });
        }
      });
      if (batch.length > 0) await send({ info: batch });
    }),

    Delete: unary(
      host,
      `${M}Delete`,
      async (req: { digest: string }, ctx) => {
        await (await store(ctx)).delete(digestArg(req.digest));
        backend.gc?.schedule();
        return {};
      },
      { mutating: true },
    ),

    Read: serverStream(host, `${M}Read`, async (req: { digest: string; offset: number; size: number }, ctx, send) => {
      const digest = digestArg(req.digest);
      const s = await store(ctx);
      const info = await s.info(digest);
      let offset = Math.max(0, size(req.offset, "offset"));
      if (offset > info.size) throw new OutOfRangeError(`read past object length ${info.size} bytes`);
      let want = size(req.size, "size");
      if (want <= 0 || offset + want > info.size) want = info.size - offset;
      const end = offset + want;
      while (offset < end) {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, end - offset));
        const n = await s.readAt(digest, buf, offset);
        if (n <= 0) throw new OutOfRangeError(`content ${digest} ended at ${offset}, before ${end}`);
        await send({ offset, data: n === buf.length ? buf : buf.subarray(0, n) });
        offset += n;
      }
    }),

    Status: unary(host, `${M}Status`, async (req: { ref: string }, ctx) => {
      if (!req.ref) throw new InvalidArgumentError("status needs a ref");
      const st = await (await store(ctx)).status(req.ref);
      return { status: statusToWire(st) };
    }),

    ListStatuses: unary(host, `${M}ListStatuses`, async (req: { filters: string[] }, ctx) => {
      const filters = knownOnly(parseFilters(req.filters), ["ref", "expected"], (m) => ctx.log.warn(m));
      const all = await (await store(ctx)).listStatuses();
      const statuses = all
        .filter((s) => matchFilters(filters, adaptor({ ref: s.ref, expected: s.expected })))
        .map(statusToWire);
      return { statuses };
    }),

    Abort: unary(
      host,
      `${M}Abort`,
      async (req: { ref: string }, ctx) => {
        if (!req.ref) throw new InvalidArgumentError("abort needs a ref");
        await (await store(ctx)).abort(req.ref);
        return {};
      },
      { mutating: true },
    ),

    Write: bidi(
      host,
      `${M}Write`,
      async (call: grpc.ServerDuplexStream<WriteRequest, unknown>, ctx) => {
        const next = messageReader(call, ctx.signal);
        const send = (m: unknown) =>
          new Promise<void>((resolve, reject) => {
            if (call.cancelled) reject(new Error("client cancelled the write"));
            else if (call.write(m)) resolve();
            else call.once("drain", () => resolve());
          });
        let req = await next();
        if (!req) return;
        const ref = req.ref;
        if (!ref) throw new InvalidArgumentError("first message must have a reference");
        let total = size(req.total, "total");
        let expected = req.expected ? validateDigest(req.expected) : undefined;
        const s = await store(ctx);
        const wr: Writer = await s.writer({
          ref,
          total: total > 0 ? total : undefined,
          expected,
          signal: ctx.signal,
        });
        ctx.log.debug({ ref, total, expected }, "write started");
        let committed = false;
        try {
          while (req) {
            const ws = wr.status();
            let offset = ws.offset;
            const res: Record<string, unknown> = { action: req.action, offset };
            if (req.expected) {
              expected = validateDigest(req.expected);
              const exists = await s.info(expected).then(
                () => true,
                (err: unknown) => {
                  if (err instanceof NotFoundError) return false;
                  throw err;
                },
              );
              if (exists) {
                await wr.close();
                committed = true; // nothing more to release
                await s.abort(ref).catch(() => undefined);
                throw new AlreadyExistsError(`blob with expected digest ${expected} exists`);
              }
            }
            const reqTotal = size(req.total, "total");
            if (reqTotal > 0) total = reqTotal;
            switch (req.action) {
              case "STAT":
                res.digest = wr.digest();
                res.started_at = toTimestamp(ws.startedAt);
                res.updated_at = toTimestamp(ws.updatedAt);
                res.total = total;
                break;
              case "WRITE":
              case "COMMIT": {
                const reqOffset = size(req.offset, "offset");
                if (reqOffset > 0 && reqOffset !== offset) {
                  throw new OutOfRangeError(`write @${reqOffset} must occur at current offset ${offset}`);
                }
                if (reqOffset === 0 && offset > 0) {
                  await wr.truncate(0);
                  offset = 0;
                }
                if (req.data && req.data.length > 0) {
                  await wr.write(req.data);
                  offset += req.data.length;
                }
                res.offset = offset;
                if (req.action === "COMMIT") {
                  const labels = req.labels && Object.keys(req.labels).length > 0 ? req.labels : undefined;
                  await wr.commit(total > 0 ? total : undefined, expected, labels ? { labels } : undefined);
                  committed = true;
                }
                res.digest = wr.digest();
                break;
              }
              default:
                throw new InvalidArgumentError(`unknown write action ${String(req.action)}`);
            }
            await send(res);
            req = await next();
          }
        } finally {
          if (!committed) await wr.close().catch((err: unknown) => ctx.log.warn({ err: String(err) }, "close"));
        }
      },
      { mutating: true },
    ),
  };
}
