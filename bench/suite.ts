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
}

export interface BenchSuite {
  name: string;
  description: string;
  repetitions?: number;
  setup?(ctx: BenchContext): Promise<void> | void;
  cases(ctx: BenchContext): BenchCase[];
  teardown?(ctx: BenchContext): Promise<void> | void;
}
