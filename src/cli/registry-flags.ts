/** Registry flags shared by fetch-object, fetch, pull and push, and the options they make. */
import type { Command } from "commander";
import { InvalidArgumentError } from "../errors.ts";
import { systemHostsDirs } from "../remotes/docker/certsd.ts";
import type { RegistryOptions } from "../remotes/docker/options.ts";
import { collect } from "./args.ts";
import { config } from "./config.ts";
import { parseDuration } from "./globals.ts";
import { log } from "./log.ts";

/** `--plain-http`, `-u/--user`, `--tlscacert` (repeatable), `-k/--skip-verify`, `--hosts-dir`, `--stall-timeout`. */
export function addRegistryFlags(cmd: Command): Command {
  return cmd
    .option("--plain-http", "talk plain HTTP to the registry (no TLS)")
    .option("-u, --user <user[:password]>", "registry credentials; asks for the password when it is left out")
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
  if (typeof opts.user === "string") {
    const user = opts.user;
    const i = user.indexOf(":");
    const name = i < 0 ? user : user.slice(0, i);
    if (name === "") throw new InvalidArgumentError("--user: empty user name");
    out.user = user;
    if (i < 0) {
      if (!process.stdin.isTTY) {
        throw new InvalidArgumentError(
          `--user ${name}: no password given and stdin is not a terminal to ask for it; use --user ${name}:PASSWORD`,
        );
      }
      out.promptPassword = (u) => readPasswordFromTty(`Password for ${u}: `);
    }
  }
  return out;
}
