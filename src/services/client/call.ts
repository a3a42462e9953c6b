/** Promise wrappers over grpc-js client calls, with status → typed error mapping. */
import type * as grpc from "@grpc/grpc-js";
import { fromGrpcError } from "../errors.ts";
import type { Connection } from "./connection.ts";

type UnaryMethod = (
  req: unknown,
  md: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, res: unknown) => void,
) => grpc.ClientUnaryCall;

export async function unaryCall<Res>(
  conn: Connection,
  service: Parameters<Connection["client"]>[0],
  method: string,
  req: unknown,
  opts: { signal?: AbortSignal; what?: string } = {},
): Promise<Res> {
  await conn.ready();
  const client = conn.client(service) as unknown as Record<string, UnaryMethod>;
  return new Promise<Res>((resolve, reject) => {
    const call = client[method].call(client, req, conn.metadata(), {}, (err, res) => {
      opts.signal?.removeEventListener("abort", onAbort);
      if (err) reject(fromGrpcError(err, opts.what));
      else resolve(res as Res);
    });
    const onAbort = () => call.cancel();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
  });
}

type StreamMethod = (req: unknown, md: grpc.Metadata, opts?: grpc.CallOptions) => grpc.ClientReadableStream<unknown>;

/** A server-streaming call; each message is handed to `onMessage` in order. */
export async function streamCall<Msg>(
  conn: Connection,
  service: Parameters<Connection["client"]>[0],
  method: string,
  req: unknown,
  onMessage: (m: Msg) => void | Promise<void>,
  opts: { signal?: AbortSignal; what?: string } = {},
): Promise<void> {
  await conn.ready();
  const client = conn.client(service) as unknown as Record<string, StreamMethod>;
  const call = client[method].call(client, req, conn.metadata());
  const onAbort = () => call.cancel();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for await (const m of call) await onMessage(m as Msg);
  } catch (err) {
    throw fromGrpcError(err, opts.what);
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
  }
}

export function streamOpen(
  conn: Connection,
  service: Parameters<Connection["client"]>[0],
  method: string,
  req: unknown,
): grpc.ClientReadableStream<unknown> {
  const client = conn.client(service) as unknown as Record<string, StreamMethod>;
  return client[method].call(client, req, conn.metadata());
}
