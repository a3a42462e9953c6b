/**
 * Builds the gRPC server: every containerd-compatible service over one
 * Backend, with the shared call plumbing (rpc.ts). Binding, locking and
 * signals are the daemon's business (../daemon.ts).
 */
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { Provider } from "../../content/content.ts";
import type { Applier } from "../../diff/applier.ts";
import type { RemoteUnpacker } from "../../unpack/remote.ts";
import { serviceDefinition } from "../proto.ts";
import type { Backend } from "./backend.ts";
import { contentService } from "./content.ts";
import { diffService } from "./diff.ts";
import { eventsService } from "./events.ts";
import { imagesService } from "./images.ts";
import { introspectionService } from "./introspection.ts";
import { leasesService } from "./leases.ts";
import { namespacesService } from "./namespaces.ts";
import type { RpcHost } from "./rpc.ts";
import { snapshotsService } from "./snapshots.ts";
import { versionService } from "./version.ts";

/** Larger than any message ctr sends (1 MiB Write chunks, long lists). */
export const MAX_MESSAGE = 16 << 20;

export interface DaemonServer {
  server: grpc.Server;
  /** Aborts every in-flight call (their writers close, ingests stay resumable). */
  abortAll(reason: Error): void;
  /** Ends calls that only wait (event subscriptions). */
  abortIdle(reason: Error): void;
  inFlight(): number;
}

/**
 * containerd's Go clients read a blob with one Read call per ReadAt and cancel
 * each call once its bytes are in (an RST_STREAM per 32 KiB for `ctr content
 * get`). Node's HTTP/2 guards against rapid resets (1000 burst, 33/s) and
 * closes such a connection ("transport is closing"), which real containerd
 * never does. The socket is local (0600, or 0660 for one group), so the limit is raised to match.
 * grpc-js has no option for it: its http2 server options are set here before bind.
 */
function allowStreamResets(server: grpc.Server): void {
  const opts = (server as unknown as { commonServerOptions?: Record<string, unknown> }).commonServerOptions;
  if (!opts) throw new Error("grpc-js changed: Server.commonServerOptions is gone (see allowStreamResets)");
  opts.streamResetBurst = 1_000_000;
  opts.streamResetRate = 100_000;
}

export function createServer(opts: {
  backend: Backend;
  log: Logger;
  loadApplier: (content: Provider) => Promise<Applier>;
  /** Unpacks the layers containerd's remote-snapshotter labels name (none: containerd unpacks them itself). */
  remote?: RemoteUnpacker;
}): DaemonServer {
  const { backend, log } = opts;
  const calls = new Set<AbortController>();
  const idle = new Set<AbortController>();
  const host: RpcHost = {
    log,
    touchNamespace: (ns) => backend.namespaces.ensure(ns),
    track(ctrl, waits) {
      const set = waits ? idle : calls;
      set.add(ctrl);
      return () => set.delete(ctrl);
    },
  };
  const server = new grpc.Server({
    "grpc.max_receive_message_length": MAX_MESSAGE,
    "grpc.max_send_message_length": MAX_MESSAGE,
  });
  allowStreamResets(server);
  server.addService(serviceDefinition("content"), contentService(host, backend));
  server.addService(serviceDefinition("images"), imagesService(host, backend));
  server.addService(serviceDefinition("namespaces"), namespacesService(host, backend));
  server.addService(serviceDefinition("leases"), leasesService(host, backend));
  server.addService(serviceDefinition("snapshots"), snapshotsService(host, backend, opts.remote));
  server.addService(serviceDefinition("diff"), diffService(host, backend, opts.loadApplier));
  server.addService(serviceDefinition("version"), versionService(host));
  server.addService(serviceDefinition("introspection"), introspectionService(host, backend));
  server.addService(serviceDefinition("events"), eventsService(host));
  return {
    server,
    abortAll(reason) {
      for (const c of [...calls, ...idle]) c.abort(reason);
    },
    abortIdle(reason) {
      for (const c of idle) c.abort(reason);
    },
    inFlight: () => calls.size,
  };
}
