/**
 * Starting `dist daemon` as a child process for tests, and running ctr
 * against it. Everything lives in a temp dir the caller removes.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { socketLive } from "../../src/services/daemon.ts";

export const TOP = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const DIST = join(TOP, "bin", "dist");

export interface DaemonProcess {
  sock: string;
  root: string;
  proc: ChildProcess;
  /** Everything the daemon printed on stderr so far (JSON log lines). */
  logs(): string;
  /** SIGTERM, then wait for exit; returns the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

export async function startDaemonProcess(
  root: string,
  sock: string,
  args: string[] = [],
  env?: NodeJS.ProcessEnv,
): Promise<DaemonProcess> {
  const proc = spawn(DIST, ["--root", root, "daemon", "--address", sock, "--grace", "2s", ...args], {
    stdio: ["ignore", "ignore", "pipe"],
    cwd: TOP,
    env: env && { ...process.env, ...env },
  });
  let err = "";
  proc.stderr?.on("data", (b: Buffer) => {
    err += b.toString();
  });
  const exited = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));
  let dead = false;
  void exited.then(() => {
    dead = true;
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (dead) throw new Error(`dist daemon exited at start:\n${err}`);
    if (err.includes('"msg":"listening"') && (await socketLive(sock))) break;
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`dist daemon did not listen on ${sock} within 30s:\n${err}`);
    }
    await sleep(50);
  }
  return {
    sock,
    root,
    proc,
    logs: () => err,
    exited,
    async stop(signal = "SIGTERM") {
      if (!dead) proc.kill(signal);
      const t = setTimeout(() => proc.kill("SIGKILL"), 15_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}
