import { spawnSync } from "node:child_process";

/**
 * What a bench suite module (bench/suites/<name>.ts) exports as `default`:
 * commands timed side by side, one of them the baseline the others are
 * compared with. Commands run under `bash -c` with the context's variables
 * in their environment ($TOP, $DIST, $TMP and whatever setup adds).
 */
export interface BenchContext {
  /** The repository's top directory. */
  top: string;
  /** The scratch directory for this run (removed afterwards). */
  tmp: string;
  /** Environment variables given to every command; setup may add to it. */
  vars: Record<string, string>;
}

export interface BenchCase {
  name: string;
  /** Shell command to time. */
  command: string;
  /** Untimed shell command run before each repetition (clean up the last one). */
  before?: string;
  /** The case the others' ratios are computed against (exactly one). */
  baseline?: boolean;
  /**
   * The variable holding the pid of a long-running server the case talks to:
   * the peak RSS reported is that server's during the case (its VmHWM, reset
   * before), not the command's.
   */
  serverPid?: string;
}

export interface BenchSuite {
  name: string;
  description: string;
  repetitions?: number;
  /** Untimed shell command run before each repetition's cases (clean up the last repetition). */
  beforeRepetition?: string;
  setup?(ctx: BenchContext): Promise<void> | void;
  cases(ctx: BenchContext): BenchCase[];
  teardown?(ctx: BenchContext): Promise<void> | void;
}

/** Runs a setup script under bash with the context's variables; its trimmed stdout, or an error naming `what`. */
export function shellOutput(ctx: BenchContext, what: string, script: string, ...args: string[]): string {
  const r = spawnSync("bash", ["-c", script, ...args], { env: { ...process.env, ...ctx.vars }, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${what} failed: ${r.stderr}`);
  return r.stdout.trim();
}

/** Writes `size` (head -c syntax, e.g. 64M) random bytes to `path`; returns their sha256 digest. */
export function randomFile(ctx: BenchContext, path: string, size: string): string {
  const hex = shellOutput(
    ctx,
    `generating ${path}`,
    `head -c ${size} /dev/urandom > "$0" && sha256sum "$0" | cut -d' ' -f1`,
    path,
  );
  return `sha256:${hex}`;
}

/**
 * A bash function `stop` for a bench script: kills the process whose pid is in the file
 * `pidFile` (a shell word, e.g. "$CD/pid"), waits up to 10 s for it to go, removes the
 * file, then runs `after` (more shell).
 */
export function stopFunction(pidFile: string, after = ""): string {
  return `stop() {
  if [ -f ${pidFile} ]; then
    pid=$(cat ${pidFile}); kill "$pid" 2>/dev/null
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f ${pidFile}
  fi${after ? `\n  ${after}` : ""}
}`;
}
