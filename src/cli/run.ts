/**
 * `dist bundle`, `dist run`, `dist ps`, `dist kill`, `dist rm`: running pulled
 * images with runc. Thin: flags become SpecOptions and the work is in src/run.
 */
import { randomBytes } from "node:crypto";
import type { Command } from "commander";
import { formatAge } from "../format.ts";
import type { SpecOptions } from "../oci/spec.ts";
import { asUsage, collect, reportItemError, UsageError } from "./args.ts";
import { config } from "./config.ts";
import { effectiveOptions, globals } from "./globals.ts";
import { log } from "./log.ts";
import { holdCommandLease, openContentStore, openImageStore, openSnapshotter, withContentStore } from "./open.ts";
import { addPlatformFlags, platformMatcher } from "./platform-flags.ts";
import { addSnapshotterFlag, snapshotterFor } from "./snapshots.ts";
import { outputFormat, outputOption, printJson, printTable } from "./table.ts";

// the run library pulls in unpacking and mounting: loaded only by the commands that use it
const runLib = () => import("../run/run.ts");
const bundleLib = () => import("../run/bundle.ts");
const containersLib = () => import("../run/containers.ts");

/** A container id as the user typed it: invalid is a usage error. */
async function containerId(id: string): Promise<string> {
  const { validateContainerId } = await containersLib();
  return asUsage(() => validateContainerId(id));
}

interface SpecFlags {
  env?: string[];
  cwd?: string;
  user?: string;
  tty?: boolean;
  entrypoint?: string;
  hostname?: string;
  readOnly?: boolean;
  platform?: string[];
}

/**
 * A command that makes a container's process from an image (`bundle`, `run`):
 * its operands, the flags that shape the process, and options after the image
 * left to the container's command (`dist run IMAGE ls -a -n`), as with docker.
 */
function imageCommand(program: Command, name: string, description: string, operands: string[][]): Command {
  const cmd = program.command(name).description(description);
  for (const [operand, about] of operands) cmd.argument(operand, about);
  addPlatformFlags(cmd);
  addSnapshotterFlag(cmd);
  return cmd
    .passThroughOptions()
    .option("-e, --env <KEY=VALUE>", "set an environment variable (repeatable; KEY alone takes our own value)", collect)
    .option("-w, --cwd <dir>", "working directory inside the container (default: the image's)")
    .option("-u, --user <user>", "name, uid, name:group or uid:gid, looked up in the image (default: the image's)")
    .option("-t, --tty", "allocate a terminal")
    .option("--entrypoint <cmd>", 'replace the image\'s entrypoint (and drop its Cmd); "" clears it')
    .option("--hostname <name>", "the container's host name (default: its id)")
    .option("--read-only", "mount the root filesystem read-only");
}

/** docker's -e: KEY=VALUE, or KEY alone for the value in our own environment (dropped when unset). */
function envEntries(entries: string[] = []): string[] {
  const out: string[] = [];
  for (const e of entries) {
    if (e.includes("=")) out.push(e);
    else if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(e))
      throw new UsageError(`invalid --env "${e}": expected KEY=VALUE or KEY`);
    else if (process.env[e] !== undefined) out.push(`${e}=${process.env[e]}`);
  }
  return out;
}

function specOptions(o: SpecFlags, command: string[]): SpecOptions {
  const s: SpecOptions = { env: envEntries(o.env) };
  // "--" ends our options; with pass-through parsing commander leaves it in place
  const args = command[0] === "--" ? command.slice(1) : command;
  if (args.length > 0) s.args = args;
  if (o.entrypoint !== undefined) s.entrypoint = o.entrypoint === "" ? [] : [o.entrypoint];
  if (o.cwd !== undefined) s.cwd = o.cwd;
  if (o.tty) s.tty = true;
  if (o.hostname !== undefined) s.hostname = o.hostname;
  if (o.readOnly) s.readonlyRootfs = true;
  return s;
}

function registerBundle(program: Command): void {
  const cmd = imageCommand(
    program,
    "bundle",
    "write an OCI runtime bundle (config.json and rootfs/) for an image, for runc or any OCI runtime",
    [
      ["<ref>", "image reference (pulled already), or the bundle directory with --remove"],
      ["[dir]", "bundle directory (created; must be empty if it exists)"],
      ["[command...]", "command and arguments replacing the image's Cmd"],
    ],
  );
  cmd
    .option("--copy", "copy the snapshot into rootfs/ instead of mounting it (the default without root)")
    .option("--remove", "remove the bundle at <ref>: unmount rootfs/, drop its snapshot, delete the directory")
    .addHelpText(
      "after",
      `
As root, rootfs/ is the image's snapshot mounted in place (overlay, or a bind
of a native snapshot) and stays mounted until "dist bundle --remove DIR".
Without root it is a copy of a native snapshot. Options for the command go
after "--".

Examples:
  dist bundle docker.io/library/redis:latest /tmp/redis
  runc run --bundle /tmp/redis redis1
  dist bundle --remove /tmp/redis
  dist bundle -e DEBUG=1 --user nobody 127.0.0.1:5000/tiny/busybox:oci /tmp/bb -- sh -c 'id; env'`,
    )
    .action(async (ref: string, dir: string | undefined, command: string[], o: SpecFlags & Record<string, unknown>) => {
      const g = globals(cmd);
      const { createBundle, readBundleRecord, removeBundle } = await bundleLib();
      if (o.remove) {
        if (dir !== undefined) throw new UsageError("bundle --remove takes only the bundle directory");
        const rec = readBundleRecord(ref);
        const snapshotter = rec.snapshotKey ? await openSnapshotter(g, rec.snapshotter) : undefined;
        await removeBundle(ref, snapshotter);
        return;
      }
      if (dir === undefined) throw new UsageError("bundle needs an image reference and a directory");
      await holdCommandLease(g);
      const deps = {
        content: await openContentStore(g),
        images: await openImageStore(g),
        snapshotter: await snapshotterFor(cmd),
        log,
      };
      const r = await createBundle(deps, {
        ref,
        dir,
        matcher: await platformMatcher(o),
        user: o.user,
        spec: specOptions(o, command),
        copy: Boolean(o.copy) || undefined,
      });
      process.stdout.write(`${r.dir}\n`);
    });
}

interface RunFlags extends SpecFlags {
  rm?: boolean;
  id?: string;
  detach?: boolean;
  interactive?: boolean;
  runtime?: string;
  runtimeRoot?: string;
}

/** The snapshotter of a rootless run: the one asked for in the environment or config file, else native. */
function defaultRootlessSnapshotter(): string {
  return process.env.DIST_SNAPSHOTTER || config().snapshotter || "native";
}

function registerRun(program: Command): void {
  const cmd = imageCommand(program, "run", "run a pulled image's command in a container with runc", [
    ["<ref>", "image reference (pulled already)"],
    ["[command...]", "command and arguments: replace the image's Cmd (its Entrypoint stays)"],
  ]);
  cmd
    .option("--id <id>", "container id (default: random)")
    .option("--rm", "remove the container (snapshot, bundle, state) when it exits")
    .option("-d, --detach", "start it in the background and print its id (output goes to a log file)")
    .option("-i, --interactive", "keep stdin attached")
    .option("--runtime <path>", "OCI runtime binary (default: runc on PATH)")
    .option("--runtime-root <dir>", "runc state directory (default /run/dist/runc as root, else <root>/runc)")
    .addHelpText(
      "after",
      `
Arguments after the image replace its Cmd and keep its Entrypoint, as docker
does. The exit status is the container's (128+n when a signal n killed it;
125 when runc could not start it, 126/127 when the command cannot run).
stdout and stderr stay apart; SIGINT, SIGTERM, SIGHUP and SIGQUIT are
forwarded to the container. Needs runc (Debian package "runc"). Without root
it runs rootless, as podman does: in a user namespace where the user is root
(and the user's /etc/subuid and /etc/subgid ranges are ids 1 and up, through
newuidmap, Debian package "uidmap"; only root exists without them), with
runc --rootless and no cgroups.

Examples:
  dist pull docker.io/library/redis:latest
  dist run --rm docker.io/library/redis:latest
  dist run --rm --id hello 127.0.0.1:5000/tiny/busybox:oci sh -c 'echo hi; exit 3'
  dist run --rm -t -i --user nobody -e FOO=bar -w /tmp 127.0.0.1:5000/tiny/busybox:oci sh
  dist run -d --id web docker.io/library/nginx:latest && dist ps && dist rm -f web`,
    )
    .action(async (ref: string, command: string[], o: RunFlags) => {
      const g = globals(cmd);
      const rootlessLib = await import("../run/rootless.ts");
      const rootless = rootlessLib.rootlessContext();
      if (process.getuid?.() !== 0) {
        // without root: this very command again, as root of a user namespace of its own
        const plan = rootlessLib.rootlessPlan();
        log.debug(
          plan.single
            ? `rootless: ${plan.user} is the only user of the container (${plan.single})`
            : `rootless: ${plan.user}, with subordinate ids ${plan.subuid?.start}+${plan.subuid?.count}`,
        );
        // decided here: inside, as root, the defaults would be root's
        const snapshotter = (effectiveOptions(cmd).snapshotter as string | undefined) ?? defaultRootlessSnapshotter();
        rootlessLib.reexecRootless(plan, ["--root", g.root, ...process.argv.slice(2)], {
          DIST_SNAPSHOTTER: snapshotter,
        });
      }
      const { createContainer, defaultRuntimeRoot, runDetached, runForeground } = await runLib();
      const { findRuntime } = await import("../run/runc.ts");
      if (o.detach && o.tty)
        throw new UsageError("--tty with --detach is not supported (no console socket): drop one of them");
      if (o.detach && o.rm)
        throw new UsageError("--rm with --detach is not supported: dist rm the container after it exits");
      const id = await containerId(o.id ?? randomBytes(8).toString("hex"));
      const runtime = findRuntime(o.runtime);
      await holdCommandLease(g);
      const deps = {
        content: await openContentStore(g),
        images: await openImageStore(g),
        snapshotter: await snapshotterFor(cmd),
        log,
      };
      // until runc runs, a signal undoes the creation instead of leaving half a container
      const creating = new AbortController();
      const interrupt = (sig: NodeJS.Signals) => creating.abort(new Error(`interrupted by ${sig}`));
      for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, interrupt);
      const { record } = await createContainer(deps, {
        signal: creating.signal,
        root: g.root,
        namespace: g.namespace,
        id,
        ref,
        matcher: await platformMatcher(o),
        runtime,
        runtimeRoot: o.runtimeRoot ?? defaultRuntimeRoot(g.root),
        user: o.user,
        spec: specOptions(o, command),
        detach: Boolean(o.detach),
        autoRemove: Boolean(o.rm),
        rootless,
      }).finally(() => {
        for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.off(sig, interrupt);
      });
      if (o.detach) {
        await runDetached(g.root, record, deps.snapshotter, log);
        process.stdout.write(`${id}\n`);
        return;
      }
      process.exitCode = await runForeground(g.root, record, deps.snapshotter, { interactive: o.interactive, log });
    });
}

function registerPs(program: Command): void {
  const cmd = program
    .command("ps")
    .description("list containers made by dist run, with their status")
    .option("-q, --quiet", "print only the ids")
    .addOption(outputOption())
    .addHelpText(
      "after",
      `
Examples:
  dist ps
  dist ps -q | xargs -r dist rm -f
  dist ps --output json | jq '.[] | select(.status == "running") | .id'`,
    )
    .action(async (o: { quiet?: boolean; output?: string }) => {
      const g = globals(cmd);
      const format = outputFormat(o.output);
      const { containerStatus } = await runLib();
      const { listRecords } = await containersLib();
      const rows = await Promise.all(
        listRecords(g.root).map(async (r) => ({ record: r, ...(await containerStatus(r)) })),
      );
      if (o.quiet) {
        for (const r of rows) process.stdout.write(`${r.record.id}\n`);
        return;
      }
      if (format === "json") {
        printJson(
          rows.map(({ record: r, status, pid }) => ({
            id: r.id,
            image: r.image,
            command: r.args,
            status,
            pid,
            createdAt: r.createdAt,
            snapshotter: r.snapshotter,
            snapshotKey: r.snapshotKey,
            bundle: r.bundle,
            log: r.log,
          })),
        );
        return;
      }
      printTable(
        ["CONTAINER", "IMAGE", "COMMAND", "CREATED", "STATUS", "PID"],
        rows.map(({ record: r, status, pid }) => [
          r.id,
          r.image,
          JSON.stringify(r.args.join(" ").slice(0, 40)),
          `${formatAge(Date.now() - Date.parse(r.createdAt))} ago`,
          status,
          pid && status !== "stopped" ? String(pid) : "-",
        ]),
      );
    });
}

function registerKill(program: Command): void {
  const cmd = program
    .command("kill")
    .description("send a signal to a running container (default: the image's StopSignal, else SIGTERM)")
    .argument("<id...>", "container ids")
    .option("-s, --signal <signal>", "signal name or number")
    .option("--all", "signal every process of the container, not only its first")
    .addHelpText(
      "after",
      `
Examples:
  dist kill web
  dist kill -s KILL web
  dist kill -s SIGHUP --all web worker`,
    )
    .action(async (ids: string[], o: { signal?: string; all?: boolean }) => {
      const g = globals(cmd);
      const { killContainer, signalName } = await runLib();
      const signal = o.signal === undefined ? undefined : asUsage(() => signalName(o.signal as string));
      for (const id of ids) await killContainer(g.root, await containerId(id), signal, { all: o.all });
    });
}

/**
 * `dist rm` is the container command (docker's and nerdctl's meaning); a content
 * command that also answers to `rm` as an alias keeps its other names.
 */
function registerRm(program: Command): void {
  const cmd = program
    .command("rm")
    .description("remove containers (runc state, rootfs mount, snapshot, bundle), or blobs given by digest")
    .argument("<id...>", "container ids, or blob digests (as dist delete)")
    .option("-f, --force", "kill running containers first")
    .addHelpText(
      "after",
      `
Examples:
  dist rm web
  dist rm sha256:010c454d55e53059beaba4044116ea4636f8dd8181e975d893931c7e7204fffa
  dist rm -f web worker
  dist ps -q | xargs -r dist rm -f`,
    )
    .action(async (ids: string[], o: { force?: boolean }) => {
      const g = globals(cmd);
      // the seed's `dist rm DIGEST...` deletes blobs; a container id never contains ":"
      const digests = ids.filter((id) => id.includes(":"));
      if (digests.length === ids.length) {
        const { deleteBlobs } = await import("../content/delete.ts");
        return withContentStore(g, (store) =>
          deleteBlobs(store, ids, {
            onDeleted: (d) => process.stdout.write(`${d}\n`),
            onError: (_d, err) => reportItemError(err),
          }),
        );
      }
      if (digests.length > 0) throw new UsageError("dist rm takes either container ids or blob digests, not both");
      const { removeContainerOrRemains } = await runLib();
      for (const id of ids) {
        // removing needs no mount: a rootless container's overlay snapshot is removed outside its namespace
        const open = (name?: string, namespace?: string) =>
          openSnapshotter({ ...g, namespace: namespace ?? g.namespace }, name, { mountable: false });
        await removeContainerOrRemains(g.root, await containerId(id), open, {
          force: o.force,
        });
        process.stdout.write(`${id}\n`);
      }
    });
}

export function register(program: Command): void {
  registerBundle(program);
  registerRun(program);
  registerPs(program);
  registerKill(program);
  registerRm(program);
}
