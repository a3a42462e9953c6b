/**
 * zstd streams of many frames (RFC 8878 §3.1) on both decoding paths: the
 * decompression worker (InflateJob: apply, pull, the Diff service) and
 * decompressStream (the same decoder, run as its reader asks).
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { describe, test } from "node:test";
import * as zlib from "node:zlib";
import { decompressStream } from "../../src/archive/compression.ts";
import { InflateJob } from "../../src/archive/inflater.ts";

const { ZSTD_c_checksumFlag, ZSTD_c_contentSizeFlag } = zlib.constants;

/** A skippable frame: magic 0x184D2A5n, the payload's size (LE) and the payload. */
function skippable(n: number, payload: Buffer): Buffer {
  const head = Buffer.from([0x50 | n, 0x2a, 0x4d, 0x18, 0, 0, 0, 0]);
  head.writeUInt32LE(payload.length, 4);
  return Buffer.concat([head, payload]);
}

function zstd(plain: Buffer, opts: { checksum?: boolean; contentSize?: boolean } = {}): Buffer {
  return zlib.zstdCompressSync(plain, {
    params: {
      [ZSTD_c_checksumFlag]: opts.checksum ? 1 : 0,
      [ZSTD_c_contentSizeFlag]: opts.contentSize === false ? 0 : 1,
    },
  });
}

interface Stream {
  bytes: Buffer;
  plain: Buffer;
  /** Offsets where each frame ends. */
  ends: number[];
}

function stream(frames: { z: Buffer; plain?: Buffer }[]): Stream {
  const ends: number[] = [];
  let at = 0;
  for (const f of frames) {
    at += f.z.length;
    ends.push(at);
  }
  return {
    bytes: Buffer.concat(frames.map((f) => f.z)),
    plain: Buffer.concat(frames.map((f) => f.plain ?? Buffer.alloc(0))),
    ends,
  };
}

const words = Buffer.from("alpha bravo charlie delta echo foxtrot golf hotel ".repeat(100));
const raw = randomBytes(1500);
const rle = Buffer.alloc(3000, "x");

/**
 * Small frames of every shape: with and without a checksum and a content size
 * (single segment, or a window descriptor), raw, RLE and compressed blocks, an
 * empty frame, skippable frames (an empty one too) before, between and after.
 */
const small = stream([
  { z: skippable(0, Buffer.from("lead")) },
  { z: zstd(raw, { checksum: true }), plain: raw },
  { z: skippable(15, Buffer.alloc(0)) },
  { z: zstd(rle), plain: rle },
  { z: zstd(Buffer.alloc(0)) },
  { z: skippable(7, randomBytes(300)) },
  { z: zstd(words, { checksum: true, contentSize: false }), plain: words },
  { z: zstd(raw.subarray(0, 10), { contentSize: false }), plain: raw.subarray(0, 10) },
  { z: skippable(3, Buffer.from("trailer")) },
]);

const big = randomBytes(3 << 20);
const large = stream([
  { z: skippable(0, Buffer.alloc(100_000, 1)) },
  { z: zstd(big.subarray(0, 1 << 20), { checksum: true }), plain: big.subarray(0, 1 << 20) },
  { z: zstd(Buffer.alloc(5 << 20, 7), { contentSize: false }), plain: Buffer.alloc(5 << 20, 7) },
  { z: skippable(1, Buffer.alloc(600_000, 2)) },
  { z: zstd(big.subarray(1 << 20), { checksum: true, contentSize: false }), plain: big.subarray(1 << 20) },
]);

const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** The worker's path: `input` fed in the given pieces; the output and its diffID. */
async function viaWorker(input: Buffer[], what = "layer Z"): Promise<{ out: Buffer; diffID: string }> {
  const job = new InflateJob("zstd", what);
  const feed = (async () => {
    for (const piece of input) await job.write(piece);
    job.end();
  })();
  feed.catch((e) => job.abort(e));
  const parts: Buffer[] = [];
  for await (const chunk of job.chunks()) parts.push(Buffer.from(chunk));
  await feed;
  return { out: Buffer.concat(parts), diffID: job.result().diffID };
}

async function collect(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

/** The stream path: decompressStream over `input` in the given pieces. */
async function viaStream(input: Buffer[], what = "layer Z"): Promise<{ out: Buffer; diffID: string }> {
  const { compression, stream: s } = await decompressStream(Readable.from(input), { what });
  assert.equal(compression, "zstd");
  const out = await collect(s);
  return { out, diffID: sha(out) };
}

const PATHS = { worker: viaWorker, stream: viaStream };

function pieces(b: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i += size) out.push(b.subarray(i, i + size));
  return out;
}

describe("zstd streams of many frames", () => {
  for (const [name, decode] of Object.entries(PATHS)) {
    test(`${name}: every frame decodes, the input cut in two at every offset`, async () => {
      const want = sha(small.plain);
      for (let cut = 0; cut <= small.bytes.length; cut++) {
        const r = await decode([small.bytes.subarray(0, cut), small.bytes.subarray(cut)].filter((p) => p.length));
        assert.equal(r.diffID, want, `cut at ${cut}`);
      }
      const bytewise = await decode(pieces(small.bytes, 1));
      assert.ok(bytewise.out.equals(small.plain), "one byte at a time");
    });

    test(`${name}: frames larger than the buffers, across them, in pieces of any size`, async () => {
      for (const size of [7_777, 65_537, 1 << 22]) {
        const r = await decode(pieces(large.bytes, size));
        assert.equal(r.out.length, large.plain.length, `pieces of ${size}`);
        assert.ok(r.out.equals(large.plain), `pieces of ${size}`);
      }
    });

    test(`${name}: a stream that ends inside a frame is a DataLoss error naming the source`, async () => {
      // inside: a frame's magic, its header, a block header, a block, the checksum; a skippable frame's size and payload
      const starts = [0, ...small.ends.slice(0, -1)];
      const cuts = new Set<number>();
      for (let f = 0; f < small.ends.length; f++) {
        for (const at of [1, 4, 5, 6, 8, 10]) if (starts[f] + at < small.ends[f]) cuts.add(starts[f] + at);
        cuts.add(small.ends[f] - 1);
        cuts.add(small.ends[f] - 3);
      }
      for (const cut of cuts) {
        // fewer than 4 bytes cannot be told from uncompressed data: the stream path passes them on as such
        if (name === "stream" && cut < 4) continue;
        await assert.rejects(decode([small.bytes.subarray(0, cut)], "layer T"), (e: Error) => {
          assert.equal((e as { code?: string }).code, "DataLoss", `cut at ${cut}: ${e.message}`);
          assert.match(e.message, /^layer T: zstd stream is truncated/, `cut at ${cut}`);
          return true;
        });
      }
    });

    test(`${name}: junk or zero padding after the last frame, a wrong checksum, a corrupt block are DataLoss errors`, async () => {
      const checked = zstd(words, { checksum: true });
      const badSum = Buffer.from(checked);
      badSum[badSum.length - 1] ^= 1;
      // a frame by hand whose one block is of the reserved type
      const badBlock = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00, 0x2f, 0, 0, ...Buffer.from("hello")]);
      const cases = {
        junk: Buffer.concat([small.bytes, Buffer.from("junk after the end")]),
        zeros: Buffer.concat([small.bytes, Buffer.alloc(1024)]),
        checksum: Buffer.concat([small.bytes, badSum]),
        block: Buffer.concat([zstd(rle), badBlock]),
      };
      for (const [what, bytes] of Object.entries(cases)) {
        await assert.rejects(decode(pieces(bytes, 1000), "layer C"), (e: Error) => {
          assert.equal((e as { code?: string }).code, "DataLoss", `${what}: ${e.message}`);
          assert.match(e.message, /^layer C: (corrupt zstd data|zstd stream is truncated)/, what);
          return true;
        });
      }
    });

    test(`${name}: windows up to 512 MiB are accepted, larger ones refused as invalid`, async () => {
      // a frame by hand: no content size, a window descriptor (exponent: windowLog - 10), one raw block "hello"
      const frame = (windowLog: number) =>
        Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, (windowLog - 10) << 3, 0x29, 0, 0, ...Buffer.from("hello")]);
      assert.equal((await decode([frame(29)])).out.toString(), "hello");
      await assert.rejects(decode([frame(30)], "layer W"), (e: Error) => {
        assert.equal((e as { code?: string }).code, "InvalidArgument", e.message);
        assert.match(e.message, /^layer W: a zstd frame needs a window over 512 MiB/);
        return true;
      });
    });
  }
});
