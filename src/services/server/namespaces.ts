/** containerd.services.namespaces.v1.Namespaces over the root's namespace store. */
import type * as grpc from "@grpc/grpc-js";
import { InvalidArgumentError } from "../../errors.ts";
import type { Namespace } from "../../metadata/namespaces.ts";
import { adaptor, knownOnly, matchFilters, parseFilters } from "../filters.ts";
import type { Backend } from "./backend.ts";
import { type RpcHost, unary, validateNamespace } from "./rpc.ts";

function nsArg(n: Namespace | null): Namespace {
  if (!n?.name) throw new InvalidArgumentError("namespace name must not be empty");
  validateNamespace(n.name);
  return { name: n.name, labels: n.labels ?? {} };
}

export function namespacesService(host: RpcHost, backend: Backend): grpc.UntypedServiceImplementation {
  const namespaces = backend.namespaces;
  const M = "namespaces.";
  return {
    Get: unary(host, `${M}Get`, async (req: { name: string }) => ({
      namespace: namespaces.get(req.name),
    })),
    List: unary(host, `${M}List`, async (req: { filter: string }, ctx) => {
      const filters = knownOnly(parseFilters([req.filter ?? ""]), ["name", "labels"], (m) => ctx.log.warn(m));
      return {
        namespaces: namespaces.list().filter((n) => matchFilters(filters, adaptor({ name: n.name }, n.labels))),
      };
    }),
    Create: unary(host, `${M}Create`, async (req: { namespace: Namespace | null }) => ({
      namespace: namespaces.create(nsArg(req.namespace)),
    })),
    Update: unary(
      host,
      `${M}Update`,
      async (req: { namespace: Namespace | null; update_mask: { paths: string[] } | null }) => ({
        namespace: namespaces.update(nsArg(req.namespace), req.update_mask?.paths ?? []),
      }),
    ),
    Delete: unary(host, `${M}Delete`, async (req: { name: string }) => {
      if (!req.name) throw new InvalidArgumentError("namespace name must not be empty");
      namespaces.delete(req.name);
      return {};
    }),
  };
}
