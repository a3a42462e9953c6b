import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { describe, test } from "node:test";
import * as zlib from "node:zlib";
import {
  compressionOfMediaType,
  compressStream,
  decompressStream,
  detectCompression,
  isLayerMediaType,
  layerMediaType,
  peek,
} from "../../src/archive/compression.ts";
import { bufferStream, fullHeaderGzip } from "./helpers.ts";

async function collect(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

const data = Buffer.concat([randomBytes(300_000), Buffer.alloc(300_000, "a")]);

describe("compression", () => {
  test("detection from magic bytes, zstd skippable frames included", () => {
    assert.equal(detectCompression(zlib.gzipSync(data)), "gzip");
    assert.equal(detectCompression(zlib.zstdCompressSync(data)), "zstd");
    for (const low of [0x50, 0x5a, 0x5f]) {
      assert.equal(detectCompression(Buffer.from([low, 0x2a, 0x4d, 0x18, 0, 0, 0, 0])), "zstd");
    }
    assert.equal(detectCompression(Buffer.from([0x60, 0x2a, 0x4d, 0x18])), "none");
    assert.equal(detectCompression(Buffer.from("ustar")), "none");
    assert.equal(detectCompression(Buffer.from([0x1f, 0x8b])), "none", "too short to be gzip");
    assert.equal(detectCompression(Buffer.alloc(0)), "none");
  });

  test("media types: OCI, Docker, non-distributable", () => {
    assert.equal(compressionOfMediaType("application/vnd.oci.image.layer.v1.tar"), "none");
    assert.equal(compressionOfMediaType("application/vnd.oci.image.layer.v1.tar+gzip"), "gzip");
    assert.equal(compressionOfMediaType("application/vnd.oci.image.layer.v1.tar+zstd"), "zstd");
    assert.equal(compressionOfMediaType("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"), "gzip");
    assert.equal(compressionOfMediaType("application/vnd.docker.image.rootfs.diff.tar.gzip"), "gzip");
    assert.equal(compressionOfMediaType("application/vnd.docker.image.rootfs.diff.tar.zstd"), "zstd");
    assert.equal(compressionOfMediaType("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"), "gzip");
    assert.ok(!isLayerMediaType("application/vnd.oci.image.config.v1+json"));
    assert.throws(() => compressionOfMediaType("application/json"), { code: "InvalidArgument" });
    assert.equal(layerMediaType("zstd"), "application/vnd.oci.image.layer.v1.tar+zstd");
    assert.equal(layerMediaType("gzip", "docker"), "application/vnd.docker.image.rootfs.diff.tar.gzip");
  });

  test("decompressStream: gzip, zstd (after a skippable frame) and plain, in small chunks", async () => {
    const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0]), Buffer.from("skip")]);
    const cases = [
      ["gzip", zlib.gzipSync(data)],
      ["zstd", Buffer.concat([skippable, zlib.zstdCompressSync(data)])],
      ["none", data],
    ] as const;
    for (const [kind, bytes] of cases) {
      const { compression, stream } = await decompressStream(bufferStream(bytes, 3));
      assert.equal(compression, kind);
      assert.deepEqual(await collect(stream), data);
    }
    const empty = await decompressStream(Readable.from([]));
    assert.equal(empty.compression, "none");
    assert.equal((await collect(empty.stream)).length, 0);
  });

  test("decompressStream: gzip members one after another, with every optional header field", async () => {
    const a = data.subarray(0, 200_000);
    const b = data.subarray(200_000);
    const { stream } = await decompressStream(bufferStream(Buffer.concat([fullHeaderGzip(a), zlib.gzipSync(b)]), 1001));
    assert.deepEqual(await collect(stream), data);
  });

  test("truncated and corrupt streams are DataLoss errors naming the format", async () => {
    for (const [kind, bytes] of [
      ["gzip", zlib.gzipSync(data)],
      ["zstd", zlib.zstdCompressSync(data)],
    ] as const) {
      const { stream } = await decompressStream(bufferStream(bytes.subarray(0, bytes.length - 100)), {
        what: "layer X",
      });
      await assert.rejects(collect(stream), (e: Error) => {
        assert.equal((e as { code?: string }).code, "DataLoss");
        assert.match(e.message, new RegExp(`layer X: ${kind} stream is truncated`));
        return true;
      });
    }
    const corrupt = Buffer.from(zlib.gzipSync(data));
    corrupt.fill(0x42, 100, 200);
    const { stream } = await decompressStream(bufferStream(corrupt));
    await assert.rejects(collect(stream), /corrupt gzip data/);
  });

  test("compressStream round-trips and peek leaves the stream whole", async () => {
    for (const kind of ["gzip", "zstd", "none"] as const) {
      const c = compressStream(kind, { level: 1 });
      const out = collect(c);
      c.end(data);
      const bytes = await out;
      assert.equal(detectCompression(bytes), kind);
      const { stream } = await decompressStream(bufferStream(bytes));
      assert.deepEqual(await collect(stream), data);
    }
    const s = bufferStream(data, 2);
    assert.equal((await peek(s, 10)).length >= 10, true);
    assert.deepEqual(await collect(s), data);
  });
});
