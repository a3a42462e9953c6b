/**
 * containerd.services.diff.v1.Diff: Apply hands a layer blob of the namespace's
 * content store and the mounts to the Applier (src/diff), which applies it to
 * the directory they describe without mounting. The result is the diff
 * descriptor (uncompressed tar, digest = diffID). Targets must lie under the
 * daemon's root, so a client cannot make the daemon write anywhere else.
 * Diff (creating layers) is not offered.
 */
import { realpath } from "node:fs/promises";
import { relative, resolve } from "node:path";
import type * as grpc from "@grpc/grpc-js";
import { isLayerMediaType } from "../../archive/compression.ts";
import type { Provider } from "../../content/content.ts";
import type { Applier } from "../../diff/applier.ts";
import { applyTarget } from "../../diff/mounts.ts";
import { validateDigest } from "../../digest.ts";
import { InvalidArgumentError, PermissionDeniedError, UnimplementedError } from "../../errors.ts";
import { descriptorFromWire, mountFromWire, type WireDescriptor, type WireMount } from "../convert.ts";
import type { Backend } from "./backend.ts";
import { type RpcHost, unary } from "./rpc.ts";

const UNCOMPRESSED_LAYER = "application/vnd.oci.image.layer.v1.tar";

async function inside(root: string, dir: string): Promise<void> {
  const real = await realpath(resolve(dir));
  const base = await realpath(root);
  const rel = relative(base, real);
  if (rel === "" || rel.startsWith("..") || resolve(base, rel) !== real) {
    throw new PermissionDeniedError(`apply target ${dir} is outside the daemon root ${root}`);
  }
}

export function diffService(
  host: RpcHost,
  backend: Backend,
  /** The Applier over a store (loaded when first needed: the daemon starts without the layer code). */
  loadApplier: (content: Provider) => Promise<Applier>,
): grpc.UntypedServiceImplementation {
  return {
    Apply: unary(
      host,
      "diff.Apply",
      async (req: { diff: WireDescriptor | null; mounts: WireMount[] }, ctx) => {
        if (!req.diff) throw new InvalidArgumentError("apply needs a layer descriptor");
        const desc = descriptorFromWire(req.diff);
        validateDigest(desc.digest);
        if (!isLayerMediaType(desc.mediaType)) {
          throw new InvalidArgumentError(`apply: ${desc.digest} has media type "${desc.mediaType}", not a layer`);
        }
        const mounts = (req.mounts ?? []).map(mountFromWire);
        await inside(backend.root, applyTarget(mounts).dir);
        const applier = await loadApplier(await backend.content(ctx.namespace, ctx.lease));
        const started = Date.now();
        // the applier detects and undoes the compression itself
        const res = await applier.apply(desc, mounts, {
          signal: ctx.signal,
          onWarning: (m) => ctx.log.warn({ layer: desc.digest }, m),
        });
        ctx.log.info({ layer: desc.digest, diffID: res.diffID, ms: Date.now() - started }, "applied");
        return { applied: { media_type: UNCOMPRESSED_LAYER, digest: res.diffID, size: res.size, annotations: {} } };
      },
      { mutating: true },
    ),
    Diff: unary(host, "diff.Diff", async () => {
      throw new UnimplementedError("diff: creating layers from snapshots is not supported by dist daemon");
    }),
  };
}
