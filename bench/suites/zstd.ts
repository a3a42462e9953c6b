/**
 * zstd layers of many frames decode at the speed of one frame. The same tar
 * (files of 8 MiB, a third random, the rest words: ratio ~2.3) compressed as
 * one frame, by pzstd (frames behind skippable frames), and in frames of 4 KiB
 * each behind a skippable frame (the worst case of zstd:chunked's frame per
 * chunk). Decoded by `zstd -dc` (the baseline: one frame), by the
 * decompression worker (bench/inflate.ts worker: what pull and apply do with a
 * stored blob), by decompressStream (bench/inflate.ts stream), and applied by
 * `dist apply` onto tmpfs. The inflater cases also hash the output (the
 * diffID), which `zstd -dc` does not.
 *
 * BENCH_ZSTD_MIB (default 512) sets the tar's size; 64 makes a quick run.
 */
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import * as zlib from "node:zlib";
import { type BenchContext, type BenchSuite, shellOutput } from "../suite.ts";

const GENERATE = `
import io, random, sys, tarfile
rnd = random.Random(42)
words = [b"alpha", b"bravo", b"charlie", b"delta", b"echo", b"foxtrot", b"golf", b"hotel"]
t = tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT)
for i in range(max(1, int(sys.argv[2]) // 8)):
    n = 8 << 20
    data = rnd.randbytes(n) if i % 3 == 0 else b" ".join(rnd.choice(words) for _ in range(n // 5 + 1))[:n]
    f = tarfile.TarInfo("data/f%04d" % i); f.size = n; f.mode = 0o644; f.mtime = 1700000000
    t.addfile(f, io.BytesIO(data))
t.close()
`;

/** The tar in frames of `size` bytes, each behind an 8-byte skippable frame, written to `path`. */
function framed(tar: Buffer, size: number, path: string): void {
  const fd = openSync(path, "w");
  try {
    const skip = Buffer.from([0x50, 0x2a, 0x4d, 0x18, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    for (let i = 0; i < tar.length; i += size) {
      writeSync(fd, skip);
      writeSync(fd, zlib.zstdCompressSync(tar.subarray(i, i + size)));
    }
  } finally {
    closeSync(fd);
  }
}

const fresh = 'rm -rf "$OUT" && mkdir "$OUT"';
const inflate = (how: string, file: string) => `"$NODE" "$TOP/bench/inflate.ts" ${how} "$TMP/${file}" >/dev/null`;

const suite: BenchSuite = {
  name: "zstd",
  description: "zstd layers of one frame and of many (pzstd, 4 KiB frames): dist's decoders vs zstd -dc",
  repetitions: 5,
  setup(ctx: BenchContext) {
    const mib = process.env.BENCH_ZSTD_MIB ?? "512";
    const tarPath = join(ctx.tmp, "layer.tar");
    shellOutput(
      ctx,
      "generating the layer",
      `python3 -c "$0" "$1" ${mib} && zstd -q -3 -c "$1" > "$TMP/single.zst" && pzstd -q -3 -p 2 -c "$1" > "$TMP/pzstd.zst"`,
      GENERATE,
      tarPath,
    );
    framed(readFileSync(tarPath), 4 << 10, join(ctx.tmp, "frames-4k.zst"));
    rmSync(tarPath);
    ctx.vars.NODE = process.execPath;
    // as bin/dist does: the worker's module then starts without a type stripper of its own
    ctx.vars.NODE_COMPILE_CACHE = process.env.NODE_COMPILE_CACHE ?? join(ctx.top, ".runtime", "compile-cache");
    const base = existsSync("/dev/shm") ? "/dev/shm" : ctx.tmp;
    ctx.vars.OUT = join(base, `dist-bench-zstd-${process.pid}`);
  },
  teardown(ctx) {
    rmSync(ctx.vars.OUT, { recursive: true, force: true });
  },
  cases: () => [
    { name: "zstd -dc (one frame)", command: 'zstd -q -dc "$TMP/single.zst" >/dev/null', baseline: true },
    { name: "zstd -dc (4 KiB frames)", command: 'zstd -q -dc "$TMP/frames-4k.zst" >/dev/null' },
    { name: "worker (one frame)", command: inflate("worker", "single.zst") },
    { name: "worker (pzstd)", command: inflate("worker", "pzstd.zst") },
    { name: "worker (4 KiB frames)", command: inflate("worker", "frames-4k.zst") },
    { name: "decompressStream (one frame)", command: inflate("stream", "single.zst") },
    { name: "decompressStream (4 KiB frames)", command: inflate("stream", "frames-4k.zst") },
    { name: "dist apply (one frame)", before: fresh, command: '"$DIST" apply "$OUT" < "$TMP/single.zst"' },
    { name: "dist apply (4 KiB frames)", before: fresh, command: '"$DIST" apply "$OUT" < "$TMP/frames-4k.zst"' },
  ],
};

export default suite;
