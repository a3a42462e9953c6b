/**
 * The OCI runtime, runc, driven as a child process: `run` (foreground or
 * detached), `state`, `list`, `kill` and `delete` under a state root of our
 * own. crun is not used: it refuses hybrid cgroup hosts.
 */
import { type ChildProcess, execFile, type StdioOptions, spawn } from "node:child_process";
import { accessSync, constants, statSync } from "node:fs";
import { delimiter, isAbsolute, join, resolve } from "node:path";
import { promisify } from "node:util";
import { FailedPreconditionError, NotFoundError } from "../errors.ts";

const execFileAsync = promisify(execFile);

function isExecutable(p: string): boolean {
  try {
    if (!statSync(p).isFile()) return false;
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first executable file `name` in `dirs`. */
export function findExecutable(name: string, dirs: readonly string[]): string | undefined {
  for (const d of dirs) {
    const p = join(d, name);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

/**
 * The runtime binary: `path` when given (a path, or a name looked up on PATH),
 * else `runc` on PATH (and the sbin directories, which a non-login root shell may lack).
 */
export function findRuntime(path?: string, envPath = process.env.PATH ?? ""): string {
  const name = path ?? "runc";
  if (name.includes("/")) {
    const p = isAbsolute(name) ? name : resolve(name);
    if (isExecutable(p)) return p;
    throw new NotFoundError(`runtime ${p} is not an executable file (runc comes in the Debian package "runc")`);
  }
  const found = findExecutable(name, [
    ...envPath.split(delimiter).filter(Boolean),
    "/usr/local/sbin",
    "/usr/sbin",
    "/sbin",
  ]);
  if (found) return found;
  throw new NotFoundError(
    `OCI runtime "${name}" not found on PATH: install the Debian package "runc" (apt-get install runc) or pass --runtime PATH`,
  );
}

export interface RuncState {
  id: string;
  pid: number;
  status: "creating" | "created" | "running" | "paused" | "stopped" | string;
  bundle: string;
  created: string;
}

export interface RunOptions {
  detach?: boolean;
  stdio?: StdioOptions;
  /** Put runc in its own process group (terminal signals then reach only us). */
  processGroup?: boolean;
  /** runc's own log (JSON lines), so its errors can be told from the container's output. */
  log?: string;
}

/** One line of runc's stderr (its logrus format), reduced to the message. */
function runcMessage(stderr: string): string {
  const lines = stderr.trim().split("\n").filter(Boolean);
  const last = lines[lines.length - 1] ?? "";
  const m = /msg="((?:[^"\\]|\\.)*)"/.exec(last);
  return (m ? m[1].replace(/\\"/g, '"') : last).trim();
}

export class Runc {
  readonly binary: string;
  readonly root: string;
  /** runc --rootless true: in a user namespace, no cgroups unless it can make them. */
  readonly rootless: boolean;
  constructor(binary: string, root: string, opts: { rootless?: boolean } = {}) {
    this.binary = binary;
    this.root = root;
    this.rootless = Boolean(opts.rootless);
  }

  #args(args: string[], log?: string): string[] {
    return [
      "--root",
      this.root,
      ...(this.rootless ? ["--rootless", "true"] : []),
      ...(log ? ["--log", log, "--log-format", "json"] : []),
      ...args,
    ];
  }

  async #exec(args: string[]): Promise<string> {
    try {
      const { stdout } = await execFileAsync(this.binary, this.#args(args), { maxBuffer: 16 << 20 });
      return stdout;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      const msg = runcMessage(e.stderr ?? "") || e.message;
      if (/container does not exist|not exist/.test(msg)) {
        throw new NotFoundError(`runc ${args[0]}: ${msg}`, { cause: err });
      }
      throw new FailedPreconditionError(`runc ${args[0]} failed: ${msg}`, { cause: err });
    }
  }

  /** Starts `runc run`; foreground unless detach. The caller waits for the child. */
  run(id: string, bundle: string, opts: RunOptions = {}): ChildProcess {
    const args = ["run", "--bundle", bundle];
    if (opts.detach) args.push("--detach");
    args.push(id);
    return spawn(this.binary, this.#args(args, opts.log), {
      stdio: opts.stdio ?? "inherit",
      detached: Boolean(opts.processGroup),
    });
  }

  /** The container's state, undefined when runc does not know it. */
  async state(id: string): Promise<RuncState | undefined> {
    try {
      return JSON.parse(await this.#exec(["state", id])) as RuncState;
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  async list(): Promise<RuncState[]> {
    const out = (await this.#exec(["list", "--format", "json"])).trim();
    if (!out || out === "null") return [];
    return JSON.parse(out) as RuncState[];
  }

  async kill(id: string, signal: string, opts: { all?: boolean } = {}): Promise<void> {
    await this.#exec(["kill", ...(opts.all ? ["--all"] : []), id, signal]);
  }

  async delete(id: string, opts: { force?: boolean } = {}): Promise<void> {
    await this.#exec(["delete", ...(opts.force ? ["--force"] : []), id]);
  }
}
