/**
 * containerd.services.diff.v1.Diff: Apply reads a layer blob from the content
 * store and applies it to the directory the mounts describe, without
 * mounting: a bind mount's source directly, an overlay's upperdir with overlay
 * whiteouts (lowerdirs for hardlink copy-up). The result is the diff
 * descriptor (uncompressed tar, digest = diffID). Targets must lie under the
 * daemon's root, so a client cannot make the daemon write anywhere else.
 * Diff (creating layers) is not offered.
 */
import { realpath } from "node:fs/promises";
import { relative, resolve } from "node:path";
import type * as grpc from "@grpc/grpc-js";
import { isLayerMediaType } from "../../archive/compression.ts";
import { validateDigest } from "../../digest.ts";
import { InvalidArgumentError, PermissionDeniedError, UnimplementedError } from "../../errors.ts";
import { type ApplyFn, applyTarget } from "../../unpack/target.ts";
import { descriptorFromWire, mountFromWire, type WireDescriptor, type WireMount } from "../convert.ts";
import type { Backend } from "./backend.ts";
import { type RpcHost, unary } from "./rpc.ts";

const UNCOMPRESSED_LAYER = "application/vnd.oci.image.layer.v1.tar";

async function inside(root: string, dir: string): Promise<string> {
  const real = await realpath(resolve(dir));
  const base = await realpath(root);
  const rel = relative(base, real);
  if (rel === "" || rel.startsWith("..") || resolve(base, rel) !== real) {
    throw new PermissionDeniedError(`apply target ${dir} is outside the daemon root ${root}`);
  }
  return real;
}

export function diffService(
  host: RpcHost,
  backend: Backend,
  loadApply: () => Promise<ApplyFn>,
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
        const target = applyTarget((req.mounts ?? []).map(mountFromWire));
        const dir = await inside(backend.root, target.dir);
        const store = await backend.content(ctx.namespace);
        const info = await store.info(desc.digest);
        if (desc.size > 0 && info.size !== desc.size) {
          throw new InvalidArgumentError(
            `apply: ${desc.digest} is ${info.size} bytes, the descriptor says ${desc.size}`,
          );
        }
        const apply = await loadApply();
        // the applier detects and undoes the compression itself
        const blob = await store.openRead(desc.digest, { signal: ctx.signal });
        const started = Date.now();
        const res = await apply(dir, blob, {
          signal: ctx.signal,
          convertWhiteout: target.overlay ? "overlay" : undefined,
          lowerDirs: target.lowerDirs,
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
