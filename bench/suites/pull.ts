/**
 * `dist pull` of the ~1 GiB, 4-layer synthetic image (overlay and native
 * snapshotters) against `ctr images pull` with a containerd from Debian started
 * on its own root, state and socket (the baseline), all from the same loopback
 * registry in one run. Every case starts from nothing: a fresh dist root, a
 * fresh containerd root (containerd restarted, untimed). Issue 4's goals: at
 * least 4× faster than ctr, peak RSS under 150 MB.
 *
 * Nothing is deleted between the cases of a repetition: all trees go at once
 * before the next one, followed by a sync and a wait of 361 s. The reason is
 * this machine's disk, ext4 without a journal: a create skips, one by one,
 * every free inode of its group deleted in the last 60 s, or in the last 360 s
 * while its inode-table block is dirty (fs/ext4/ialloc.c recently_deleted,
 * since Linux 5.7), and creating files next to such inodes dirties their block
 * again; ext4 also puts new trees in the groups just emptied. Deleting the last
 * repetition's trees just before a case made that case pay for it: a dist pull
 * 31 s after deleting a containerd root took 6.3 s instead of 3.2 s (perf:
 * find_inode_bit, recently_deleted, find_get_block_common), 61 s after, still
 * 4.4-7.8 s; ctr's runs varied from 7.5 to 26 s the same way.
 *
 * The image and its registry come from the fetch suite (setupBigRegistry).
 * Overlay cases need root and overlayfs; without root only native runs.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { type BenchCase, type BenchContext, type BenchSuite, stopFunction } from "../suite.ts";
import { setupBigRegistry, teardownBigRegistry } from "./fetch.ts";

const isRoot = process.getuid?.() === 0;

/**
 * start ROOT | stop: a private containerd keeping its root and state under ROOT, socket
 * $TMP/ctrd/containerd.sock; `CTRD_EXTRA_FILE=F ctrd.sh start ROOT` appends F to its config.
 */
export const CTRD = `#!/bin/bash
set -u
CD="$TMP/ctrd"; S="$CD/containerd.sock"
${stopFunction(
  '"$CD/pid"',
  `# snapshots may still be mounted by a killed daemon
  grep -o " $TMP/runs/[^ ]*" /proc/self/mounts | sort -r | while read -r m; do umount -l "$m"; done`,
)}
case "$1" in
stop) stop ;;
start)
  stop; R="$2"; mkdir -p "$CD" "$R"
  cat >"$CD/config.toml" <<EOF
version = 2
root = "$R/root"
state = "$R/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$S"
[ttrpc]
  address = "$S.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$CD/opt"
EOF
  # more config (proxy plugins) from the file $CTRD_EXTRA_FILE
  if [ -n "\${CTRD_EXTRA_FILE:-}" ]; then cat "$CTRD_EXTRA_FILE" >>"$CD/config.toml"; fi
  containerd --config "$CD/config.toml" >>"$CD/containerd.log" 2>&1 &
  echo $! >"$CD/pid"
  for i in $(seq 1 100); do ctr -a "$S" version >/dev/null 2>&1 && exit 0; sleep 0.1; done
  echo "containerd did not start" >&2; exit 1 ;;
esac
`;

/** Before a case: the last case's writes on disk, so their writeback is not timed. */
const FLUSH = "sync; sleep 5";

function ctrCase(name: string, dir: string, flags: string, baseline = false): BenchCase {
  return {
    name,
    before: `"$TMP/ctrd.sh" start "$TMP/runs/${dir}"; ${FLUSH}`,
    command: `ctr -a "$TMP/ctrd/containerd.sock" images pull --plain-http ${flags} "$BIG_REF" >/dev/null`,
    baseline,
  };
}

function distCase(name: string, dir: string, flags: string): BenchCase {
  return {
    name,
    before: FLUSH,
    command: `"$DIST" --root "$TMP/runs/${dir}" pull --plain-http ${flags} "$BIG_REF" >/dev/null`,
  };
}

/** A teardown: each daemon script of $TMP (ctrd.sh, distd.sh) stopped, then the big image's registry. */
export async function stopDaemonsAndRegistry(ctx: BenchContext, scripts: readonly string[]): Promise<void> {
  const { spawnSync } = await import("node:child_process");
  const env = { ...process.env, ...ctx.vars };
  for (const s of scripts) spawnSync(join(ctx.tmp, s), ["stop"], { env, stdio: "inherit" });
  await teardownBigRegistry(ctx);
}

const suite: BenchSuite = {
  name: "pull",
  description:
    "pull (download + unpack) of the ~1 GiB 4-layer image from a loopback registry: dist pull vs ctr images pull (containerd 1.6, own root)",
  repetitions: 3,
  beforeRepetition: `"$TMP/ctrd.sh" stop; rm -rf "$TMP/runs"; mkdir -p "$TMP/runs"; sync; sleep 361`,
  async setup(ctx: BenchContext) {
    await setupBigRegistry(ctx);
    const script = join(ctx.tmp, "ctrd.sh");
    writeFileSync(script, CTRD, { mode: 0o755 });
  },
  cases: () => {
    const cases: BenchCase[] = [];
    if (isRoot) {
      cases.push(ctrCase("ctr images pull (overlayfs)", "ctr-overlay", "", true));
      cases.push(ctrCase("ctr images pull (native)", "ctr-native", "--snapshotter native"));
      cases.push(distCase("dist pull (overlay)", "dist-overlay", "--snapshotter overlay"));
    }
    cases.push({ ...distCase("dist pull (native)", "dist-native", "--snapshotter native"), baseline: !isRoot });
    return cases;
  },
  teardown: (ctx: BenchContext) => stopDaemonsAndRegistry(ctx, ["ctrd.sh"]),
};

export default suite;
