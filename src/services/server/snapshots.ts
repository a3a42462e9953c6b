/** containerd.services.snapshots.v1.Snapshots over dist's snapshotters. */
import type * as grpc from "@grpc/grpc-js";
import { InvalidArgumentError } from "../../errors.ts";
import type { RemoteUnpacker } from "../../unpack/remote.ts";
import { mountToWire, snapshotInfoToWire, type WireSnapshotInfo } from "../convert.ts";
import { adaptor, knownOnly, matchFilters, parseFilters } from "../filters.ts";
import type { Backend } from "./backend.ts";
import { prepareSnapshot } from "./remote-snapshots.ts";
import { type RpcHost, serverStream, unary } from "./rpc.ts";

const LIST_BATCH = 100;

interface KeyRequest {
  snapshotter: string;
  key: string;
}

interface CreateRequest extends KeyRequest {
  parent: string;
  labels: Record<string, string>;
}

function key(k: string, what = "key"): string {
  if (!k) throw new InvalidArgumentError(`snapshot ${what} must not be empty`);
  return k;
}

function labelsOpt(labels: Record<string, string> | undefined) {
  return labels && Object.keys(labels).length > 0 ? { labels } : undefined;
}

/**
 * The Snapshots service. With `remote`, a Prepare that names a layer of an image
 * (containerd's remote-snapshotter labels) may be answered by unpacking it from
 * the registry (remote-snapshots.ts).
 */
export function snapshotsService(
  base: RpcHost,
  backend: Backend,
  remote?: RemoteUnpacker,
): grpc.UntypedServiceImplementation {
  // a containerd proxy plugin sends no namespace: its calls go to the alias's own (snapshotter-names.ts)
  const host: RpcHost = {
    ...base,
    defaultNamespace: (req) => backend.proxyNamespace((req as { snapshotter?: string }).snapshotter ?? ""),
  };
  const sn = (ctx: { namespace: string; lease?: string }, name: string) =>
    backend.snapshotter(ctx.namespace, name, ctx.lease);
  const M = "snapshots.";
  const mutating = { mutating: true };
  return {
    Prepare: unary(
      host,
      `${M}Prepare`,
      async (req: CreateRequest, ctx) => {
        const snapshotter = await sn(ctx, req.snapshotter);
        const c = { backend, namespace: ctx.namespace, snapshotter, remote, log: ctx.log, signal: ctx.signal };
        const mounts = await prepareSnapshot(c, key(req.key), req.parent || undefined, req.labels);
        return { mounts: mounts.map(mountToWire) };
      },
      mutating,
    ),
    View: unary(
      host,
      `${M}View`,
      async (req: CreateRequest, ctx) => {
        const s = await sn(ctx, req.snapshotter);
        const mounts = await s.view(key(req.key), req.parent || undefined, labelsOpt(req.labels));
        return { mounts: mounts.map(mountToWire) };
      },
      mutating,
    ),
    Mounts: unary(host, `${M}Mounts`, async (req: KeyRequest, ctx) => {
      const mounts = await (await sn(ctx, req.snapshotter)).mounts(key(req.key));
      return { mounts: mounts.map(mountToWire) };
    }),
    Commit: unary(
      host,
      `${M}Commit`,
      async (req: KeyRequest & { name: string; labels: Record<string, string> }, ctx) => {
        const s = await sn(ctx, req.snapshotter);
        await s.commit(key(req.name, "name"), key(req.key), labelsOpt(req.labels));
        return {};
      },
      mutating,
    ),
    Remove: unary(host, `${M}Remove`, async (req: KeyRequest, ctx) => {
      await (await sn(ctx, req.snapshotter)).remove(key(req.key));
      backend.gc?.schedule();
      return {};
    }),
    Stat: unary(host, `${M}Stat`, async (req: KeyRequest, ctx) => {
      const info = await (await sn(ctx, req.snapshotter)).stat(key(req.key));
      return { info: snapshotInfoToWire(info) };
    }),
    Update: unary(
      host,
      `${M}Update`,
      async (
        req: { snapshotter: string; info: WireSnapshotInfo | null; update_mask: { paths: string[] } | null },
        ctx,
      ) => {
        if (!req.info) throw new InvalidArgumentError("update needs info");
        const paths = req.update_mask?.paths ?? [];
        const s = await sn(ctx, req.snapshotter);
        const info = await s.update(
          { name: key(req.info.name, "name"), labels: req.info.labels ?? {} },
          paths.length ? paths : undefined,
        );
        return { info: snapshotInfoToWire(info) };
      },
      mutating,
    ),
    List: serverStream(host, `${M}List`, async (req: { snapshotter: string; filters: string[] }, ctx, send) => {
      const filters = knownOnly(parseFilters(req.filters), ["name", "parent", "kind", "labels"], (m) =>
        ctx.log.warn(m),
      );
      const s = await sn(ctx, req.snapshotter);
      let batch: WireSnapshotInfo[] = [];
      await s.walk(async (info) => {
        const w = snapshotInfoToWire(info);
        const get = adaptor({ name: w.name, parent: w.parent, kind: w.kind.toLowerCase() }, w.labels);
        if (!matchFilters(filters, get)) return;
        batch.push(w);
        if (batch.length >= LIST_BATCH) {
          const b = batch;
          batch = [];
          await send({ info: b });
        }
      });
      if (batch.length > 0) await send({ info: batch });
    }),
    Usage: unary(host, `${M}Usage`, async (req: KeyRequest, ctx) => {
      const u = await (await sn(ctx, req.snapshotter)).usage(key(req.key));
      return { size: u.size, inodes: u.inodes };
    }),
    Cleanup: unary(host, `${M}Cleanup`, async (req: { snapshotter: string }, ctx) => {
      await sn(ctx, req.snapshotter);
      return {};
    }),
  };
}
