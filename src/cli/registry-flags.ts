/** Registry flags shared by fetch-object, fetch, pull and push, and the options they make. */
import type { Command } from "commander";
import { InvalidArgumentError } from "../errors.ts";
import { systemHostsDirs } from "../remotes/docker/certsd.ts";
import type { RegistryOptions } from "../remotes/docker/options.ts";
import { collect, UsageError } from "./args.ts";
import { config } from "./config.ts";
import { parseDuration } from "./globals.ts";
import { log } from "./log.ts";

/** `--plain-http`, `-u/--user`, `--password-stdin`, `--tlscacert` (repeatable), `-k/--skip-verify`, `--hosts-dir`, `--stall-timeout`. */
export function addRegistryFlags(cmd: Command): Command {
  return cmd
    .option("--plain-http", "talk plain HTTP to the registry (no TLS)")
    .option("-u, --user <user[:password]>", "registry credentials; asks for the password when it is left out")
    .option("--password-stdin", "read the password of --user USER from stdin (other users can see a command line)")
    .option("--tlscacert <file>", "trust this CA certificate (PEM) for the registry (repeatable)", collect)
    .option("-k, --skip-verify", "do not verify the registry's TLS certificate")
    .option(
      "--hosts-dir <dir>",
      "containerd-style hosts directory: <dir>/<host[:port]>/hosts.toml (mirrors, CAs); default /etc/{dist,containerd,docker}/certs.d",
    )
    .option("--stall-timeout <duration>", "fail a transfer when no byte arrives for this long (default 30s)");
}

/** Reads a password from the terminal without echoing it. */
export function readPasswordFromTty(prompt: string): Promise<string> {
  const stdin = process.stdin;
  return new Promise((resolve, reject) => {
    process.stderr.write(prompt);
    let value = "";
    const wasRaw = stdin.isRaw;
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding("utf8");
    const done = (err?: Error) => {
      stdin.setRawMode(wasRaw);
      stdin.pause();
      stdin.removeListener("data", onData);
      process.stderr.write("\n");
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === "\r" || ch === "\n" || ch === "\u0004") {
          done();
          return;
        }
        if (ch === "\u0003") {
          done(new InvalidArgumentError("password prompt interrupted"));
          return;
        }
        if (ch === "\u007f" || ch === "\b") value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on("data", onData);
  });
}

/** The longest password --password-stdin reads: a token, not a stream. */
const MAX_PASSWORD = 64 * 1024;

/** All of stdin, less one final line break (as `docker login --password-stdin` reads it). */
export async function readPasswordFromStdin(stdin: AsyncIterable<Buffer | string> = process.stdin): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    const b = Buffer.from(chunk);
    size += b.length;
    if (size > MAX_PASSWORD)
      throw new InvalidArgumentError(`--password-stdin: more than ${MAX_PASSWORD} bytes on stdin`);
    chunks.push(b);
  }
  const password = Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
  if (password === "") throw new InvalidArgumentError("--password-stdin: no password on stdin");
  return password;
}

/** RegistryOptions from the parsed flags of a command that called addRegistryFlags. */
export function registryOptions(opts: Record<string, unknown>): RegistryOptions {
  const out: RegistryOptions = {
    onWarning: (msg) => log.debug(msg),
    onDebug: (msg) => log.debug(msg),
  };
  if (opts.plainHttp) out.plainHttp = true;
  if (opts.skipVerify) out.skipVerify = true;
  if (Array.isArray(opts.tlscacert) && opts.tlscacert.length > 0) out.tlsCaCert = opts.tlscacert.map(String);
  // as nerdctl: without --hosts-dir, the system's (dist's, containerd's, docker's certs.d)
  out.hostsDir = typeof opts.hostsDir === "string" ? opts.hostsDir : (config().hostsDir ?? systemHostsDirs());
  if (opts.stallTimeout !== undefined) {
    const ms = parseDuration(String(opts.stallTimeout));
    if (ms <= 0) throw new InvalidArgumentError(`--stall-timeout ${opts.stallTimeout}: must be more than 0`);
    out.stallTimeoutMs = ms;
  }
  if (opts.passwordStdin && typeof opts.user !== "string") {
    throw new UsageError("--password-stdin needs --user USER: whose password it is");
  }
  if (typeof opts.user === "string") {
    const user = opts.user;
    const i = user.indexOf(":");
    const name = i < 0 ? user : user.slice(0, i);
    if (name === "") throw new InvalidArgumentError("--user: empty user name");
    out.user = user;
    if (i >= 0 && opts.passwordStdin) {
      throw new UsageError(`--password-stdin with --user ${name}:PASSWORD: give the password one way`);
    }
    if (i >= 0) {
      log.warn(
        `a password on the command line can be seen by other users (ps, /proc) and stays in shell history: use --user ${name} --password-stdin`,
      );
    } else if (opts.passwordStdin) {
      out.promptPassword = () => readPasswordFromStdin();
    } else {
      if (!process.stdin.isTTY) {
        throw new InvalidArgumentError(
          `--user ${name}: no password given and stdin is not a terminal to ask for it; use --password-stdin`,
        );
      }
      out.promptPassword = (u) => readPasswordFromTty(`Password for ${u}: `);
    }
  }
  return out;
}
