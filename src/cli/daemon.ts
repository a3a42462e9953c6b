/** `dist daemon`: serve the store over containerd's gRPC API on a unix socket. */
import type { Command } from "commander";
import { InvalidArgumentError } from "../errors.ts";
import { collect } from "./args.ts";
import { globals, parseDuration } from "./globals.ts";
import { addRegistryFlags, registryOptions } from "./registry-flags.ts";

interface DaemonFlags extends Record<string, unknown> {
  logLevel: string;
  grace: string;
  group?: string;
  snapshotterAlias?: string[];
  gcDelay: string;
}

const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

export function register(program: Command): void {
  const cmd = program
    .command("daemon")
    .description("serve the store at --root over containerd's gRPC API on the unix socket --address")
    .option("--log-level <level>", "trace, debug, info, warn or error (JSON lines on stderr)", "info")
    .option("--grace <duration>", "how long in-flight calls may finish on SIGTERM/SIGINT", "5s")
    .option("--group <name|gid>", "members of this group may use the socket (0660); else its owner only (0600)")
    .option(
      "--snapshotter-alias <name=overlay|native>",
      "another name for a snapshotter, as containerd's proxy plugin NAME sends it (repeatable; default dist=the default snapshotter)",
      collect,
    )
    .option(
      "--gc-delay <duration|off>",
      "collect the garbage this long after a delete (image, lease, snapshot, blob) or a lease's expiry; off: only on a sync delete (ctr images rm --sync)",
      "100ms",
    );
  // the registry client of containerd's remote-snapshotter fast path
  addRegistryFlags(cmd).action(async (opts: DaemonFlags, c: Command) => {
    const g = globals(c);
    if (!LEVELS.includes(opts.logLevel)) {
      throw new InvalidArgumentError(`invalid --log-level "${opts.logLevel}": expected ${LEVELS.join(", ")}`);
    }
    const { parseSnapshotterAliases } = await import("../services/snapshotter-names.ts");
    const aliases = opts.snapshotterAlias ? parseSnapshotterAliases(opts.snapshotterAlias) : undefined;
    const registry = registryOptions(opts);
    const { defaultSocket, runDaemon } = await import("../services/daemon.ts");
    await runDaemon({
      root: g.root,
      address: g.address ?? defaultSocket(),
      logLevel: g.debug ? "debug" : opts.logLevel,
      grace: parseDuration(opts.grace),
      group: opts.group,
      snapshotterAliases: aliases,
      gcDelayMs: opts.gcDelay === "off" ? false : parseDuration(opts.gcDelay),
      registry,
    });
    // stopped cleanly: a helper thread left running (a shared worker) must not keep the process up
    setTimeout(() => process.exit(process.exitCode ?? 0), 200).unref();
  });
  cmd.addHelpText(
    "after",
    `
The socket defaults to /run/dist/dist.sock as root, else
$XDG_RUNTIME_DIR/dist/dist.sock. It is the daemon user's alone (0600) unless
--group names a group whose members may use it (0660, as containerd's
[grpc] gid); its directory is then made searchable (0711) for them. The root
is made private (0700). Only one daemon may serve a root at a time.
Services: content, images, namespaces, leases, snapshots, diff, version,
introspection, events (containerd.services.*.v1), so ctr and containerd
clients work against it; dist itself uses it with --address.

As containerd's snapshotter ([proxy_plugins.dist] type = "snapshot" and
address = the socket, in containerd's config.toml), containerd sends the
plugin's name and no namespace: the daemon serves --snapshotter-alias
NAME (default dist) in its own namespace NAME. A layer containerd's
unpacker asks for with the remote-snapshotter labels (the CRI plugin with
disable_snapshot_annotations = false) is fetched and unpacked by the
daemon with the registry flags above, and containerd skips it.

Examples:
  dist daemon --root /var/lib/dist --address /run/dist/dist.sock
  dist daemon --hosts-dir /etc/containerd/certs.d --snapshotter-alias dist=overlay
  dist daemon --group dist          # members of group dist use it without root
  ctr --address /run/dist/dist.sock content ls
  ctr --address /run/dist/dist.sock images pull --plain-http 127.0.0.1:5000/busybox:latest
  dist --address /run/dist/dist.sock images ls`,
  );
}
