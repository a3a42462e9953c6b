/** `dist daemon`: serve the store over containerd's gRPC API on a unix socket. */
import type { Command } from "commander";
import { InvalidArgumentError } from "../errors.ts";
import { globals, parseDuration } from "./globals.ts";

const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

export function register(program: Command): void {
  const cmd = program
    .command("daemon")
    .description("serve the store at --root over containerd's gRPC API on the unix socket --address")
    .option("--log-level <level>", "trace, debug, info, warn or error (JSON lines on stderr)", "info")
    .option("--grace <duration>", "how long in-flight calls may finish on SIGTERM/SIGINT", "5s")
    .action(async (opts: { logLevel: string; grace: string }, c: Command) => {
      const g = globals(c);
      if (!LEVELS.includes(opts.logLevel)) {
        throw new InvalidArgumentError(`invalid --log-level "${opts.logLevel}": expected ${LEVELS.join(", ")}`);
      }
      const { defaultSocket, runDaemon } = await import("../services/daemon.ts");
      await runDaemon({
        root: g.root,
        address: g.address ?? defaultSocket(),
        logLevel: g.debug ? "debug" : opts.logLevel,
        grace: parseDuration(opts.grace),
      });
      // stopped cleanly: a helper thread left running (a shared worker) must not keep the process up
      setTimeout(() => process.exit(process.exitCode ?? 0), 200).unref();
    });
  cmd.addHelpText(
    "after",
    `
The socket (mode 0660) defaults to /run/dist/dist.sock as root, else
$XDG_RUNTIME_DIR/dist/dist.sock. Only one daemon may serve a root at a time.
Services: content, images, namespaces, leases, snapshots, diff, version,
introspection, events (containerd.services.*.v1), so ctr and containerd
clients work against it; dist itself uses it with --address.

Examples:
  dist daemon --root /var/lib/dist --address /run/dist/dist.sock
  ctr --address /run/dist/dist.sock content ls
  ctr --address /run/dist/dist.sock images pull --plain-http 127.0.0.1:5000/busybox:latest
  dist --address /run/dist/dist.sock images ls`,
  );
}
