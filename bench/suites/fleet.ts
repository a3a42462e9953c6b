/**
 * A fleet of 4 nodes (network namespaces on one bridge, test/integration/
 * fixtures/fleet.ts) fetching the ~1 GiB image at once from the CNCF registry
 * in a namespace of its own: each node straight from the registry (the
 * baseline), through its own dist serve with the peers before the upstream,
 * the same with one node's dist serve killed 1.5 s into the rollout (the
 * others finish by falling back), and with clients that list the peers
 * themselves (every node asks the first peer: one download, one hot node,
 * one copy less per node). Each case starts a fresh fleet (about 2 s,
 * part of the time reported); bench/results/fleet-metrics.json has each
 * rollout's own time and the bytes of blobs the upstream sent: the goal is
 * about one image's worth with peers, not four. Needs root.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildBigImage } from "../../test/integration/fixtures/big.ts";
import type { BenchSuite } from "../suite.ts";

const run = (mode: string) => `"$NODE" --disable-warning=ExperimentalWarning "$TOP/bench/fleet-rollout.ts" ${mode}`;

const suite: BenchSuite = {
  name: "fleet",
  description: "4 nodes fetching the ~1 GiB image at once: direct from the registry vs through dist serve peers",
  repetitions: 3,
  async setup(ctx) {
    if (process.getuid?.() !== 0) throw new Error("the fleet bench needs root (network namespaces)");
    const big = await buildBigImage();
    ctx.vars.BIG_STORAGE = big.storage;
    ctx.vars.BIG_PATH = "big/synthetic:gzip";
    ctx.vars.NODE = process.execPath;
    ctx.vars.FLEET_METRICS = join(ctx.tmp, "metrics.jsonl");
    writeFileSync(ctx.vars.FLEET_METRICS, "");
  },
  cases: () => [
    { name: "4 nodes straight from the registry", command: run("direct"), baseline: true },
    { name: "4 nodes through dist serve peers", command: run("peers") },
    { name: "the same, one peer killed mid-rollout", command: run("kill") },
    { name: "4 nodes whose clients list the peers", command: run("listed") },
  ],
  teardown(ctx) {
    const lines = readFileSync(ctx.vars.FLEET_METRICS, "utf8").trim().split("\n").filter(Boolean);
    const out = join(ctx.top, "bench", "results", "fleet-metrics.json");
    writeFileSync(
      out,
      `${JSON.stringify(
        lines.map((l) => JSON.parse(l)),
        null,
        2,
      )}\n`,
    );
    process.stderr.write(`bench fleet: per-rollout metrics in ${out}\n`);
  },
};

export default suite;
