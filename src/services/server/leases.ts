/** containerd.services.leases.v1.Leases over the leases of each namespace. */
import type * as grpc from "@grpc/grpc-js";
import { InvalidArgumentError } from "../../errors.ts";
import { leaseExpiry } from "../../gc/labels.ts";
import type { Lease, LeaseResource } from "../../metadata/leases.ts";
import { adaptor, knownOnly, matchFilters, parseFilters } from "../filters.ts";
import { toTimestamp } from "../proto.ts";
import type { Backend } from "./backend.ts";
import { type RpcHost, unary } from "./rpc.ts";

function leaseToWire(l: Lease) {
  return { id: l.id, created_at: toTimestamp(l.createdAt), labels: l.labels };
}

function resourceArg(r: LeaseResource | null): LeaseResource {
  if (!r) throw new InvalidArgumentError("request needs a resource");
  return { id: r.id, type: r.type };
}

export function leasesService(host: RpcHost, backend: Backend): grpc.UntypedServiceImplementation {
  const M = "leases.";
  const mutating = { mutating: true };
  return {
    Create: unary(
      host,
      `${M}Create`,
      async (req: { id: string; labels: Record<string, string> }, ctx) => {
        const lease = backend.leases(ctx.namespace).create(req.id, req.labels ?? {});
        // at its expiry, a collection takes what it alone held
        const expiry = leaseExpiry(lease.labels);
        if (expiry.kind === "at") backend.gc?.expireAt(expiry.at);
        return { lease: leaseToWire(lease) };
      },
      mutating,
    ),
    Delete: unary(host, `${M}Delete`, async (req: { id: string; sync: boolean }, ctx) => {
      backend.leases(ctx.namespace).delete(req.id);
      if (req.sync) await backend.gc?.collectNow();
      else backend.gc?.schedule();
      return {};
    }),
    List: unary(host, `${M}List`, async (req: { filters: string[] }, ctx) => {
      const filters = knownOnly(parseFilters(req.filters), ["id", "labels"], (m) => ctx.log.warn(m));
      const leases = backend
        .leases(ctx.namespace)
        .list()
        .filter((l) => matchFilters(filters, adaptor({ id: l.id }, l.labels)))
        .map(leaseToWire);
      return { leases };
    }),
    AddResource: unary(
      host,
      `${M}AddResource`,
      async (req: { id: string; resource: LeaseResource | null }, ctx) => {
        backend.leases(ctx.namespace).addResource(req.id, resourceArg(req.resource));
        return {};
      },
      mutating,
    ),
    DeleteResource: unary(
      host,
      `${M}DeleteResource`,
      async (req: { id: string; resource: LeaseResource | null }, ctx) => {
        backend.leases(ctx.namespace).deleteResource(req.id, resourceArg(req.resource));
        return {};
      },
    ),
    ListResources: unary(host, `${M}ListResources`, async (req: { id: string }, ctx) => ({
      resources: backend.leases(ctx.namespace).listResources(req.id),
    })),
  };
}
