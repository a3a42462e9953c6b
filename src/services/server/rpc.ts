/**
 * The plumbing every handler shares: the namespace from the
 * `containerd-namespace` metadata (required, as containerd requires it, except
 * by the services that span namespaces) and the lease from `containerd-lease`,
 * a request id, one structured log line per call (method, namespace, duration,
 * code; never payloads), error → status mapping, and an AbortSignal that fires
 * when the client goes away or the daemon shuts down.
 */
import type { EventEmitter } from "node:events";
import type * as grpc from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { FailedPreconditionError } from "../../errors.ts";
import { validateNamespace } from "../../metadata/namespaces.ts";
import { grpcCodeName, toGrpcStatus } from "../errors.ts";
import { LEASE_KEY, NAMESPACE_KEY } from "../proto.ts";

export { validateNamespace };

export interface CallContext {
  id: string;
  /** The call's namespace ("" for the services that span namespaces, when none was sent). */
  namespace: string;
  /** The lease the call's writes go on, if it names one. */
  lease?: string;
  log: Logger;
  signal: AbortSignal;
}

/** Services whose calls need no namespace (containerd's do not read one either). */
const GLOBAL = ["namespaces.", "version.", "introspection.", "events."];

/**
 * The first value of a metadata key. A client that re-namespaces a context
 * sends the header again, newest first, and Node's HTTP/2 joins repeated
 * headers with ", ": containerd takes the first (newest) value.
 */
export function firstValue(metadata: grpc.Metadata, key: string): string | undefined {
  const raw = metadata.get(key)[0];
  if (raw === undefined) return undefined;
  const value = String(raw).split(",")[0].trim();
  return value === "" ? undefined : value;
}

export interface RpcHost {
  log: Logger;
  /** Records a namespace as used (mutating calls create it, as containerd does). */
  touchNamespace(ns: string): void;
  /** Registers an in-flight call (idle: one that only waits, like Subscribe); returns its unregister function. */
  track(ctrl: AbortController, idle?: boolean): () => void;
  /**
   * The namespace of a call that sends none, from its request (a containerd
   * proxy plugin's snapshots calls: see ../snapshotter-names.ts); without it,
   * or when it returns undefined, such a call is refused.
   */
  defaultNamespace?: (request: unknown) => string | undefined;
}

let counter = 0;
function requestId(): string {
  counter = (counter + 1) % 0x100000000;
  return `${process.pid.toString(36)}-${Date.now().toString(36)}-${counter.toString(36)}`;
}

export interface Options {
  /** Mutating calls create the namespace on first use. */
  mutating?: boolean;
}

function begin(
  host: RpcHost,
  method: string,
  call: { metadata: grpc.Metadata } & Pick<EventEmitter, "on" | "off">,
  opts: Options,
): { ctx: CallContext; done: (err?: unknown) => { code: number; details: string } | undefined } {
  const id = requestId();
  const ns =
    firstValue(call.metadata, NAMESPACE_KEY) ?? host.defaultNamespace?.((call as { request?: unknown }).request) ?? "";
  const lease = firstValue(call.metadata, LEASE_KEY);
  const global = GLOBAL.some((p) => method.startsWith(p));
  const ctrl = new AbortController();
  const untrack = host.track(ctrl);
  let cancelled = false;
  const onCancel = () => {
    cancelled = true;
    ctrl.abort(new Error("client cancelled the call"));
  };
  call.on("cancelled", onCancel);
  const log = host.log.child({ req: id, method, ns });
  const started = process.hrtime.bigint();
  const ctx: CallContext = { id, namespace: ns, lease, log, signal: ctrl.signal };
  let finished = false;
  const done = (err?: unknown) => {
    if (finished) return undefined;
    finished = true;
    untrack();
    call.off("cancelled", onCancel);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const st =
      err === undefined
        ? { code: status.OK, details: "" }
        : cancelled
          ? { code: status.CANCELLED, details: "cancelled by the client" }
          : toGrpcStatus(err);
    const fields = { ms: Math.round(ms * 10) / 10, code: grpcCodeName(st.code) };
    if (st.code === status.OK) log.info(fields, "call");
    else if (st.code === status.UNKNOWN || st.code === status.INTERNAL)
      log.error({ ...fields, err: st.details }, "call");
    else log.info({ ...fields, err: st.details }, "call");
    return st;
  };
  try {
    if (ns === "" && !global) throw new FailedPreconditionError("namespace is required: send containerd-namespace");
    if (ns !== "") validateNamespace(ns);
    if (opts.mutating && !global) host.touchNamespace(ns);
  } catch (err) {
    done(err);
    throw err;
  }
  return { ctx, done };
}

export type UnaryFn<Req, Res> = (req: Req, ctx: CallContext) => Promise<Res>;

export function unary<Req, Res>(
  host: RpcHost,
  method: string,
  fn: UnaryFn<Req, Res>,
  opts: Options = {},
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    let started: ReturnType<typeof begin>;
    try {
      started = begin(host, method, call, opts);
    } catch (err) {
      const st = toGrpcStatus(err);
      callback({ code: st.code, details: st.details });
      return;
    }
    const { ctx, done } = started;
    fn(call.request, ctx).then(
      (res) => {
        done();
        callback(null, res);
      },
      (err: unknown) => {
        const st = done(err)!;
        callback({ code: st.code, details: st.details });
      },
    );
  };
}

export type StreamFn<Req, Res> = (req: Req, ctx: CallContext, send: (res: Res) => Promise<void>) => Promise<void>;

/** Resolves once the message is handed to the transport (respecting backpressure). */
export function sender<Res>(call: grpc.ServerWritableStream<unknown, Res> | grpc.ServerDuplexStream<unknown, Res>) {
  return (res: Res): Promise<void> =>
    new Promise((resolve, reject) => {
      if (call.cancelled) {
        reject(new Error("client cancelled the call"));
        return;
      }
      const ok = call.write(res);
      if (ok) resolve();
      else call.once("drain", () => resolve());
    });
}

/** The calls a streaming handler answers on: it ends them, or emits the status of the failure. */
type StreamingCall = Pick<EventEmitter, "on" | "off" | "emit"> & {
  metadata: grpc.Metadata;
  cancelled: boolean;
  end(): void;
};

function runStreaming(
  host: RpcHost,
  method: string,
  call: StreamingCall,
  opts: Options,
  run: (ctx: CallContext) => Promise<void>,
): void {
  let started: ReturnType<typeof begin>;
  try {
    started = begin(host, method, call, opts);
  } catch (err) {
    const st = toGrpcStatus(err);
    call.emit("error", { code: st.code, details: st.details });
    return;
  }
  const { ctx, done } = started;
  run(ctx).then(
    () => {
      done();
      call.end();
    },
    (err: unknown) => {
      const st = done(err)!;
      if (!call.cancelled) call.emit("error", { code: st.code, details: st.details });
    },
  );
}

export function serverStream<Req, Res>(
  host: RpcHost,
  method: string,
  fn: StreamFn<Req, Res>,
  opts: Options = {},
): grpc.handleServerStreamingCall<Req, Res> {
  return (call) => runStreaming(host, method, call, opts, (ctx) => fn(call.request, ctx, sender(call)));
}

export type BidiFn<Req, Res> = (call: grpc.ServerDuplexStream<Req, Res>, ctx: CallContext) => Promise<void>;

export function bidi<Req, Res>(
  host: RpcHost,
  method: string,
  fn: BidiFn<Req, Res>,
  opts: Options = {},
): grpc.handleBidiStreamingCall<Req, Res> {
  return (call) => runStreaming(host, method, call, opts, (ctx) => fn(call, ctx));
}

/** Reads the next message of a duplex call; undefined at the client's end of stream. */
export function messageReader<Req>(call: grpc.ServerDuplexStream<Req, unknown>, signal: AbortSignal) {
  const queue: Req[] = [];
  let ended = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  call.on("data", (m: Req) => {
    queue.push(m);
    // hold further messages until the handler catches up (flat memory)
    if (queue.length >= 4) call.pause();
    notify();
  });
  call.on("end", () => {
    ended = true;
    notify();
  });
  call.on("error", (err: unknown) => {
    failure = err;
    notify();
  });
  const onAbort = () => {
    failure ??= signal.reason ?? new Error("aborted");
    notify();
  };
  signal.addEventListener("abort", onAbort, { once: true });
  return async (): Promise<Req | undefined> => {
    for (;;) {
      if (queue.length > 0) {
        const m = queue.shift()!;
        if (queue.length < 2) call.resume();
        return m;
      }
      if (failure !== undefined) throw failure;
      if (ended) return undefined;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  };
}
