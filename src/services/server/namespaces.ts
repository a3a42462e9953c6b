/** containerd.services.namespaces.v1.Namespaces over the daemon's namespace table. */
import type * as grpc from "@grpc/grpc-js";
import { InvalidArgumentError } from "../../errors.ts";
import { adaptor, knownOnly, matchFilters, parseFilters } from "../filters.ts";
import type { Backend } from "./backend.ts";
import type { Namespace } from "./meta.ts";
import { type RpcHost, unary, validateNamespace } from "./rpc.ts";

function nsArg(n: Namespace | null): Namespace {
  if (!n?.name) throw new InvalidArgumentError("namespace name must not be empty");
  validateNamespace(n.name);
  return { name: n.name, labels: n.labels ?? {} };
}

export function namespacesService(host: RpcHost, backend: Backend): grpc.UntypedServiceImplementation {
  const meta = backend.meta;
  const M = "namespaces.";
  return {
    Get: unary(host, `${M}Get`, async (req: { name: string }) => ({
      namespace: meta.getNamespace(req.name),
    })),
    List: unary(host, `${M}List`, async (req: { filter: string }, ctx) => {
      const filters = knownOnly(parseFilters([req.filter ?? ""]), ["name", "labels"], (m) => ctx.log.warn(m));
      const namespaces = meta
        .listNamespaces()
        .filter((n) => matchFilters(filters, adaptor({ name: n.name }, n.labels)));
      return { namespaces };
    }),
    Create: unary(host, `${M}Create`, async (req: { namespace: Namespace | null }) => ({
      namespace: meta.createNamespace(nsArg(req.namespace)),
    })),
    Update: unary(
      host,
      `${M}Update`,
      async (req: { namespace: Namespace | null; update_mask: { paths: string[] } | null }) => ({
        namespace: meta.updateNamespace(nsArg(req.namespace), req.update_mask?.paths ?? []),
      }),
    ),
    Delete: unary(host, `${M}Delete`, async (req: { name: string }) => {
      if (!req.name) throw new InvalidArgumentError("namespace name must not be empty");
      const images = (await (await backend.images(req.name)).list()).length;
      meta.deleteNamespace(req.name, () => (images > 0 ? `${images} images` : undefined));
      return {};
    }),
  };
}
