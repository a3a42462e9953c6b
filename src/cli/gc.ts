/**
 * `dist gc` (collect the garbage of the root), `dist df` (disk usage) and
 * `dist leases ls|create|rm` (as ctr has them), over the embedded root: a
 * daemon collects its own (after deletes, and `ctr images rm --sync`).
 */
import type { Command } from "commander";
import { formatBytes } from "../format.ts";
import type { CollectResult, RemovedKind } from "../gc/collect.ts";
import type { UsageRow } from "../gc/df.ts";
import { collect, forEachItem, parseLabels, UsageError } from "./args.ts";
import { commandSignal, type GlobalOptions, globals, parseDuration } from "./globals.ts";
import { embeddedRoot } from "./open.ts";
import { outputFormat, outputOption, printJson, printTable } from "./table.ts";

const KINDS: RemovedKind[] = ["content", "snapshot", "ingest", "lease"];

async function metadataOf(g: GlobalOptions, what: string) {
  if (g.address) {
    throw new UsageError(
      `${what} works on a root (--root); a daemon collects its own garbage (after deletes, and on \`ctr images rm --sync\`)`,
    );
  }
  const { openMetadata } = await import("../metadata/metadata.ts");
  return openMetadata(embeddedRoot(g));
}

/** Prints what a collection removed: per kind, counts and bytes, then the problems it met. */
export function printCollected(r: CollectResult, format: "table" | "json"): void {
  if (format === "json") {
    printJson(r);
    return;
  }
  printTable(
    ["KIND", r.dryRun ? "WOULD REMOVE" : "REMOVED", "BYTES"],
    KINDS.map((k) => [k, String(r.totals[k].count), formatBytes(r.totals[k].bytes)]),
  );
  for (const p of r.problems) process.stderr.write(`dist: gc: ${p}\n`);
}

/** Collects the garbage of g's root: what `dist gc` and `dist rmi --prune` run. */
export async function collectRoot(g: GlobalOptions, opts: { dryRun?: boolean } = {}): Promise<CollectResult> {
  const md = await metadataOf(g, "dist gc");
  const { collectGarbage } = await import("../gc/collect.ts");
  return collectGarbage(md, { dryRun: opts.dryRun, signal: commandSignal(g) });
}

function registerGc(program: Command): void {
  program
    .command("gc")
    .description("remove what nothing references: blobs, snapshots, stale ingests, expired leases")
    .option("--dry-run", "say what would be removed, remove nothing")
    .addOption(outputOption())
    .addHelpText(
      "after",
      `
Roots are images, live leases, gc.root labels, active snapshots (containers)
and ingests in progress; what their labels reference is kept (containerd's
model, every namespace of the root). Problems met (a label naming nothing, a
cycle, a blob whose file is gone) are reported on stderr, once each.

Examples:
  dist gc --dry-run
  dist gc
  dist gc --output json | jq '.totals'`,
    )
    .action(async (opts: { dryRun?: boolean; output?: string }, c: Command) => {
      const format = outputFormat(opts.output);
      printCollected(await collectRoot(globals(c), { dryRun: opts.dryRun }), format);
    });
}

function registerDf(program: Command): void {
  program
    .command("df")
    .description("disk usage: images, content, snapshots and containers (total, in use, reclaimable)")
    .addOption(outputOption())
    .addHelpText(
      "after",
      `
Every namespace of the root. RECLAIMABLE is what \`dist gc\` would free (for
images: what deleting those no container uses, then \`dist gc\`, would free).

Examples:
  dist df
  dist df --output json | jq '.content.reclaimable'`,
    )
    .action(async (opts: { output?: string }, c: Command) => {
      const format = outputFormat(opts.output);
      const g = globals(c);
      const md = await metadataOf(g, "dist df");
      const { diskUsage } = await import("../gc/df.ts");
      const df = await diskUsage(md, { signal: commandSignal(g) });
      if (format === "json") {
        printJson(df);
        return;
      }
      const row = (name: string, r: UsageRow) => [
        name,
        String(r.count),
        String(r.inUse),
        formatBytes(r.bytes),
        formatBytes(r.reclaimable),
      ];
      printTable(
        ["TYPE", "TOTAL", "IN USE", "SIZE", "RECLAIMABLE"],
        [
          row("Images", df.images),
          row("Content", df.content),
          row("Snapshots", df.snapshots),
          row("Containers", df.containers),
        ],
      );
    });
}

function registerLeases(program: Command): void {
  const leases = program.command("leases").alias("lease").description("leases: what they hold is never collected");
  leases
    .command("ls", { isDefault: true })
    .alias("list")
    .description("list the namespace's leases")
    .option("-q, --quiet", "print only ids")
    .addOption(outputOption())
    .action(async (opts: { quiet?: boolean; output?: string }, c: Command) => {
      const format = outputFormat(opts.output);
      const g = globals(c);
      const lm = (await metadataOf(g, "dist leases")).leases(g.namespace);
      const list = lm.list();
      if (opts.quiet) {
        for (const l of list) process.stdout.write(`${l.id}\n`);
        return;
      }
      if (format === "json") {
        printJson(
          list.map((l) => ({
            id: l.id,
            createdAt: l.createdAt.toISOString(),
            labels: l.labels,
            resources: lm.listResources(l.id),
          })),
        );
        return;
      }
      printTable(
        ["ID", "CREATED AT", "LABELS"],
        list.map((l) => [
          l.id,
          l.createdAt.toISOString(),
          Object.entries(l.labels)
            .map(([k, v]) => `${k}=${v}`)
            .join(",") || "-",
        ]),
      );
    });
  leases
    .command("create")
    .description("create a lease (what is written under it, e.g. by ctr --lease, stays until it goes)")
    .option("--id <id>", "the lease's id (default: a random one)")
    .option("-x, --expires <duration>", "expire after this long (e.g. 30m, 24h): containerd.io/gc.expire")
    .option("--label <key=value>", "a label (repeatable)", collect)
    .addOption(outputOption())
    .addHelpText(
      "after",
      `
Examples:
  dist leases create --id build-42 --expires 2h
  dist leases create --label containerd.io/gc.flat=true`,
    )
    .action(async (opts: { id?: string; expires?: string; label?: string[]; output?: string }, c: Command) => {
      const format = outputFormat(opts.output);
      const g = globals(c);
      const labels = parseLabels(opts.label);
      if (opts.expires !== undefined) {
        const ms = parseDuration(opts.expires);
        labels["containerd.io/gc.expire"] = new Date(Date.now() + ms).toISOString();
      }
      const { randomBytes } = await import("node:crypto");
      const id = opts.id ?? `dist-${randomBytes(8).toString("hex")}`;
      const lease = (await metadataOf(g, "dist leases")).leases(g.namespace).create(id, labels);
      if (format === "json")
        printJson({ id: lease.id, createdAt: lease.createdAt.toISOString(), labels: lease.labels });
      else process.stdout.write(`${lease.id}\n`);
    });
  leases
    .command("rm")
    .aliases(["delete", "remove"])
    .description("delete leases (what they held is garbage unless referenced)")
    .argument("<id...>", "lease ids")
    .option("--sync", "collect the garbage before returning")
    .addOption(outputOption())
    .addHelpText(
      "after",
      `
Examples:
  dist leases rm build-42
  dist leases rm --sync build-42`,
    )
    .action(async (ids: string[], opts: { sync?: boolean; output?: string }, c: Command) => {
      const format = outputFormat(opts.output);
      const g = globals(c);
      const lm = (await metadataOf(g, "dist leases")).leases(g.namespace);
      const deleted: string[] = [];
      await forEachItem(ids, (id) => {
        lm.delete(id);
        deleted.push(id);
        if (format === "table") process.stdout.write(`${id}\n`);
      });
      const collected = opts.sync ? await collectRoot(g) : undefined;
      if (format === "json") printJson({ deleted, ...(collected ? { collected } : {}) });
      else if (collected) printCollected(collected, "table");
    });
}

/** Registers gc, df and leases. */
export function register(program: Command): void {
  registerGc(program);
  registerDf(program);
  registerLeases(program);
}
