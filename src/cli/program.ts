/**
 * The dist command tree: global options, every command, and how options are
 * parsed. Each command reads the options between its name and its
 * subcommand's, or its first operand for `run` and `bundle` (commander's
 * positional options): so `dist run IMAGE ls -n` leaves `-n` to the
 * container's command, and `dist path -n` is path's own --name-only. The
 * options of a command's ancestors (the global ones, `--snapshotter` of
 * `dist snapshots`) still work after its name, as hidden copies, unless the
 * command has an option of that name itself; where one is given at several
 * levels, the last on the line wins (see effectiveOptions).
 */
import { Command, Help, Option } from "commander";
import { registerCommands } from "./commands.ts";
import { register as registerCompletion } from "./completion.ts";
import { effectiveOptions } from "./globals.ts";
import { setDebug } from "./log.ts";
import { PROGRESS_HELP, type ProgressMode, parseProgressMode, setProgressMode } from "./progress.ts";

export function buildProgram(): Command {
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
    .option("--progress <mode>", PROGRESS_HELP, parseProgressMode)
    .enablePositionalOptions()
    .configureHelp({
      // inherited copies are hidden: a command list says "[options]" only for a command with options of its own
      subcommandTerm(cmd) {
        const term = Help.prototype.subcommandTerm.call(this, cmd);
        return cmd.options.some((o) => !o.hidden) ? term : term.replace(" [options]", "");
      },
    })
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({
      outputError: (str, write) => write(`dist: ${str.replace(/^error: /, "")}`),
    });
  program.hook("preAction", (_program, action) => {
    const o = effectiveOptions(action);
    setDebug(Boolean(o.debug));
    setProgressMode(o.progress as ProgressMode | undefined);
  });
  registerCommands(program);
  // last: its completion reads the tree the others made
  registerCompletion(program);
  for (const cmd of allCommands(program)) {
    cmd.exitOverride();
    cmd.configureOutput({ outputError: (str, write) => write(`dist: ${str.replace(/^error: /, "")}`) });
    inheritOptions(cmd);
  }
  return program;
}

/** Parents before their children, so each inherits its parent's copies too. */
function* allCommands(cmd: Command): Generator<Command> {
  for (const sub of cmd.commands) {
    yield sub;
    yield* allCommands(sub);
  }
}

/** Hidden copies of the parent's options (its own and those it inherited), without defaults. */
function inheritOptions(cmd: Command): void {
  const parent = cmd.parent;
  if (!parent) return;
  const own = (flag: string | undefined) =>
    flag !== undefined && cmd.options.some((o) => o.long === flag || o.short === flag);
  for (const o of parent.options) {
    if (o.negate || !o.long || own(o.long)) continue;
    const value = /[<[][^>\]]*[>\]]/.exec(o.flags)?.[0];
    const flags = [o.short && !own(o.short) ? `${o.short}, ` : "", o.long, value ? ` ${value}` : ""].join("");
    const copy = new Option(flags, o.description).hideHelp();
    if (o.parseArg) copy.argParser(o.parseArg);
    cmd.addOption(copy);
  }
}
