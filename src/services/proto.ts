/**
 * Loads our containerd-compatible .proto files (./protos) once per process and
 * exposes the service definitions to the server and the client adapters.
 * Options are the same on both sides: snake_case field names as on the wire,
 * int64 as numbers (sizes and offsets stay far below 2^53), enums as names.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { epochNsOf, PreciseDate } from "../time.ts";

/** The gRPC metadata key naming the namespace of a call (containerd's, read by the server, sent by the client). */
export const NAMESPACE_KEY = "containerd-namespace";

/** The gRPC metadata key naming the lease a call's writes go on (containerd's). */
export const LEASE_KEY = "containerd-lease";

export const PROTO_DIR = join(dirname(fileURLToPath(import.meta.url)), "protos");

export const PROTO_FILES = [
  "containerd/services/content/v1/content.proto",
  "containerd/services/images/v1/images.proto",
  "containerd/services/namespaces/v1/namespace.proto",
  "containerd/services/leases/v1/leases.proto",
  "containerd/services/snapshots/v1/snapshots.proto",
  "containerd/services/diff/v1/diff.proto",
  "containerd/services/version/v1/version.proto",
  "containerd/services/introspection/v1/introspection.proto",
  "containerd/services/events/v1/events.proto",
];

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

/** Fully qualified service names, as they appear in gRPC paths. */
export const SERVICES = {
  content: "containerd.services.content.v1.Content",
  images: "containerd.services.images.v1.Images",
  namespaces: "containerd.services.namespaces.v1.Namespaces",
  leases: "containerd.services.leases.v1.Leases",
  snapshots: "containerd.services.snapshots.v1.Snapshots",
  diff: "containerd.services.diff.v1.Diff",
  version: "containerd.services.version.v1.Version",
  introspection: "containerd.services.introspection.v1.Introspection",
  events: "containerd.services.events.v1.Events",
} as const;

export type ServiceKey = keyof typeof SERVICES;

let loaded: protoLoader.PackageDefinition | undefined;

export function packageDefinition(): protoLoader.PackageDefinition {
  loaded ??= protoLoader.loadSync(
    PROTO_FILES.map((f) => join(PROTO_DIR, f)),
    LOADER_OPTIONS,
  );
  return loaded;
}

/** The service definition (method table) of one service. */
export function serviceDefinition(key: ServiceKey): grpc.ServiceDefinition {
  const def = packageDefinition()[SERVICES[key]];
  if (!def || "format" in def) throw new Error(`proto: ${SERVICES[key]} is not a service`);
  return def as grpc.ServiceDefinition;
}

/** A client constructor for one service. */
export function clientConstructor(key: ServiceKey): grpc.ServiceClientConstructor {
  return grpc.makeGenericClientConstructor(serviceDefinition(key), SERVICES[key]);
}

/** google.protobuf.Timestamp on the wire. */
export interface Timestamp {
  seconds: number;
  nanos: number;
}

/** A Date as a protobuf Timestamp, to the nanosecond for a PreciseDate. */
export function toTimestamp(d: Date | undefined): Timestamp {
  const ns = d ? epochNsOf(d) : 0n;
  const seconds = ns >= 0n ? ns / 1_000_000_000n : -((-ns + 999_999_999n) / 1_000_000_000n);
  return { seconds: Number(seconds), nanos: Number(ns - seconds * 1_000_000_000n) };
}

export function fromTimestamp(t: Timestamp | null | undefined): PreciseDate {
  if (!t) return new PreciseDate(0n);
  return new PreciseDate(BigInt(t.seconds) * 1_000_000_000n + BigInt(t.nanos));
}
