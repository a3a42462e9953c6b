/** Test fixtures: an in-memory content provider and helpers to build image trees. */
import { Readable } from "node:stream";
import type { Info, Provider } from "../../src/content/content.ts";
import type { Descriptor, Platform } from "../../src/descriptor.ts";
import { type Digest, digestOf } from "../../src/digest.ts";
import { NotFoundError } from "../../src/errors.ts";
import { MediaType } from "../../src/images/mediatypes.ts";

export class MemoryProvider implements Provider {
  readonly blobs = new Map<string, Buffer>();

  add(bytes: Buffer | string, mediaType: string, extra: Partial<Descriptor> = {}): Descriptor {
    const b = Buffer.from(bytes);
    const digest = digestOf(b);
    this.blobs.set(digest, b);
    return { mediaType, digest, size: b.length, ...extra };
  }

  addJson(value: unknown, mediaType: string, extra: Partial<Descriptor> = {}): Descriptor {
    return this.add(JSON.stringify(value), mediaType, extra);
  }

  async info(digest: Digest): Promise<Info> {
    const b = this.blobs.get(digest);
    if (!b) throw new NotFoundError(`content ${digest} not found`);
    const t = new Date();
    return { digest, size: b.length, createdAt: t, updatedAt: t, labels: {} };
  }

  async openRead(digest: Digest): Promise<Readable> {
    const b = this.blobs.get(digest);
    if (!b) throw new NotFoundError(`content ${digest} not found`);
    return Readable.from([b]);
  }

  async readAt(digest: Digest, buf: Uint8Array, position: number): Promise<number> {
    const b = this.blobs.get(digest);
    if (!b) throw new NotFoundError(`content ${digest} not found`);
    return b.copy(buf, 0, position);
  }
}

/** A single-platform OCI image: config + layers + manifest. */
export function addImage(
  p: MemoryProvider,
  platform: Platform,
  layers: string[],
  opts: { docker?: boolean } = {},
): { manifest: Descriptor; config: Descriptor; layers: Descriptor[] } {
  const config = p.addJson(
    {
      architecture: platform.architecture,
      os: platform.os,
      variant: platform.variant,
      rootfs: { type: "layers", diff_ids: [] },
    },
    opts.docker ? MediaType.DockerConfig : MediaType.OciConfig,
  );
  const ls = layers.map((l) => p.add(l, opts.docker ? MediaType.DockerLayerGzip : MediaType.OciLayerGzip));
  const mt = opts.docker ? MediaType.DockerManifest : MediaType.OciManifest;
  const manifest = p.addJson({ schemaVersion: 2, mediaType: mt, config, layers: ls }, mt);
  return { manifest, config, layers: ls };
}

export function addIndex(p: MemoryProvider, manifests: Descriptor[], opts: { docker?: boolean } = {}): Descriptor {
  const mt = opts.docker ? MediaType.DockerManifestList : MediaType.OciIndex;
  return p.addJson({ schemaVersion: 2, mediaType: mt, manifests }, mt);
}
