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
import type { Readable } from "node:stream";
import type * as grpc from "@grpc/grpc-js";
import { isLayerMediaType } from "../../archive/compression.ts";
import type { Digest } from "../../digest.ts";
import { validateDigest } from "../../digest.ts";
import { InvalidArgumentError, PermissionDeniedError, UnimplementedError } from "../../errors.ts";
import type { Mount } from "../../snapshots/snapshotter.ts";
import { descriptorFromWire, mountFromWire, type WireDescriptor, type WireMount } from "../convert.ts";
import type { Backend } from "./backend.ts";
import { type RpcHost, unary } from "./rpc.ts";

export interface ApplyOptions {
  signal?: AbortSignal;
  convertWhiteout?: "overlay";
  lowerDirs?: string[];
  onWarning?: (message: string) => void;
}
export type ApplyFn = (root: string, stream: Readable, opts: ApplyOptions) => Promise<{ diffID: Digest; size: number }>;

const UNCOMPRESSED_LAYER = "application/vnd.oci.image.layer.v1.tar";

export interface ApplyTarget {
  dir: string;
  overlay: boolean;
  lowerDirs: string[];
}

function option(m: Mount, name: string): string | undefined {
  const o = m.options.find((x) => x.startsWith(`${name}=`));
  return o?.slice(name.length + 1);
}

/** Where a layer goes for these mounts. */
export function applyTarget(mounts: Mount[]): ApplyTarget {
  if (mounts.length !== 1) {
    throw new InvalidArgumentError(`apply needs exactly one mount, got ${mounts.length}`);
  }
  const m = mounts[0];
  if (m.type === "bind" || m.type === "rbind") {
    if (m.options.includes("ro")) throw new InvalidArgumentError(`apply target ${m.source} is mounted read-only`);
    return { dir: m.source, overlay: false, lowerDirs: [] };
  }
  if (m.type === "overlay") {
    const upper = option(m, "upperdir");
    if (!upper) throw new InvalidArgumentError("apply to an overlay needs an upperdir (a read-only view was given)");
    const lower = option(m, "lowerdir");
    return { dir: upper, overlay: true, lowerDirs: lower ? lower.split(":") : [] };
  }
  throw new UnimplementedError(`apply to a mount of type "${m.type}" is not supported (bind or overlay only)`);
}

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
