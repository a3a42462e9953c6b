/**
 * Fixtures of the export and import tests: small images written into a real
 * store under a temporary root, and tar archives built entry by entry (in any
 * order, hostile ones included) with the project's tar writer.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { END_OF_ARCHIVE, encodeHeader, type TarEntryType, TarWriter } from "../../src/archive/tar/index.ts";
import type { Store } from "../../src/content/content.ts";
import { writeBlob } from "../../src/content/helpers.ts";
import type { Descriptor, Platform } from "../../src/descriptor.ts";
import { digestOf } from "../../src/digest.ts";
import type { ImageStore } from "../../src/images/image.ts";
import { MediaType } from "../../src/images/mediatypes.ts";
import { namespacedContentStore, openSqliteImageStore } from "../../src/metadata/metadata.ts";

export const HOST: Platform = { os: "linux", architecture: process.arch === "x64" ? "amd64" : process.arch };
export const OTHER: Platform =
  HOST.architecture === "arm64" ? { os: "linux", architecture: "amd64" } : { os: "linux", architecture: "arm64" };

export interface Root {
  dir: string;
  content: Store;
  images: ImageStore;
}

export function newRoot(parent: string): Root {
  const dir = mkdtempSync(join(parent, "root-"));
  return { dir, content: namespacedContentStore(dir), images: openSqliteImageStore(dir, "default") };
}

export function tempDir(prefix = "dist-transfer-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A blob: its descriptor and bytes. */
export interface Blob {
  desc: Descriptor;
  bytes: Buffer;
}

export function blob(bytes: Buffer | string, mediaType: string, extra: Partial<Descriptor> = {}): Blob {
  const b = Buffer.from(bytes);
  return { desc: { mediaType, digest: digestOf(b), size: b.length, ...extra }, bytes: b };
}

/** An uncompressed layer holding one file (its digest is its diffID). */
export async function layerTar(name: string, content: string): Promise<Buffer> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on("data", (c: Buffer) => chunks.push(c));
  const tw = new TarWriter(out);
  const body = Buffer.from(content);
  await tw.add({ name, type: "file", mode: 0o644, size: body.length }, body);
  await tw.finish();
  return Buffer.concat(chunks);
}

export interface TestImage {
  manifest: Blob;
  config: Blob;
  layers: Blob[];
  /** Every blob, the manifest first. */
  blobs: Blob[];
}

/** A single-platform image of uncompressed layers (so Docker's format needs no compression either). */
export async function testImage(
  platform: Platform = HOST,
  files: string[] = ["hello"],
  opts: { docker?: boolean } = {},
): Promise<TestImage> {
  const layers: Blob[] = [];
  for (const [i, f] of files.entries()) {
    layers.push(blob(await layerTar(`file${i}`, f), opts.docker ? MediaType.DockerLayer : MediaType.OciLayer));
  }
  const config = blob(
    JSON.stringify({
      architecture: platform.architecture,
      os: platform.os,
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.desc.digest) },
    }),
    opts.docker ? MediaType.DockerConfig : MediaType.OciConfig,
  );
  const mt = opts.docker ? MediaType.DockerManifest : MediaType.OciManifest;
  const manifest = blob(
    JSON.stringify({ schemaVersion: 2, mediaType: mt, config: config.desc, layers: layers.map((l) => l.desc) }),
    mt,
  );
  return { manifest, config, layers, blobs: [manifest, config, ...layers] };
}

/** An index of the given manifests (each with its platform), and an attestation manifest when asked. */
export function testIndex(manifests: Array<{ image: TestImage; platform: Platform }>, attestation?: Blob): Blob {
  const entries: Descriptor[] = manifests.map((m) => ({ ...m.image.manifest.desc, platform: m.platform }));
  if (attestation) {
    entries.push({
      ...attestation.desc,
      platform: { os: "unknown", architecture: "unknown" },
      annotations: {
        "vnd.docker.reference.type": "attestation-manifest",
        "vnd.docker.reference.digest": entries[0].digest,
      },
    });
  }
  return blob(
    JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: entries }),
    MediaType.OciIndex,
  );
}

/** An attestation manifest (in-toto layer) as BuildKit writes them. */
export function attestationManifest(): { manifest: Blob; blobs: Blob[] } {
  const config = blob("{}", MediaType.OciConfig);
  const statement = blob('{"_type":"https://in-toto.io/Statement/v0.1"}', MediaType.InToto);
  const manifest = blob(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: config.desc,
      layers: [statement.desc],
    }),
    MediaType.OciManifest,
  );
  return { manifest, blobs: [manifest, config, statement] };
}

export async function storeBlobs(content: Store, blobs: Blob[]): Promise<void> {
  for (const b of blobs) {
    await writeBlob(content, `test-${b.desc.digest}`, Readable.from([b.bytes]), {
      size: b.desc.size,
      expected: b.desc.digest,
    });
  }
}

export interface TarItem {
  name: string;
  type?: TarEntryType;
  body?: Buffer | string;
  linkname?: string;
  /** Header size without a body to match (a hostile entry). */
  claimedSize?: number;
}

/** A tar archive of the items, in order. */
export async function tarOf(items: TarItem[]): Promise<Buffer> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on("data", (c: Buffer) => chunks.push(c));
  const tw = new TarWriter(out);
  for (const it of items) {
    const type = it.type ?? "file";
    if (it.claimedSize !== undefined) {
      // a header whose size the archive does not hold: written raw, then the archive ends
      out.write(encodeHeader({ name: it.name, type, mode: 0o644, size: it.claimedSize }));
      out.write(END_OF_ARCHIVE);
      out.end();
      await new Promise((r) => setImmediate(r));
      return Buffer.concat(chunks);
    }
    const body = it.body === undefined ? undefined : Buffer.from(it.body);
    await tw.add(
      { name: it.name, type, mode: type === "dir" ? 0o755 : 0o644, size: body?.length ?? 0, linkname: it.linkname },
      body,
    );
  }
  await tw.finish();
  return Buffer.concat(chunks);
}

/** The items of an OCI layout holding these blobs and index.json entries. */
export function layoutItems(blobs: Blob[], index: Descriptor[]): { layout: TarItem; index: TarItem; blobs: TarItem[] } {
  return {
    layout: { name: "oci-layout", body: JSON.stringify({ imageLayoutVersion: "1.0.0" }) },
    index: { name: "index.json", body: JSON.stringify({ schemaVersion: 2, manifests: index }) },
    blobs: blobs.map((b) => ({ name: `blobs/${b.desc.digest.replace(":", "/")}`, body: b.bytes })),
  };
}

/** A descriptor named the way ctr's exporter names it. */
export function named(desc: Descriptor, name: string, tag: string): Descriptor {
  return {
    ...desc,
    annotations: { "io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag },
  };
}

/** A readable of the bytes in small chunks, like a pipe. */
export function pipeOf(b: Buffer, chunk = 65536): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < b.length; i += chunk) parts.push(b.subarray(i, i + chunk));
  return Readable.from(parts);
}
