/**
 * containerd.services.introspection.v1.Introspection: the plugins this daemon
 * stands for (what ctr plugins ls lists) and a stable server uuid.
 */
import { randomUUID } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type * as grpc from "@grpc/grpc-js";
import { isErrorCode } from "../../errors.ts";
import { adaptor, knownOnly, matchFilters, parseFilters } from "../filters.ts";
import type { Backend } from "./backend.ts";
import { type RpcHost, unary } from "./rpc.ts";

/** A stable identity for introspection.Server, kept in the root. */
export function serverUUID(root: string): string {
  const path = join(root, "daemon.uuid");
  try {
    const v = readFileSync(path, "utf8").trim();
    if (/^[0-9a-f-]{36}$/.test(v)) return v;
  } catch (err) {
    if (!isErrorCode(err, "NotFound") && (err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const v = randomUUID();
  writeFileSync(path, `${v}\n`, { mode: 0o600 });
  return v;
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

export function introspectionService(host: RpcHost, backend: Backend): grpc.UntypedServiceImplementation {
  const uuid = serverUUID(backend.root);
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
