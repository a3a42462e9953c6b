/**
 * `dist pull` of the ~1 GiB, 4-layer synthetic image (overlay and native
 * snapshotters) against `ctr images pull` with a containerd from Debian started
 * on its own root, state and socket (the baseline), all from the same loopback
 * registry in one run. Every repetition starts from nothing: a fresh dist root,
 * a fresh containerd root (containerd restarted, untimed). Issue 4's goals: at
 * least 4× faster than ctr, peak RSS under 150 MB.
 *
 * The image and its registry come from the fetch suite (setupBigRegistry).
 * Overlay cases need root and overlayfs; without root only native runs.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BenchCase, BenchContext, BenchSuite } from "../suite.ts";
import { pullCase, setupBigRegistry, teardownBigRegistry } from "./fetch.ts";

const isRoot = process.getuid?.() === 0;

/** start|stop a private containerd: config under $TMP/ctrd, socket $TMP/ctrd/containerd.sock. */
const CTRD = `#!/bin/bash
set -u
CD="$TMP/ctrd"; S="$CD/containerd.sock"
stop() {
  if [ -f "$CD/pid" ]; then
    pid=$(cat "$CD/pid"); kill "$pid" 2>/dev/null
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$CD/pid"
  fi
  # snapshots may still be mounted by a killed daemon
  grep -o " $CD/root[^ ]*" /proc/self/mounts | sort -r | while read -r m; do umount -l "$m"; done
}
case "$1" in
stop) stop ;;
start)
  stop; rm -rf "$CD/root" "$CD/state"; mkdir -p "$CD"
  cat >"$CD/config.toml" <<EOF
version = 2
root = "$CD/root"
state = "$CD/state"
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
  containerd --config "$CD/config.toml" >>"$CD/containerd.log" 2>&1 &
  echo $! >"$CD/pid"
  for i in $(seq 1 100); do ctr -a "$S" version >/dev/null 2>&1 && exit 0; sleep 0.1; done
  echo "containerd did not start" >&2; exit 1 ;;
esac
`;

/**
 * Appended to every case's cleanup. Each repetition deletes the last one's trees
 * (16.5k to 70k files) just before it runs. On ext4 without a journal (this
 * machine's disk), a create skips, one by one, every free inode of its group
 * deleted in the last 60 s, or 360 s while its inode-table block is dirty
 * (fs/ext4/ialloc.c recently_deleted, RECENTCY_MIN 60 since Linux 5.7); and
 * ext4 puts the new trees in the very groups just emptied. So the timed command
 * paid for the harness's own rm -rf: perf showed find_inode_bit,
 * recently_deleted and find_get_block_common taking ~1.5 CPU-s of a dist pull
 * run 31 s after deleting a containerd root (6.3 s instead of 3.2 s); ctr's
 * later repetitions took 12-26 s against 7.5 s for the first. `sync` cleans the
 * blocks; 61 s then outlasts the window. The same wait for every tool.
 */
const SETTLE = "; sync; sleep 61";

function ctrCase(name: string, flags: string, baseline = false): BenchCase {
  return {
    name,
    before: `"$TMP/ctrd.sh" start${SETTLE}`,
    command: `ctr -a "$TMP/ctrd/containerd.sock" images pull --plain-http ${flags} "$BIG_REF" >/dev/null`,
    baseline,
  };
}

function distCase(name: string, flags: string): BenchCase {
  const c = pullCase(name, flags);
  return { ...c, before: `${c.before ?? "true"}${SETTLE}` };
}

const suite: BenchSuite = {
  name: "pull",
  description:
    "pull (download + unpack) of the ~1 GiB 4-layer image from a loopback registry: dist pull vs ctr images pull (containerd 1.6, own root)",
  repetitions: 3,
  async setup(ctx: BenchContext) {
    await setupBigRegistry(ctx);
    const script = join(ctx.tmp, "ctrd.sh");
    writeFileSync(script, CTRD, { mode: 0o755 });
  },
  cases: () => {
    const cases: BenchCase[] = [];
    if (isRoot) {
      cases.push(ctrCase("ctr images pull (overlayfs)", "", true));
      cases.push(ctrCase("ctr images pull (native)", "--snapshotter native"));
      cases.push(distCase("dist pull (overlay)", "--snapshotter overlay"));
    }
    cases.push({ ...distCase("dist pull (native)", "--snapshotter native"), baseline: !isRoot });
    return cases;
  },
  async teardown(ctx: BenchContext) {
    const { spawnSync } = await import("node:child_process");
    spawnSync(join(ctx.tmp, "ctrd.sh"), ["stop"], { env: { ...process.env, TMP: ctx.tmp }, stdio: "inherit" });
    await teardownBigRegistry(ctx);
  },
};

export default suite;
