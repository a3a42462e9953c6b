/**
 * The dist command line: global options, command registration and the one
 * place where errors become `dist: <message>` and an exit code.
 */
import { Command, CommanderError } from "commander";
import { DistError, errorMessage } from "../errors.ts";
import { setDebug } from "../log.ts";
import { packageInfo, version } from "../version.ts";
import { registerCommands } from "./commands.ts";

/** Exit codes: 1 for failures, 2 for usage errors (as the issue and POSIX tools do). */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

function buildProgram(): Command {
  const program = new Command("dist");
  program
    .description("dist: container image distribution toolkit (content store, registries, layers, snapshots)")
    .option("-v, --version", "print the version")
    .option("--root <dir>", "root directory of the store (default /var/lib/dist as root, else $XDG_DATA_HOME/dist)")
    .option("-n, --namespace <ns>", "namespace for images, labels and leases", undefined)
    .option("--timeout <duration>", "overall deadline for the command (e.g. 30s, 5m)")
    .option("-a, --address <socket>", "use the daemon on this unix socket instead of the embedded store")
    .option("--connect-timeout <duration>", "how long to wait for the daemon socket")
    .option("--debug", "print debug messages")
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({
      outputError: (str, write) => write(`dist: ${str.replace(/^error: /, "")}`),
    });
  program.hook("preAction", (cmd) => setDebug(Boolean(cmd.optsWithGlobals().debug)));
  registerCommands(program);
  for (const cmd of allCommands(program)) {
    cmd.exitOverride();
    cmd.configureOutput({ outputError: (str, write) => write(`dist: ${str.replace(/^error: /, "")}`) });
  }
  return program;
}

function* allCommands(cmd: Command): Generator<Command> {
  for (const sub of cmd.commands) {
    yield sub;
    yield* allCommands(sub);
  }
}

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
    return err instanceof DistError && err.code === "InvalidArgument" && (err as { usage?: boolean }).usage
      ? EXIT_USAGE
      : EXIT_FAILURE;
  }
}

const code = await main(process.argv);
// let stdout drain before exiting, so piped output is never cut short
process.exitCode = code;
