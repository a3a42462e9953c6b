/**
 * The dist command line's entry: `--version`, then the command tree
 * (program.ts), and the one place where errors become `dist: <message>` and
 * an exit code.
 */
import { CommanderError } from "commander";
import { DistError, errorMessage } from "../errors.ts";
import { packageInfo, version } from "../version.ts";
import { UsageError } from "./args.ts";
import { buildProgram } from "./program.ts";

/** Exit codes: 1 for failures, 2 for usage errors (as the issue and POSIX tools do). */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export async function main(argv: string[]): Promise<number> {
  // a reader that stops early (`dist --help | head -1`) is not an error
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(0);
    throw err;
  });
  const first = argv[2];
  if (first === "-v" || first === "--version") {
    // only here: git describe costs a process start that other commands need not pay
    process.stdout.write(`dist ${packageInfo().name} ${version()}\n`);
    return 0;
  }
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.code === "commander.help") {
        return 0;
      }
      if (err.code === "commander.executeSubCommandAsync") return err.exitCode;
      return EXIT_USAGE;
    }
    const message = errorMessage(err).replace(/\s*\n\s*/g, " ");
    process.stderr.write(`dist: ${message}\n`);
    if (!(err instanceof DistError) && process.env.DIST_DEBUG_STACK && err instanceof Error) {
      process.stderr.write(`${err.stack}\n`);
    }
    return err instanceof UsageError ? EXIT_USAGE : EXIT_FAILURE;
  }
}

const code = await main(process.argv);
// let stdout drain before exiting, so piped output is never cut short
process.exitCode = code;
