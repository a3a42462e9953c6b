/**
 * The remote-snapshotter fast path: a real containerd 1.6 pulling the ~1 GiB, 4-layer
 * image with its own client (test/conformance/remote-pull: Client.Pull with unpack, as
 * the CRI plugin pulls) into `dist daemon` as its snapshotter, with the remote-snapshotter
 * labels (snapshotters.AppendInfoHandlerWrapper: dist fetches and unpacks every layer,
 * containerd none), against the same client's pull into containerd's own overlayfs (the
 * baseline), in one run. Also: the same pull onto dist's snapshots without the labels
 * (containerd fetches and applies through the proxy), and `dist pull` for reference.
 *
 * Every case starts from nothing: containerd restarted on a fresh root, `dist daemon`
 * restarted on a fresh root (untimed). Peak RSS is the client's (remote-pull, dist pull):
 * the daemons doing the work are not counted, as in the pull suite. Trees are deleted
 * before each repetition, then a sync and a wait (BENCH_SETTLE seconds, default 361: see
 * the pull suite for why this ext4 needs it). Root only (containerd, overlayfs).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildRemotePull } from "../../test/conformance/build.ts";
import { type BenchCase, type BenchContext, type BenchSuite, shellOutput, stopFunction } from "../suite.ts";
import { setupBigRegistry } from "./fetch.ts";
import { CTRD, stopDaemonsAndRegistry } from "./pull.ts";

const SETTLE = Number(process.env.BENCH_SETTLE ?? "361");

/** start ROOT | stop: `dist daemon` on ROOT at $TMP/dist.sock, fetching through $TMP/hosts. */
const DISTD = `#!/bin/bash
set -u
P="$TMP/distd.pid"; S="$TMP/dist.sock"
${stopFunction('"$P"')}
case "$1" in
stop) stop ;;
start)
  stop
  "$DIST" --root "$2" daemon --address "$S" --hosts-dir "$TMP/hosts" >>"$TMP/distd.log" 2>&1 &
  echo $! >"$P"
  for i in $(seq 1 100); do ctr -a "$S" version >/dev/null 2>&1 && exit 0; sleep 0.1; done
  echo "dist daemon did not start" >&2; exit 1 ;;
esac
`;

/** Before a case: the last case's writes on disk, so their writeback is not timed. */
const FLUSH = "sync; sleep 5";

/** containerd's own client pulling the image with unpack into `snapshotter`. */
const remotePull = (snapshotter: string, flags = "") =>
  `"$REMOTE_PULL" -address "$TMP/ctrd/containerd.sock" -plain-http -snapshotter ${snapshotter} ${flags} "$BIG_REF" >/dev/null`;

/** A case on dist's daemon as containerd's proxy snapshotter, both on fresh roots. */
function proxyCase(name: string, dir: string, flags: string): BenchCase {
  return {
    name,
    before: `"$TMP/distd.sh" start "$TMP/runs/${dir}-dist" && CTRD_EXTRA_FILE="$TMP/proxy.toml" "$TMP/ctrd.sh" start "$TMP/runs/${dir}-ctrd"; ${FLUSH}`,
    command: remotePull("dist", flags),
  };
}

const suite: BenchSuite = {
  name: "remote-snapshotter",
  description:
    "containerd 1.6 pulling the ~1 GiB 4-layer image with its client (unpack): into dist daemon with the remote-snapshotter labels (dist fetches and unpacks) vs into its own overlayfs",
  repetitions: 3,
  beforeRepetition: `"$TMP/ctrd.sh" stop; "$TMP/distd.sh" stop; rm -rf "$TMP/runs"; mkdir -p "$TMP/runs"; sync; sleep ${SETTLE}`,
  async setup(ctx: BenchContext) {
    if (process.getuid?.() !== 0) throw new Error("the remote-snapshotter suite needs root (containerd, overlayfs)");
    await setupBigRegistry(ctx);
    ctx.vars.REMOTE_PULL = await buildRemotePull();
    writeFileSync(join(ctx.tmp, "ctrd.sh"), CTRD, { mode: 0o755 });
    writeFileSync(join(ctx.tmp, "distd.sh"), DISTD, { mode: 0o755 });
    writeFileSync(
      join(ctx.tmp, "proxy.toml"),
      `[proxy_plugins.dist]\n  type = "snapshot"\n  address = "${join(ctx.tmp, "dist.sock")}"\n`,
    );
    // the daemon's own registry configuration: plain HTTP to the loopback registry
    shellOutput(
      ctx,
      "writing the daemon's hosts directory",
      `mkdir -p "$TMP/hosts/$BIG_REGISTRY" && echo "server = \\"http://$BIG_REGISTRY\\"" >"$TMP/hosts/$BIG_REGISTRY/hosts.toml"`,
    );
  },
  cases: () => [
    {
      name: "containerd's client pull, own overlayfs",
      before: `"$TMP/ctrd.sh" start "$TMP/runs/own"; ${FLUSH}`,
      command: remotePull("overlayfs"),
      baseline: true,
    },
    proxyCase("the same into dist daemon, remote-snapshotter labels (dist fetches and unpacks)", "fast", "-info"),
    proxyCase("the same into dist daemon, no labels (containerd fetches and applies)", "proxy", ""),
    {
      name: "dist pull (overlay), for reference",
      before: FLUSH,
      command: `"$DIST" --root "$TMP/runs/dist-pull" pull --plain-http --snapshotter overlay "$BIG_REF" >/dev/null`,
    },
  ],
  teardown: (ctx: BenchContext) => stopDaemonsAndRegistry(ctx, ["ctrd.sh", "distd.sh"]),
};

export default suite;
