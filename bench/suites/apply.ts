/**
 * `dist apply` of a many-small-files layer (~16k files of 0.5-64 KiB, 250 MiB, the
 * test bed's "layer3" shape) against GNU `tar -x` (the baseline), plain and
 * gzip-compressed, each into a fresh directory. The layer is generated once with
 * python's tarfile from a seeded PRNG; BENCH_APPLY_MIB (e.g. 32) makes a quick run.
 *
 * The target is on tmpfs (/dev/shm) unless BENCH_APPLY_DIR names another place:
 * on a shared disk, writeback of other work swamps both tools (medians of 16 s
 * against a fastest run of 0.8 s were seen), which measures the disk, not them.
 */
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { type BenchSuite, shellOutput } from "../suite.ts";

const GENERATE = `
import io, random, sys, tarfile
rnd = random.Random(42)
words = [b"alpha", b"bravo", b"charlie", b"delta", b"echo", b"foxtrot", b"golf", b"hotel"]
t = tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT)
left = int(sys.argv[2]) << 20
i = 0
while left > 0:
    if i % 500 == 0:
        d = tarfile.TarInfo("big/small/%03d" % (i // 500)); d.type = tarfile.DIRTYPE; d.mode = 0o755; d.mtime = 1700000000
        t.addfile(d)
    n = min(left, rnd.choice([512, 2048, 4096, 8192, 16384, 65536]))
    data = rnd.randbytes(n) if i % 2 else b" ".join(rnd.choice(words) for _ in range(n // 5 + 1))[:n]
    f = tarfile.TarInfo("big/small/%03d/f%06d.dat" % (i // 500, i)); f.size = n; f.mode = 0o644; f.mtime = 1700000000
    t.addfile(f, io.BytesIO(data))
    left -= n
    i += 1
t.close()
print(i)
`;

const fresh = 'rm -rf "$OUT" && mkdir "$OUT"';

const suite: BenchSuite = {
  name: "apply",
  description: "apply a many-small-files layer (~16k files, 250 MiB) vs GNU tar -x",
  repetitions: 5,
  setup(ctx) {
    const mib = process.env.BENCH_APPLY_MIB ?? "250";
    ctx.vars.FILES = shellOutput(
      ctx,
      "generating the layer",
      `python3 -c "$0" "$TMP/layer.tar" ${mib} && gzip -1 -c "$TMP/layer.tar" > "$TMP/layer.tar.gz"`,
      GENERATE,
    );
    const base = process.env.BENCH_APPLY_DIR ?? (existsSync("/dev/shm") ? "/dev/shm" : ctx.tmp);
    ctx.vars.OUT = join(base, `dist-bench-apply-${process.pid}`);
  },
  teardown(ctx) {
    rmSync(ctx.vars.OUT, { recursive: true, force: true });
  },
  cases: () => [
    { name: "GNU tar -x (tar)", before: fresh, command: 'tar -xf "$TMP/layer.tar" -C "$OUT"', baseline: true },
    { name: "dist apply (tar)", before: fresh, command: '"$DIST" apply "$OUT" < "$TMP/layer.tar"' },
    { name: "GNU tar -xz (gzip)", before: fresh, command: 'tar -xzf "$TMP/layer.tar.gz" -C "$OUT"' },
    { name: "dist apply (gzip)", before: fresh, command: '"$DIST" apply "$OUT" < "$TMP/layer.tar.gz"' },
  ],
};

export default suite;
