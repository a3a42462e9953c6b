/**
 * Runs the suites binary (see build.ts) against a daemon's socket and reads its verbose
 * output through test2json into one result per test: "TestContent/Writer",
 * "TestSnapshotter/native/Basic", ... → pass, fail or skip, with what the test printed.
 */
import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { run } from "../integration/fixtures/exec.ts";
import type { SuitesBinaries } from "./build.ts";

export type Outcome = "pass" | "fail" | "skip";

export interface CaseResult {
  outcome: Outcome;
  /** The test's own lines (t.Log, t.Fatal, ...), without the directory dumps of failed cases. */
  output: string;
}

export interface SuitesRun {
  /** Every test and subtest that finished, by its full Go name. */
  cases: Map<string, CaseResult>;
  /** The binary's exit code and the last lines it printed outside any test (panics, timeouts). */
  code: number;
  tail: string;
}

/** One line of `go tool test2json` (cmd/test2json's TestEvent). */
interface TestEvent {
  Action: string;
  Test?: string;
  Output?: string;
}

// containerd's testutil.DumpDirOnFailure lists the case's temp dir: noise in a report
const DIR_DUMP = /^\s+helpers\.go:\d+: [-dlcbps][-rwxsStT]{9}\s/;

export function parseEvents(json: string): Omit<SuitesRun, "code"> {
  const cases = new Map<string, CaseResult>();
  const output = new Map<string, string[]>();
  const outside: string[] = [];
  for (const line of json.split("\n")) {
    if (!line.startsWith("{")) continue;
    const e = JSON.parse(line) as TestEvent;
    if (e.Action === "output") {
      const text = e.Output ?? "";
      if (!e.Test) outside.push(text);
      else if (!DIR_DUMP.test(text) && !/^(=== |\s*--- )/.test(text)) {
        output.set(e.Test, [...(output.get(e.Test) ?? []), text]);
      }
    } else if (e.Test && (e.Action === "pass" || e.Action === "fail" || e.Action === "skip")) {
      cases.set(e.Test, { outcome: e.Action, output: (output.get(e.Test) ?? []).join("").trimEnd() });
    }
  }
  return { cases, tail: outside.slice(-20).join("").trimEnd() };
}

export interface RunOptions {
  /** The daemon's unix socket. */
  address: string;
  /** Snapshotter names the proxy sends, one suite run each. */
  snapshotters: readonly string[];
  /** Where the suites make their temporary directories (and mount snapshots). */
  tmpDir: string;
}

export async function runSuites(bin: SuitesBinaries, opts: RunOptions): Promise<SuitesRun> {
  const work = mkdtempSync(join(opts.tmpDir, "suites-"));
  const r = await run(
    bin.test2json,
    [
      "-t",
      bin.suites,
      "-test.v",
      "-test.timeout=4m",
      "-address",
      opts.address,
      "-snapshotters",
      opts.snapshotters.join(","),
    ],
    { cwd: work, env: { ...process.env, TMPDIR: work }, timeoutMs: 300_000 },
  );
  return { code: r.code, ...parseEvents(r.stdout.toString()) };
}
