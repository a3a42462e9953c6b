/**
 * `dist snapshots ls|info|rm|mounts|mount|umount|usage|prepare|view|commit`:
 * the snapshotters' records and trees, with `--snapshotter` as on every
 * command that touches snapshots.
 */
import type { Command } from "commander";
import { formatBytes } from "../format.ts";
import type { Mount, SnapshotInfo, Snapshotter } from "../snapshots/snapshotter.ts";
import { forEachItem, parseLabels } from "./args.ts";
import { effectiveOptions, globals } from "./globals.ts";
import { openSnapshotter } from "./open.ts";
import { outputFormat, outputOption, printJson, printTable } from "./table.ts";

/** `--snapshotter <name>`, for every command that touches snapshots. */
export function addSnapshotterFlag(cmd: Command): Command {
  return cmd.option(
    "--snapshotter <name>",
    "snapshotter: overlay or native (default: overlay when root and supported, else native; env DIST_SNAPSHOTTER)",
  );
}

export function snapshotterFor(c: Command): Promise<Snapshotter> {
  const o = effectiveOptions(c) as { snapshotter?: string };
  return openSnapshotter(globals(c), o.snapshotter);
}

export async function printMounts(mounts: Mount[], target: string): Promise<void> {
  const { mountCommand } = await import("../snapshots/mount.ts");
  for (const m of mounts) process.stdout.write(`${mountCommand(m, target)}\n`);
}

function kindName(i: SnapshotInfo): string {
  return i.kind === "committed" ? "Committed" : i.kind === "view" ? "View" : "Active";
}

export function register(program: Command): void {
  const snapshots = program
    .command("snapshots")
    .alias("snapshot")
    .description("manage snapshots: the unpacked filesystems of images, named by ChainID");
  addSnapshotterFlag(snapshots);
  snapshots.addHelpText(
    "after",
    `
Examples:
  dist snapshots ls
  dist snapshots --snapshotter native usage
  dist snapshots prepare my-rootfs sha256:<chainid> --target /mnt/rootfs
  dist snapshots mount /mnt/rootfs my-rootfs && dist snapshots umount /mnt/rootfs`,
  );

  snapshots
    .command("ls")
    .alias("list")
    .description("list snapshots: key, parent and kind")
    .addOption(outputOption())
    .addHelpText("after", "\nExamples:\n  dist snapshots ls\n  dist snapshots --snapshotter native ls --output json")
    .action(async (opts: { output?: string }, c: Command) => {
      const fmt = outputFormat(opts.output);
      const sn = await snapshotterFor(c);
      const all: SnapshotInfo[] = [];
      await sn.walk((i) => {
        all.push(i);
      });
      if (fmt === "json") {
        printJson(all);
        return;
      }
      printTable(
        ["KEY", "PARENT", "KIND"],
        all.map((i) => [i.name, i.parent ?? "", kindName(i)]),
      );
    });

  snapshots
    .command("info")
    .description("show one snapshot's record as JSON")
    .argument("<key>", "snapshot key or name")
    .addHelpText("after", "\nExamples:\n  dist snapshots info sha256:<chainid>")
    .action(async (key: string, _o: unknown, c: Command) => {
      const sn = await snapshotterFor(c);
      printJson(await sn.stat(key));
    });

  snapshots
    .command("rm")
    .aliases(["remove", "delete", "del"])
    .description("remove snapshots (children must be removed first)")
    .argument("<keys...>", "snapshot keys or names")
    .addHelpText("after", "\nExamples:\n  dist snapshots rm my-rootfs\n  dist snapshots --snapshotter native rm a b c")
    .action(async (keys: string[], _o: unknown, c: Command) => {
      const sn = await snapshotterFor(c);
      await forEachItem(keys, (k) => sn.remove(k));
    });

  snapshots
    .command("mounts")
    .description("print the mount commands that mount an active snapshot or view at TARGET")
    .argument("<target>", "where the mount would go")
    .argument("<key>", "active snapshot or view")
    .addOption(outputOption("table (mount commands) or json"))
    .addHelpText(
      "after",
      '\nExamples:\n  dist snapshots mounts /mnt/rootfs my-rootfs\n  sudo sh -c "$(dist snapshots mounts /mnt/rootfs my-rootfs)"',
    )
    .action(async (target: string, key: string, opts: { output?: string }, c: Command) => {
      const fmt = outputFormat(opts.output);
      const sn = await snapshotterFor(c);
      const mounts = await sn.mounts(key);
      if (fmt === "json") printJson(mounts);
      else await printMounts(mounts, target);
    });

  snapshots
    .command("mount")
    .description("mount an active snapshot or view at TARGET (needs root)")
    .argument("<target>", "directory to mount on (created if missing)")
    .argument("<key>", "active snapshot or view")
    .addHelpText(
      "after",
      "\nExamples:\n  dist snapshots view look sha256:<chainid>\n  sudo dist snapshots mount /mnt/look look",
    )
    .action(async (target: string, key: string, _o: unknown, c: Command) => {
      const sn = await snapshotterFor(c);
      const { mountAll } = await import("../snapshots/mount.ts");
      mountAll(await sn.mounts(key), target);
    });

  snapshots
    .command("umount")
    .alias("unmount")
    .description("unmount what `dist snapshots mount` mounted at TARGET")
    .argument("<target>", "mount point")
    .option("--detach", "lazy unmount (MNT_DETACH)")
    .addHelpText("after", "\nExamples:\n  sudo dist snapshots umount /mnt/look")
    .action(async (target: string, opts: { detach?: boolean }) => {
      const { unmount } = await import("../snapshots/mount.ts");
      unmount(target, { detach: opts.detach });
    });

  snapshots
    .command("usage")
    .alias("du")
    .description("disk usage of snapshots: own bytes and inodes (all snapshots without KEY)")
    .argument("[keys...]", "snapshot keys or names")
    .option("-b, --bytes", "sizes in bytes")
    .addOption(outputOption())
    .addHelpText("after", "\nExamples:\n  dist snapshots usage\n  dist snapshots usage -b sha256:<chainid>")
    .action(async (keys: string[], opts: { bytes?: boolean; output?: string }, c: Command) => {
      const fmt = outputFormat(opts.output);
      const sn = await snapshotterFor(c);
      let names = keys;
      if (names.length === 0) {
        names = [];
        await sn.walk((i) => {
          names.push(i.name);
        });
      }
      const rows: { key: string; size: number; inodes: number }[] = [];
      await forEachItem(names, async (k) => rows.push({ key: k, ...(await sn.usage(k)) }));
      if (fmt === "json") {
        printJson(rows);
        return;
      }
      printTable(
        ["KEY", "SIZE", "INODES"],
        rows.map((r) => [r.key, opts.bytes ? String(r.size) : formatBytes(r.size), String(r.inodes)]),
      );
    });

  for (const kind of ["prepare", "view"] as const) {
    snapshots
      .command(kind)
      .description(
        kind === "prepare"
          ? "create an active (writable) snapshot KEY on PARENT"
          : "create a read-only view KEY of PARENT",
      )
      .argument("<key>", "new snapshot key")
      .argument("[parent]", "committed parent (a ChainID); empty when absent")
      .option("--target <dir>", "print the mount commands for this target")
      .option("--label <key=value...>", "labels to set")
      .addHelpText(
        "after",
        `\nExamples:\n  dist snapshots ${kind} work sha256:<chainid> --target /mnt/work\n  dist snapshots ${kind} scratch`,
      )
      .action(
        async (key: string, parent: string | undefined, opts: { target?: string; label?: string[] }, c: Command) => {
          const sn = await snapshotterFor(c);
          const labels = parseLabels(opts.label);
          const mounts =
            kind === "prepare" ? await sn.prepare(key, parent, { labels }) : await sn.view(key, parent, { labels });
          if (opts.target) await printMounts(mounts, opts.target);
        },
      );
  }

  snapshots
    .command("commit")
    .description("commit active snapshot KEY as NAME (it becomes a read-only parent)")
    .argument("<name>", "name of the committed snapshot")
    .argument("<key>", "active snapshot to commit")
    .option("--label <key=value...>", "labels to set")
    .addHelpText("after", "\nExamples:\n  dist snapshots commit my-layer work")
    .action(async (name: string, key: string, opts: { label?: string[] }, c: Command) => {
      const sn = await snapshotterFor(c);
      await sn.commit(name, key, { labels: parseLabels(opts.label) });
    });
}
