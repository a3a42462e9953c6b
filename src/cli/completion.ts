/**
 * Shell completion, generated from the command tree (program.ts) as it is at
 * each keystroke, so no list here goes stale: `dist completion bash|zsh|fish`
 * prints a small script that asks `dist __complete -- WORDS...` for the
 * candidates of the last word, one per line (`value<TAB>description`), then a
 * directive line: `:files`, `:dirs` (let the shell complete paths) or `:none`.
 *
 * What completes: subcommands (and their aliases' owners), options (a
 * command's own and those of its parents, which work after its name), option
 * values (commander's choices, --snapshotter, --progress, --output,
 * --platform; paths for options that take a file or directory), image names
 * from the store for arguments described as image names or references, and
 * container ids for arguments described as container ids.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Argument, Command, Option } from "commander";
import { errorMessage } from "../errors.ts";
import { UsageError } from "./args.ts";
import { PROGRESS_MODES } from "./progress.ts";

export interface Candidate {
  value: string;
  description?: string;
}

export type Directive = "none" | "files" | "dirs";

export interface Completion {
  candidates: Candidate[];
  directive: Directive;
}

/** What completion reads from the store; errors are ignored (a store that is not there completes nothing). */
export interface CompletionSource {
  images(ctx: { root?: string; namespace?: string }): Promise<string[]>;
  containers(ctx: { root?: string }): Promise<string[]>;
}

/** Values of options whose argument is one of a few words. */
const OPTION_VALUES: Record<string, readonly string[]> = {
  "--snapshotter": ["overlay", "native"],
  "--progress": PROGRESS_MODES,
  "--output": ["table", "json"],
  "--platform": ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/386", "linux/ppc64le", "linux/s390x"],
  "--log-level": ["trace", "debug", "info", "warn", "error", "fatal", "silent"],
  "--signal": ["SIGTERM", "SIGKILL", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"],
};

const IMAGE_ARGUMENT = /\bimage (names?|references?)\b|\b(existing|local) image\b|\bimages of the store\b/;
const CONTAINER_ARGUMENT = /\bcontainer ids?\b/;

const visible = (cmds: readonly Command[]) => cmds.filter((c) => !(c as unknown as { _hidden?: boolean })._hidden);

function takesValue(o: Option): boolean {
  return o.required || o.optional;
}

/** The options usable after `cmd`'s name: its own, then its parents' (visible ones), each once. */
function optionsOf(cmd: Command): Option[] {
  const out: Option[] = [];
  const seen = new Set<string>();
  for (let c: Command | null = cmd; c; c = c.parent) {
    for (const o of c.options) {
      const name = o.long ?? o.short ?? "";
      if (o.hidden || seen.has(name)) continue;
      seen.add(name);
      out.push(o);
    }
  }
  return out;
}

function findOption(cmd: Command, flag: string): Option | undefined {
  for (let c: Command | null = cmd; c; c = c.parent) {
    const o = c.options.find((x) => x.long === flag || x.short === flag);
    if (o) return o;
  }
  return undefined;
}

/** The values of an option: its choices or ours, else paths for a file or directory, else nothing. */
function optionValues(o: Option, prefix: string): Completion {
  const long = o.long ?? "";
  const choices = (o as unknown as { argChoices?: string[] }).argChoices ?? OPTION_VALUES[long];
  if (choices)
    return { candidates: choices.filter((v) => v.startsWith(prefix)).map((value) => ({ value })), directive: "none" };
  if (/<dir/.test(o.flags)) return { candidates: [], directive: "dirs" };
  if (/<(file|path|socket|cert)/.test(o.flags) || /file|directory|path/i.test(o.description)) {
    return { candidates: [], directive: "files" };
  }
  return { candidates: [], directive: "none" };
}

/** The global options given so far that say which store to read (--root, --namespace). */
function storeContext(values: Map<string, string>): { root?: string; namespace?: string } {
  return { root: values.get("--root"), namespace: values.get("--namespace") };
}

/**
 * The completion of the last of `words` (the words after `dist`; the last is
 * the one being typed, possibly empty).
 */
export async function complete(
  program: Command,
  words: readonly string[],
  source: CompletionSource,
): Promise<Completion> {
  let cmd = program;
  let operands = 0;
  let afterDashes = false;
  const values = new Map<string, string>();
  const done = words.slice(0, -1);
  const cur = words[words.length - 1] ?? "";
  for (let i = 0; i < done.length; i++) {
    const w = done[i];
    if (afterDashes) {
      operands++;
      continue;
    }
    if (w === "--") {
      afterDashes = true;
      continue;
    }
    if (w.startsWith("-") && w.length > 1) {
      const eq = w.indexOf("=");
      const o = findOption(cmd, eq > 0 ? w.slice(0, eq) : w);
      if (o && takesValue(o) && eq < 0 && i + 1 < done.length) values.set(o.long ?? "", done[++i]);
      else if (o && eq > 0) values.set(o.long ?? "", w.slice(eq + 1));
      continue;
    }
    const sub = operands === 0 ? cmd.commands.find((c) => c.name() === w || c.aliases().includes(w)) : undefined;
    if (sub) cmd = sub;
    else operands++;
  }

  // the value of an option: `--opt VALUE` or `--opt=VALUE`
  const prev = done[done.length - 1];
  const prevOption =
    prev && !afterDashes && prev.startsWith("-") && !prev.includes("=") ? findOption(cmd, prev) : undefined;
  if (prevOption && takesValue(prevOption)) return optionValues(prevOption, cur);
  if (!afterDashes && cur.startsWith("--") && cur.includes("=")) {
    const flag = cur.slice(0, cur.indexOf("="));
    const o = findOption(cmd, flag);
    if (!o || !takesValue(o)) return { candidates: [], directive: "none" };
    const c = optionValues(o, cur.slice(flag.length + 1));
    return { ...c, candidates: c.candidates.map((x) => ({ ...x, value: `${flag}=${x.value}` })) };
  }
  if (!afterDashes && cur.startsWith("-")) {
    const flags = optionsOf(cmd).flatMap((o) =>
      [o.long, o.short]
        .filter((f): f is string => f !== undefined)
        .map((value) => ({ value, description: o.description })),
    );
    flags.push({ value: "--help", description: "display help for command" });
    return { candidates: flags.filter((f) => f.value.startsWith(cur)), directive: "none" };
  }

  const candidates: Candidate[] = [];
  if (operands === 0) {
    for (const sub of visible(cmd.commands)) {
      if (sub.name().startsWith(cur)) candidates.push({ value: sub.name(), description: sub.description() });
    }
  }
  const args = cmd.registeredArguments as readonly Argument[];
  const last = args[args.length - 1];
  const arg = operands < args.length ? args[operands] : last?.variadic ? last : undefined;
  if (!arg) return { candidates, directive: "none" };
  const ctx = storeContext(values);
  const from = async (list: () => Promise<string[]>) => {
    for (const value of await list().catch(() => [])) if (value.startsWith(cur)) candidates.push({ value });
  };
  if (IMAGE_ARGUMENT.test(arg.description)) await from(() => source.images(ctx));
  else if (CONTAINER_ARGUMENT.test(arg.description)) await from(() => source.containers(ctx));
  else if (candidates.length === 0) return { candidates, directive: "files" };
  return { candidates, directive: "none" };
}

/** Image names and container ids from the embedded store at the root the words name (else the default one). */
export const storeSource: CompletionSource = {
  async images(ctx) {
    const [{ defaultRoot }, { config }, { openImageStore }] = await Promise.all([
      import("./globals.ts"),
      import("./config.ts"),
      import("./open.ts"),
    ]);
    const root = ctx.root ?? defaultRoot();
    // a TAB never makes a store: a root typed on the line may be a typo
    if (!existsSync(join(root, "metadata.db"))) return [];
    const namespace = ctx.namespace ?? (process.env.DIST_NAMESPACE || config().namespace || "default");
    const images = await openImageStore({ root, namespace, debug: false });
    return (await images.list()).map((i) => i.name);
  },
  async containers(ctx) {
    const [{ defaultRoot }, { listRecords }] = await Promise.all([
      import("./globals.ts"),
      import("../run/containers.ts"),
    ]);
    return listRecords(ctx.root ?? defaultRoot()).map((r) => r.id);
  },
};

export const SHELLS = ["bash", "zsh", "fish"] as const;

/** The script that hooks `dist __complete` into a shell. */
export function completionScript(shell: string): string {
  if (shell === "bash") return BASH;
  if (shell === "zsh") return ZSH;
  if (shell === "fish") return FISH;
  throw new UsageError(`unknown shell "${shell}": expected ${SHELLS.join(", ")}`);
}

const BASH = `# dist completion for bash: source <(dist completion bash), or save it as
# /etc/bash_completion.d/dist or ~/.local/share/bash-completion/completions/dist
_dist_complete() {
  local line=\${COMP_LINE:0:COMP_POINT} cur prefix directive c
  local -a words=() out=()
  read -ra words <<<"$line"
  [[ $line == *[[:space:]] ]] && words+=("")
  cur=\${words[\${#words[@]}-1]}
  local IFS=$'\\n'
  out=($("\${words[0]}" __complete -- "\${words[@]:1}" 2>/dev/null)) || return 0
  [[ \${#out[@]} -gt 0 ]] || return 0
  directive=\${out[\${#out[@]}-1]}
  unset 'out[\${#out[@]}-1]'
  # bash's word ends at the last ":" or "=" (COMP_WORDBREAKS): offer what follows it
  prefix=\${cur%"\${cur##*[:=]}"}
  COMPREPLY=()
  for c in "\${out[@]}"; do
    c=\${c%%$'\\t'*}
    [[ $c == "$cur"* ]] && COMPREPLY+=("\${c#"$prefix"}")
  done
  case $directive in
    :files) compopt -o default 2>/dev/null ;;
    :dirs) compopt -o dirnames 2>/dev/null ;;
  esac
  return 0
}
complete -F _dist_complete dist
`;

const ZSH = `#compdef dist
# dist completion for zsh: source <(dist completion zsh), or save it as _dist in a directory of $fpath
_dist() {
  local -a lines vals shown
  local directive l
  lines=("\${(@f)$(\${words[1]} __complete -- "\${(@)words[2,CURRENT]}" 2>/dev/null)}")
  (( \${#lines} )) || return 1
  directive=\${lines[-1]}
  for l in "\${(@)lines[1,-2]}"; do
    vals+=("\${l%%$'\\t'*}")
    if [[ $l == *$'\\t'* ]]; then shown+=("\${l%%$'\\t'*}  -- \${l#*$'\\t'}"); else shown+=("$l"); fi
  done
  case $directive in
    :files) _files ;;
    :dirs) _files -/ ;;
    *) (( \${#vals} )) && compadd -Q -l -d shown -- "\${vals[@]}" ;;
  esac
}
if (( $+functions[compdef] )); then compdef _dist dist; fi
`;

const FISH = `# dist completion for fish: dist completion fish > ~/.config/fish/completions/dist.fish
function __dist_complete
    set -l tokens (commandline -opc) (commandline -ct)
    set -l out ($tokens[1] __complete -- $tokens[2..-1] 2>/dev/null)
    test (count $out) -gt 0; or return
    switch $out[-1]
        case :files :dirs
            __fish_complete_path (commandline -ct)
        case '*'
            printf '%s\\n' $out[1..-2]
    end
end
complete -c dist -f -a '(__dist_complete)'
`;

export function register(program: Command): void {
  program
    .command("completion")
    .description("print a shell completion script: commands, options and image names (bash, zsh or fish)")
    .argument("<shell>", "bash, zsh or fish")
    .addHelpText(
      "after",
      `
The script asks dist itself what to complete, so it follows the commands of
this version; image names come from the store (--root and -n on the line are
honoured).

Examples:
  source <(dist completion bash)                                  # this shell
  dist completion bash > ~/.local/share/bash-completion/completions/dist
  dist completion zsh > "\${fpath[1]}/_dist"
  dist completion fish > ~/.config/fish/completions/dist.fish`,
    )
    .action((shell: string) => {
      process.stdout.write(completionScript(shell));
    });

  program
    .command("__complete", { hidden: true })
    .description("the candidates for the last of WORDS (the shell scripts call it)")
    .argument("[words...]")
    .allowUnknownOption()
    .helpOption(false)
    .action(async (words: string[]) => {
      let result: Completion;
      try {
        result = await complete(program, words.length > 0 ? words : [""], storeSource);
      } catch (err) {
        // a completion never prints an error into the user's line
        process.stderr.write(`dist: completion: ${errorMessage(err)}\n`);
        result = { candidates: [], directive: "none" };
      }
      const lines = result.candidates.map((c) => (c.description ? `${c.value}\t${c.description}` : c.value));
      process.stdout.write(`${[...lines, `:${result.directive}`].join("\n")}\n`);
    });
}
