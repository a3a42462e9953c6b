/**
 * `dist export` and `dist import` of the ~1 GiB, 4-layer synthetic image
 * against `ctr images export` and `ctr images import` (containerd 1.6 from
 * Debian, on its own root and socket), in one run. Issue 14's goals: faster
 * than ctr, peak RSS under 150 MB.
 *
 * Setup (untimed) fetches the image into a dist root and pulls it into a
 * containerd root, both then exported from; every import reads the same
 * archive (written once by dist export: an OCI layout with manifest.json, as
 * ctr's), into a fresh dist root or a containerd restarted on a fresh root.
 * `--no-unpack` imports store the blobs only; the unpacking ones (root and
 * overlayfs) also make the snapshots. ctr's RSS is the client's: the
 * containerd daemon doing the work is not counted (as in the pull suite).
 *
 * Unpacked trees are deleted before each repetition, followed by a sync and a
 * wait (BENCH_SETTLE seconds, default 361): see the pull suite for why this
 * ext4 needs it. The image and its registry come from the fetch suite.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BenchCase, BenchContext, BenchSuite } from "../suite.ts";
import { shellOutput } from "../suite.ts";
import { setupBigRegistry } from "./fetch.ts";
import { CTRD, stopDaemonsAndRegistry } from "./pull.ts";

const isRoot = process.getuid?.() === 0;
const SOCK = '"$TMP/ctrd/containerd.sock"';
const SETTLE = Number(process.env.BENCH_SETTLE ?? "361");

const suite: BenchSuite = {
  name: "export",
  description:
    "export and import of the ~1 GiB 4-layer image: dist export/import vs ctr images export/import (containerd 1.6, own root)",
  repetitions: 3,
  beforeRepetition: `"$TMP/ctrd.sh" stop; rm -rf "$TMP/runs" "$TMP/out"; mkdir -p "$TMP/runs" "$TMP/out"; sync; sleep ${SETTLE}`,
  async setup(ctx: BenchContext) {
    await setupBigRegistry(ctx);
    writeFileSync(join(ctx.tmp, "ctrd.sh"), CTRD, { mode: 0o755 });
    shellOutput(
      ctx,
      "preparing the sources",
      `set -e
"$DIST" --root "$TMP/dist-src" fetch --plain-http "$BIG_REF" >/dev/null
"$DIST" --root "$TMP/dist-src" export "$TMP/archive.tar" "$BIG_REF" >/dev/null
"$TMP/ctrd.sh" start "$TMP/ctr-src"
ctr -a ${SOCK} content fetch --plain-http "$BIG_REF" >/dev/null
"$TMP/ctrd.sh" stop`,
    );
  },
  cases: () => {
    const cases: BenchCase[] = [
      {
        name: "ctr images export",
        before: `"$TMP/ctrd.sh" start "$TMP/ctr-src"`,
        command: `ctr -a ${SOCK} images export "$TMP/out/ctr.tar" "$BIG_REF"`,
        baseline: true,
      },
      {
        name: "dist export",
        command: `"$DIST" --root "$TMP/dist-src" export "$TMP/out/dist.tar" "$BIG_REF" >/dev/null`,
      },
      {
        name: "ctr images import --no-unpack",
        before: `"$TMP/ctrd.sh" start "$TMP/runs/ctr-import"`,
        command: `ctr -a ${SOCK} images import --no-unpack "$TMP/archive.tar" >/dev/null`,
      },
      {
        name: "dist import",
        command: `"$DIST" --root "$TMP/runs/dist-import" import "$TMP/archive.tar" >/dev/null`,
      },
      {
        name: "dist import < pipe",
        command: `cat "$TMP/archive.tar" | "$DIST" --root "$TMP/runs/dist-import-pipe" import - >/dev/null`,
      },
    ];
    if (isRoot) {
      cases.push(
        {
          name: "ctr images import (unpack, overlayfs)",
          before: `"$TMP/ctrd.sh" start "$TMP/runs/ctr-unpack"; sync; sleep 5`,
          command: `ctr -a ${SOCK} images import "$TMP/archive.tar" >/dev/null`,
        },
        {
          name: "dist import --unpack (overlay)",
          before: "sync; sleep 5",
          command: `"$DIST" --root "$TMP/runs/dist-unpack" import --unpack --snapshotter overlay "$TMP/archive.tar" >/dev/null`,
        },
      );
    }
    return cases;
  },
  teardown: (ctx: BenchContext) => stopDaemonsAndRegistry(ctx, ["ctrd.sh"]),
};

export default suite;
