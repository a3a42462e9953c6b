/**
 * `dist ingest` of 1 GiB from a pipe, against the shell doing the same work:
 * `sha256sum` plus `cp` of the same bytes (the baseline), and a one-pass
 * `tee | sha256sum` for reference. The data is random (incompressible),
 * generated once; BENCH_INGEST_SIZE (e.g. 64M) makes a quick run. Every case
 * starts after a `sync`, so no run pays for another's writeback; dist fsyncs
 * its blob before the rename (durability), which the shell baselines do not.
 */
import { join } from "node:path";
import { type BenchSuite, randomFile } from "../suite.ts";

const suite: BenchSuite = {
  name: "ingest",
  description: "1 GiB from a pipe into the content store vs sha256sum + cp",
  repetitions: 5,
  setup(ctx) {
    const size = process.env.BENCH_INGEST_SIZE ?? "1G";
    ctx.vars.DIGEST = randomFile(ctx, join(ctx.tmp, "data"), size);
  },
  cases: () => [
    {
      name: "sha256sum + cp",
      before: 'rm -f "$TMP/copy" && sync',
      command: 'sha256sum "$TMP/data" >/dev/null && cp "$TMP/data" "$TMP/copy"',
      baseline: true,
    },
    {
      name: "dist ingest --expected-digest (pipe)",
      before: 'rm -rf "$TMP/root" && sync',
      command: 'cat "$TMP/data" | "$DIST" --root "$TMP/root" ingest --expected-digest "$DIGEST" bench-ref',
    },
    {
      name: "dist ingest (pipe, no expected digest)",
      before: 'rm -rf "$TMP/root" && sync',
      command: 'cat "$TMP/data" | "$DIST" --root "$TMP/root" ingest bench-ref',
    },
    {
      name: "tee copy + sha256sum in one pass (reference)",
      before: 'rm -f "$TMP/copy" && sync',
      command: 'cat "$TMP/data" | tee "$TMP/copy" | sha256sum >/dev/null',
    },
  ],
};

export default suite;
