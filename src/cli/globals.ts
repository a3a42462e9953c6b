/** Global options shared by every command, and the defaults they fall back to. */
import { homedir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { InvalidArgumentError } from "../errors.ts";
import { config } from "./config.ts";

export interface GlobalOptions {
  root: string;
  namespace: string;
  /** Overall deadline for the command, in milliseconds. */
  timeout?: number;
  debug: boolean;
  /** Unix socket of a dist or containerd daemon; embedded store when absent. */
  address?: string;
  connectTimeout?: number;
}

export function defaultRoot(): string {
  if (process.env.DIST_ROOT) return process.env.DIST_ROOT;
  const configured = config().root;
  if (configured) return configured;
  if (process.getuid?.() === 0) return "/var/lib/dist";
  const data = process.env.XDG_DATA_HOME || join(homedir(), ".local", "share");
  return join(data, "dist");
}

/** Parses "1.5s", "200ms", "2m", "1h" or a bare number of seconds into milliseconds. */
export function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s.trim());
  if (!m) throw new InvalidArgumentError(`invalid duration "${s}" (examples: 500ms, 30s, 5m, 1h)`);
  const n = Number(m[1]);
  const unit = m[2] ?? "s";
  const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit] ?? 1000;
  return Math.round(n * scale);
}

export function parseSize(s: string): number {
  if (!/^\d+$/.test(s)) throw new InvalidArgumentError(`invalid size "${s}": expected a number of bytes`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`invalid size "${s}": too large`);
  return n;
}

/**
 * The options given to a command and its ancestors. One given at several
 * levels (`dist --root A images ls --root B`) takes the value nearest the
 * command, which is the last on the line: commander's optsWithGlobals prefers
 * the outermost.
 */
export function effectiveOptions(cmd: Command): Record<string, unknown> {
  const chain: Command[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) chain.unshift(c);
  return Object.assign({}, ...chain.map((c) => c.opts()));
}

export function globals(cmd: Command): GlobalOptions {
  const o = effectiveOptions(cmd);
  return {
    root: (o.root as string | undefined) ?? defaultRoot(),
    namespace: (o.namespace as string | undefined) ?? (process.env.DIST_NAMESPACE || config().namespace || "default"),
    timeout: o.timeout === undefined ? undefined : parseDuration(String(o.timeout)),
    debug: Boolean(o.debug),
    address: (o.address as string | undefined) ?? (process.env.DIST_ADDRESS || undefined),
    connectTimeout: o.connectTimeout === undefined ? undefined : parseDuration(String(o.connectTimeout)),
  };
}

/** An AbortSignal that fires on --timeout and on SIGINT/SIGTERM. */
export function commandSignal(g: GlobalOptions): AbortSignal {
  const ctrl = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => ctrl.abort(new Error(`interrupted by ${sig}`));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const signals = [ctrl.signal];
  if (g.timeout !== undefined && g.timeout > 0) signals.push(AbortSignal.timeout(g.timeout));
  return AbortSignal.any(signals);
}
