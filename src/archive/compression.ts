/**
 * Layer compression: detection from magic bytes (gzip, zstd including skippable
 * frames, none), the OCI and Docker layer media types, and node:zlib streams with
 * 1 MiB chunks (measured: 330 MB/s gunzip against 50 MB/s at the default size).
 */
import { PassThrough, pipeline, type Readable, Transform } from "node:stream";
import * as zlib from "node:zlib";
import { DistError, InvalidArgumentError } from "../errors.ts";
import { ZSTD_WINDOW_LOG_MAX, zlibFailure } from "./decoders.ts";
import { zstdFrameSplitter } from "./zstd-frames.ts";

export type Compression = "gzip" | "zstd" | "none";

export const ZLIB_CHUNK = 1 << 20;

/** Detects the compression of a stream from its first bytes (4 are enough). */
export function detectCompression(head: Uint8Array): Compression {
  if (head.length >= 3 && head[0] === 0x1f && head[1] === 0x8b && head[2] === 0x08) return "gzip";
  if (head.length >= 4) {
    if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return "zstd";
    // skippable frames, magic 0x184D2A50..0x184D2A5F little-endian
    if ((head[0] & 0xf0) === 0x50 && head[1] === 0x2a && head[2] === 0x4d && head[3] === 0x18) return "zstd";
  }
  return "none";
}

const LAYER_TYPES: Record<string, Compression> = {
  "application/vnd.oci.image.layer.v1.tar": "none",
  "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
  "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
  "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
  "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
  "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
  "application/vnd.docker.image.rootfs.diff.tar": "none",
  "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
  "application/vnd.docker.image.rootfs.diff.tar.zstd": "zstd",
  "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
};

/** True for the layer media types dist can unpack. */
export function isLayerMediaType(mediaType: string): boolean {
  return Object.hasOwn(LAYER_TYPES, mediaType);
}

/** The compression a layer media type declares; InvalidArgumentError for a non-layer type. */
export function compressionOfMediaType(mediaType: string): Compression {
  const c = LAYER_TYPES[mediaType];
  if (c === undefined) throw new InvalidArgumentError(`media type "${mediaType}" is not a known layer type`);
  return c;
}

/** The layer media type for a compression, OCI by default or Docker schema 2. */
export function layerMediaType(c: Compression, flavour: "oci" | "docker" = "oci"): string {
  if (flavour === "docker") {
    return {
      none: "application/vnd.docker.image.rootfs.diff.tar",
      gzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
      zstd: "application/vnd.docker.image.rootfs.diff.tar.zstd",
    }[c];
  }
  return c === "none" ? "application/vnd.oci.image.layer.v1.tar" : `application/vnd.oci.image.layer.v1.tar+${c}`;
}

/** Reads at least `n` bytes (fewer at EOF) and puts them back, so the stream is unchanged. */
export async function peek(src: Readable, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let len = 0;
  while (len < n) {
    const c = src.read() as Buffer | string | null;
    if (c !== null) {
      const b = typeof c === "string" ? Buffer.from(c) : c;
      chunks.push(b);
      len += b.length;
      continue;
    }
    if (src.errored) throw src.errored;
    if (src.readableEnded || src.destroyed) break;
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        src.off("readable", done);
        src.off("end", done);
        src.off("close", done);
        src.off("error", fail);
        resolve();
      };
      const fail = (e: Error) => {
        done();
        reject(e);
      };
      src.on("readable", done);
      src.on("end", done);
      src.on("close", done);
      src.on("error", fail);
    });
  }
  const head = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
  if (head.length > 0) src.unshift(head);
  return head;
}

/**
 * A decompressor whose errors read as one clear DataLossError line. zstd input
 * is written to Node's decoder one frame at a time (zstd-frames.ts), so every
 * frame of the stream is decoded, not only the first.
 */
function decompressor(src: Readable, c: "gzip" | "zstd", what: string): Readable {
  const d: Transform =
    c === "gzip"
      ? zlib.createGunzip({ chunkSize: ZLIB_CHUNK })
      : zlib.createZstdDecompress({
          chunkSize: ZLIB_CHUNK,
          params: { [zlib.constants.ZSTD_d_windowLogMax]: ZSTD_WINDOW_LOG_MAX },
        });
  const destroy = d.destroy.bind(d);
  // zlib reports failures through destroy(err); rewrite them on the way
  d.destroy = (err?: Error | null) => {
    if (err && !(err instanceof DistError)) err = zlibFailure(err, c, what);
    return destroy(err ?? undefined);
  };
  // any stage's failure (src's own errors included) ends the result with it; destroying the result stops src
  const settled = () => {};
  return c === "zstd" ? pipeline(src, frameSplitter(what), d, settled) : pipeline(src, d, settled);
}

/** Hands on a zstd stream's bytes in pieces that never run past the end of a frame. */
function frameSplitter(what: string): Transform {
  const frames = zstdFrameSplitter(what);
  return new Transform({
    // each piece reaches the decoder as one write, never merged with the next
    readableObjectMode: true,
    transform(chunk: Buffer, _enc, cb) {
      try {
        for (const piece of frames.split(chunk)) this.push(piece);
        cb();
      } catch (e) {
        cb(e as Error);
      }
    },
    flush(cb) {
      try {
        frames.end();
        cb();
      } catch (e) {
        cb(e as Error);
      }
    },
  });
}

/**
 * Detects the compression of `src` from its first bytes and returns the
 * uncompressed stream (src itself when uncompressed). Errors of src reach the result.
 */
export async function decompressStream(
  src: Readable,
  opts: { what?: string } = {},
): Promise<{ compression: Compression; stream: Readable }> {
  const head = await peek(src, 4);
  const compression = detectCompression(head);
  if (compression === "none") return { compression, stream: src };
  return { compression, stream: decompressor(src, compression, opts.what ?? "layer") };
}

/** A compressing transform for push (level: gzip 1-9, zstd 1-19; defaults are each library's). */
export function compressStream(c: Compression, opts: { level?: number } = {}): Transform {
  if (c === "gzip") return zlib.createGzip({ chunkSize: ZLIB_CHUNK, level: opts.level });
  if (c === "zstd") {
    const params: Record<number, number> = {};
    if (opts.level !== undefined) params[zlib.constants.ZSTD_c_compressionLevel] = opts.level;
    return zlib.createZstdCompress({ chunkSize: ZLIB_CHUNK, params });
  }
  return new PassThrough();
}
