/**
 * The small services ctr expects from any containerd: version, introspection
 * (our plugins and a stable server uuid) and events (accepted, never emitted).
 */
import type * as grpc from "@grpc/grpc-js";
import { version } from "../../cli/version.ts";
import { adaptor, knownOnly, matchFilters, parseFilters } from "../filters.ts";
import type { Backend } from "./backend.ts";
import { type RpcHost, unary } from "./rpc.ts";

export function versionService(host: RpcHost): grpc.UntypedServiceImplementation {
  const v = version();
  return {
    Version: unary(host, "version.Version", async () => ({ version: `dist ${v}`, revision: v })),
  };
}

interface Plugin {
  type: string;
  id: string;
  requires: string[];
  platforms: { os: string; architecture: string; variant: string }[];
  exports: Record<string, string>;
  capabilities: string[];
  init_err: null;
}

function hostPlatform() {
  const arch = (
    { x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", s390x: "s390x", ppc64: "ppc64le" } as Record<
      string,
      string
    >
  )[process.arch];
  return { os: process.platform, architecture: arch ?? process.arch, variant: "" };
}

export function plugins(backend: Backend): Plugin[] {
  const p = (type: string, id: string, extra: Partial<Plugin> = {}): Plugin => ({
    type,
    id,
    requires: [],
    platforms: [],
    exports: {},
    capabilities: [],
    init_err: null,
    ...extra,
  });
  const list: Plugin[] = [
    p("io.containerd.content.v1", "content", { exports: { root: `${backend.root}/content` } }),
    p("io.containerd.metadata.v1", "sqlite", {
      requires: ["io.containerd.content.v1", "io.containerd.snapshotter.v1"],
    }),
  ];
  for (const name of backend.snapshotters()) {
    list.push(p("io.containerd.snapshotter.v1", name, { platforms: [hostPlatform()] }));
  }
  list.push(p("io.containerd.differ.v1", "walking", { platforms: [hostPlatform()] }));
  list.push(p("io.containerd.lease.v1", "manager"));
  for (const s of [
    "content",
    "images",
    "namespaces",
    "leases",
    "snapshots",
    "diff",
    "version",
    "introspection",
    "events",
  ]) {
    list.push(p("io.containerd.grpc.v1", s));
  }
  return list;
}

export function introspectionService(host: RpcHost, backend: Backend, uuid: string): grpc.UntypedServiceImplementation {
  return {
    Plugins: unary(host, "introspection.Plugins", async (req: { filters: string[] }, ctx) => {
      const filters = knownOnly(parseFilters(req.filters), ["type", "id"], (m) => ctx.log.warn(m));
      return {
        plugins: plugins(backend).filter((pl) => matchFilters(filters, adaptor({ type: pl.type, id: pl.id }))),
      };
    }),
    Server: unary(host, "introspection.Server", async () => ({ uuid })),
  };
}

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
