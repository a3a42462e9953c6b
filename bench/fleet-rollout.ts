/**
 * One rollout of the fleet bench (bench/suites/fleet.ts runs it as a case):
 * starts a fleet of 4 nodes on the upstream storage $BIG_STORAGE, has every
 * node fetch $BIG_PATH at once, and appends what happened to $FLEET_METRICS
 * (one JSON line: the mode, the rollout's own seconds, the bytes of blobs the
 * upstream sent). Modes:
 *   direct  each node fetches from the upstream alone (the baseline)
 *   peers   each node fetches through its dist serve, which asks the peers
 *           (rendezvous order per blob) before the upstream
 *   kill    as peers, and one node's dist serve is killed 1.5 s into the rollout
 *   listed  each node's client lists the peers (one order) before the upstream
 */
import { appendFileSync, mkdtempSync } from "node:fs";
import { join } from "node:path";
import { startFleet } from "../test/integration/fixtures/fleet.ts";

const mode = process.argv[2];
if (!["direct", "peers", "kill", "listed"].includes(mode)) {
  throw new Error("usage: fleet-rollout.ts direct|peers|kill|listed");
}
const env = (k: string) => {
  const v = process.env[k];
  if (!v) throw new Error(`$${k} is not set`);
  return v;
};
const fleet = await startFleet({
  nodes: 4,
  storage: env("BIG_STORAGE"),
  dir: mkdtempSync(join(env("TMP"), `fleet-${mode}-`)),
});
try {
  const ref = `${fleet.upstream}/${env("BIG_PATH")}`;
  const started = Date.now();
  const pulls = fleet.nodes.map((n) =>
    fleet.client(n, ["fetch", ref], { direct: mode === "direct", timeoutMs: 600_000 }),
  );
  if (mode === "kill") {
    await new Promise((r) => setTimeout(r, 1500));
    fleet.nodes[0].serve.process.kill("SIGKILL");
  }
  const results = await Promise.all(pulls);
  const seconds = (Date.now() - started) / 1000;
  results.forEach((r, i) => {
    if (r.code !== 0) throw new Error(`${fleet.nodes[i].name}: ${r.stderr.toString().trim()}`);
  });
  const line = { mode, seconds, upstreamBlobBytes: fleet.upstreamBlobBytes() };
  appendFileSync(env("FLEET_METRICS"), `${JSON.stringify(line)}\n`);
  process.stderr.write(
    `fleet ${mode}: ${seconds.toFixed(2)} s, upstream sent ${(line.upstreamBlobBytes / 2 ** 20).toFixed(0)} MiB\n`,
  );
} finally {
  await fleet.stop();
}
