/**
 * `dist serve` against the CNCF registry serving the same blobs: the ~1 GiB
 * 4-layer image (624 MiB of gzip layers), fetched whole by 8 concurrent
 * clients (curl, each client every blob in turn), so 8 × 624 MiB per case.
 * The peak RSS is the server's during the case (its VmHWM, reset before).
 * A third case runs the same 8 clients against dist serve while a ninth one
 * reads a layer at 64 KiB/s the whole time: a slow client must not stall the
 * others. Issue 15's goals: at least as fast as the registry, RSS under 150 MB.
 *
 * The image and its registry come from the fetch suite (setupBigRegistry);
 * dist serve serves a dist root that fetched it from there.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type BenchContext, type BenchSuite, shellOutput } from "../suite.ts";
import { setupBigRegistry, teardownBigRegistry } from "./fetch.ts";

const servers = new WeakMap<BenchContext, ChildProcess>();

/** Starts dist serve on ROOT (output to a file: the runner's event loop is blocked while cases run). */
async function startServe(ctx: BenchContext, root: string): Promise<{ child: ChildProcess; addr: string }> {
  const log = join(ctx.tmp, "serve.log");
  const fd = openSync(log, "w");
  const child = spawn(
    "setpriv",
    ["--pdeathsig", "SIGKILL", "--", ctx.vars.DIST, "--root", root, "serve", "--listen", "127.0.0.1:0"],
    { stdio: ["ignore", fd, fd] },
  );
  closeSync(fd);
  for (let i = 0; i < 400; i++) {
    const m = / on http:\/\/(\S+)/.exec(readFileSync(log, "utf8"));
    if (m) return { child, addr: m[1] };
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  child.kill("SIGKILL");
  throw new Error(`dist serve did not start: ${readFileSync(log, "utf8")}`);
}

/** 8 clients, each fetching every blob of the image from ADDR in turn. */
const CLIENTS = `
fetch_all() { for b in $BIG_BLOBS; do curl -sSf -o /dev/null "http://$1/v2/big/synthetic/blobs/$b" || exit 1; done; }
pids=""; for i in 1 2 3 4 5 6 7 8; do fetch_all "$ADDR" & pids="$pids $!"; done
for p in $pids; do wait $p || exit 1; done`;

const suite: BenchSuite = {
  name: "serve",
  description: "8 concurrent clients fetching every blob of the ~1 GiB image: dist serve vs the CNCF registry",
  repetitions: 3,
  async setup(ctx) {
    await setupBigRegistry(ctx);
    const root = join(ctx.tmp, "root");
    shellOutput(ctx, "dist fetch", `"$DIST" --root "$0" fetch --plain-http "$BIG_REF" >/dev/null`, root);
    const manifest = JSON.parse(
      spawnSync(ctx.vars.DIST, ["--root", root, "fetch-object", "--plain-http", ctx.vars.BIG_REF], {
        encoding: "utf8",
      }).stdout,
    ) as { config: { digest: string }; layers: { digest: string }[] };
    ctx.vars.BIG_BLOBS = [manifest.config.digest, ...manifest.layers.map((l) => l.digest)].join(" ");
    ctx.vars.BIG_LAYER = manifest.layers[0].digest;
    const serve = await startServe(ctx, root);
    servers.set(ctx, serve.child);
    ctx.vars.SERVE_ADDR = serve.addr;
    ctx.vars.SERVE_PID = String(serve.child.pid);
    const pid = shellOutput(
      ctx,
      "registry pid",
      `ss -Hltnp "sport = :\${BIG_REGISTRY##*:}" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2`,
    );
    if (!pid) throw new Error("cannot find the registry's pid");
    ctx.vars.REGISTRY_PID = pid;
  },
  cases: () => [
    {
      name: "CNCF registry: 8 clients × every blob",
      command: `ADDR="$BIG_REGISTRY"; ${CLIENTS}`,
      serverPid: "REGISTRY_PID",
      baseline: true,
    },
    {
      name: "dist serve: 8 clients × every blob",
      command: `ADDR="$SERVE_ADDR"; ${CLIENTS}`,
      serverPid: "SERVE_PID",
    },
    {
      name: "dist serve: the same 8 while a 9th reads at 64 KiB/s",
      command: `curl -s -o /dev/null --limit-rate 64k "http://$SERVE_ADDR/v2/big/synthetic/blobs/$BIG_LAYER" & slow=$!
ADDR="$SERVE_ADDR"; ${CLIENTS}
kill $slow`,
      serverPid: "SERVE_PID",
    },
  ],
  async teardown(ctx) {
    servers.get(ctx)?.kill("SIGTERM");
    await teardownBigRegistry(ctx);
  },
};

export default suite;
