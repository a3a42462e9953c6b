/** containerd.services.events.v1.Events, which ctr expects of any containerd: accepted, never emitted. */
import type * as grpc from "@grpc/grpc-js";
import { type RpcHost, unary } from "./rpc.ts";

export function eventsService(host: RpcHost): grpc.UntypedServiceImplementation {
  return {
    Publish: unary(host, "events.Publish", async () => ({})),
    Forward: unary(host, "events.Forward", async () => ({})),
    // Subscribers wait for events we never emit; the stream ends when they leave or we stop.
    Subscribe: (call: grpc.ServerWritableStream<unknown, unknown>) => {
      const ctrl = new AbortController();
      const untrack = host.track(ctrl, true);
      const end = () => {
        untrack();
        if (!call.cancelled) call.end();
      };
      call.on("cancelled", () => untrack());
      ctrl.signal.addEventListener("abort", end, { once: true });
    },
  };
}
