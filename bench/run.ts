/**
 * Runs a bench suite: `$NODE bench/run.ts <suite> [--reps N]`.
 * Cases run interleaved, once per repetition each, so drift hits all alike;
 * the report gives the median, the fastest run, the ratio of medians to the
 * baseline and the peak RSS (via /usr/bin/time when present). Results go to
 * bench/results/<suite>.json and .md (and a timestamped JSON copy).
 *
 * DIST_COMPARE=/other/checkout/bin/dist adds, for every dist case, the same case
 * run by that dist (its root beside the case's, suffixed "-compare"), labelled
 * with DIST_COMPARE_LABEL (default "compare"): two versions in one run.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BenchCase, BenchContext, BenchSuite } from "./suite.ts";

const top = join(dirname(fileURLToPath(import.meta.url)), "..");
const TIME = "/usr/bin/time";

interface CaseResult {
  name: string;
  command: string;
  baseline: boolean;
  seconds: number[];
  median: number;
  min: number;
  ratio: number;
  /** Peak resident set of the command's processes, in KiB (null when unknown). */
  peakRssKiB: number | null;
}

function sh(command: string, env: NodeJS.ProcessEnv, what: string): void {
  const r = spawnSync("bash", ["-c", command], { env, stdio: ["ignore", "ignore", "pipe"] });
  if (r.status !== 0) throw new Error(`${what} failed (${r.status ?? r.signal}): ${r.stderr.toString().trim()}`);
}

/** A process's peak RSS in KiB (VmHWM), or null. */
function serverPeak(pid: string): number | null {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : null;
}

function timed(c: BenchCase, env: NodeJS.ProcessEnv, rssFile: string): { seconds: number; rss: number | null } {
  const server = c.serverPid ? env[c.serverPid] : undefined;
  if (c.serverPid && !server) throw new Error(`case "${c.name}": $${c.serverPid} is not set`);
  // writing 5 to clear_refs resets the peak to the current RSS
  if (server) writeFileSync(`/proc/${server}/clear_refs`, "5");
  const useTime = existsSync(TIME) && !server;
  const argv = useTime ? [TIME, "-f", "%M", "-o", rssFile, "bash", "-c", c.command] : ["bash", "-c", c.command];
  const start = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), { env, stdio: ["ignore", "ignore", "pipe"] });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (r.status !== 0)
    throw new Error(`case "${c.name}" failed (${r.status ?? r.signal}): ${r.stderr.toString().trim()}`);
  let rss: number | null = server ? serverPeak(server) : null;
  if (useTime) {
    const n = Number.parseInt(readFileSync(rssFile, "utf8").trim().split("\n").pop() ?? "", 10);
    rss = Number.isFinite(n) ? n : null;
  }
  return { seconds, rss };
}

/** The dist cases again, run by $DIST_COMPARE into roots of their own. */
export function withComparison(cases: BenchCase[], label: string): BenchCase[] {
  const out = [...cases];
  for (const c of cases) {
    if (c.baseline || !c.command.includes('"$DIST"')) continue;
    const root = /--root "([^"]+)"/.exec(c.command)?.[1];
    const swap = (s: string) => (root ? s.replaceAll(root, `${root}-compare`) : s);
    out.push({
      name: `${c.name} [${label}]`,
      command: swap(c.command).replaceAll('"$DIST"', '"$DIST_COMPARE"'),
      before: c.before === undefined ? undefined : swap(c.before),
    });
  }
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function markdown(suite: BenchSuite, results: CaseResult[], reps: number): string {
  const lines = [
    `### ${suite.name}: ${suite.description}`,
    "",
    `${reps} repetitions, ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, Node ${process.versions.node}, ${new Date().toISOString().slice(0, 10)}`,
    "",
    "| case | median (s) | fastest (s) | vs baseline | peak RSS |",
    "|---|---:|---:|---:|---:|",
  ];
  for (const r of results) {
    const rss = r.peakRssKiB === null ? "n/a" : `${(r.peakRssKiB / 1024).toFixed(0)} MiB`;
    const ratio = r.baseline ? "1.00× (baseline)" : `${r.ratio.toFixed(2)}×`;
    lines.push(
      `| ${r.name.replaceAll("|", "\\|")} | ${r.median.toFixed(2)} | ${r.min.toFixed(2)} | ${ratio} | ${rss} |`,
    );
  }
  return `${lines.join("\n")}\n`;
}

async function main(argv: string[]): Promise<void> {
  const name = argv[0];
  if (!name || name.startsWith("-")) {
    throw new Error("usage: $NODE bench/run.ts <suite> [--reps N]   (suites: files in bench/suites/)");
  }
  const repsArg = argv.indexOf("--reps");
  const suiteFile = join(top, "bench", "suites", `${name}.ts`);
  if (!existsSync(suiteFile)) throw new Error(`no suite "${name}" (expected ${suiteFile})`);
  const suite = (await import(suiteFile)).default as BenchSuite;
  const reps = repsArg >= 0 ? Number(argv[repsArg + 1]) : (suite.repetitions ?? 5);
  if (!Number.isInteger(reps) || reps < 1) throw new Error("--reps needs a positive integer");

  const ctx: BenchContext = { top, tmp: mkdtempSync(join(tmpdir(), `bench-${name}-`)), vars: {} };
  ctx.vars.TOP = top;
  ctx.vars.DIST = join(top, "bin", "dist");
  ctx.vars.TMP = ctx.tmp;
  try {
    process.stderr.write(`bench ${name}: setup\n`);
    await suite.setup?.(ctx);
    const compare = process.env.DIST_COMPARE;
    if (compare) ctx.vars.DIST_COMPARE = compare;
    const cases = compare
      ? withComparison(suite.cases(ctx), process.env.DIST_COMPARE_LABEL ?? "compare")
      : suite.cases(ctx);
    if (cases.filter((c) => c.baseline).length !== 1) throw new Error(`suite ${name} needs exactly one baseline case`);
    const env = { ...process.env, ...ctx.vars };
    const runs = new Map<string, { seconds: number[]; rss: number[] }>(
      cases.map((c) => [c.name, { seconds: [], rss: [] }]),
    );
    const rssFile = join(ctx.tmp, ".rss");
    for (let i = 0; i < reps; i++) {
      if (suite.beforeRepetition) sh(suite.beforeRepetition, env, `before repetition ${i + 1}`);
      for (const c of cases) {
        if (c.before) sh(c.before, env, `before "${c.name}"`);
        const { seconds, rss } = timed(c, env, rssFile);
        const run = runs.get(c.name)!;
        run.seconds.push(seconds);
        if (rss !== null) run.rss.push(rss);
        process.stderr.write(`  [${i + 1}/${reps}] ${c.name}: ${seconds.toFixed(2)} s\n`);
      }
    }
    const base = median(runs.get(cases.find((c) => c.baseline)!.name)!.seconds);
    const results: CaseResult[] = cases.map((c) => {
      const run = runs.get(c.name)!;
      const m = median(run.seconds);
      return {
        name: c.name,
        command: c.command,
        baseline: Boolean(c.baseline),
        seconds: run.seconds,
        median: m,
        min: Math.min(...run.seconds),
        ratio: m / base,
        peakRssKiB: run.rss.length ? Math.max(...run.rss) : null,
      };
    });
    const outDir = join(top, "bench", "results");
    mkdirSync(outDir, { recursive: true });
    const json = JSON.stringify(
      { suite: name, description: suite.description, date: new Date().toISOString(), repetitions: reps, results },
      null,
      2,
    );
    writeFileSync(join(outDir, `${name}.json`), `${json}\n`);
    writeFileSync(join(outDir, `${name}-${new Date().toISOString().replace(/[:.]/g, "-")}.json`), `${json}\n`);
    const md = markdown(suite, results, reps);
    writeFileSync(join(outDir, `${name}.md`), md);
    process.stdout.write(md);
  } finally {
    await suite.teardown?.(ctx);
    rmSync(ctx.tmp, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  try {
    await main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
