/**
 * `dist images` (list, rm, tag, check) and the top-level `dist rmi`: the image
 * records of a namespace, with sizes and platforms read from the content store.
 */
import type { Command } from "commander";
import type { Provider } from "../content/content.ts";
import { errorMessage } from "../errors.ts";
import { formatBytes } from "../format.ts";
import type { Image, ImageStore } from "../images/image.ts";
import type { PlatformMatcher } from "../images/platforms.ts";
import { forEachItem } from "./args.ts";
import { commandSignal, type GlobalOptions, globals } from "./globals.ts";
import { openImageStore, withContentStore } from "./open.ts";
import { addPlatformFlags, platformMatcher } from "./platform-flags.ts";
import { outputFormat, outputOption, printJson, printTable } from "./table.ts";

interface Row {
  image: Image;
  platforms: string[];
  size?: number;
  sizeAll?: number;
  error?: string;
}

/** Platforms and sizes (for the host platform, or --platform), or why they could not be read. */
async function describe(provider: Provider, image: Image, matcher: PlatformMatcher, signal: AbortSignal): Promise<Row> {
  const row: Row = { image, platforms: [] };
  const [{ imagePlatforms, imageSizes }, { formatPlatform }] = await Promise.all([
    import("../images/check.ts"),
    import("../images/platforms.ts"),
  ]);
  try {
    row.platforms = (await imagePlatforms(provider, image.target, { signal })).map(formatPlatform);
    const { size, presentSize } = await imageSizes(provider, image.target, matcher, { signal });
    row.size = size;
    row.sizeAll = presentSize;
  } catch (err) {
    row.error = errorMessage(err);
  }
  return row;
}

async function withStores<T>(g: GlobalOptions, fn: (images: ImageStore, content: Provider) => Promise<T>): Promise<T> {
  const images = await openImageStore(g);
  return withContentStore(g, (content) => fn(images, content));
}

function addList(parent: Command, name: string, isDefault: boolean): Command {
  const cmd = parent
    .command(name, { isDefault })
    .description("list images: name, media type, digest, platforms and size")
    .option("-q, --quiet", "print only image names")
    .addOption(outputOption());
  addPlatformFlags(cmd);
  return cmd
    .addHelpText(
      "after",
      `
SIZE is the packed size for the host platform (or --platform): manifests,
config and layers as a registry stores them. For images without that platform
it is the size of their content present here.

Examples:
  dist images
  dist images ls -q
  dist images ls --output json | jq '.[].name'`,
    )
    .action(
      async (opts: { quiet?: boolean; output?: string; platform?: string[]; allPlatforms?: boolean }, c: Command) => {
        const g = globals(c);
        const format = outputFormat(opts.output);
        const matcher = await platformMatcher(opts);
        const signal = commandSignal(g);
        await withStores(g, async (images, content) => {
          const list = await images.list();
          if (opts.quiet) {
            for (const i of list) process.stdout.write(`${i.name}\n`);
            return;
          }
          const rows: Row[] = [];
          for (const i of list) rows.push(await describe(content, i, matcher, signal));
          if (format === "json") {
            printJson(
              rows.map((r) => ({
                name: r.image.name,
                mediaType: r.image.target.mediaType,
                digest: r.image.target.digest,
                targetSize: r.image.target.size,
                platforms: r.platforms,
                size: r.size ?? null,
                sizeAllPlatforms: r.sizeAll ?? null,
                labels: r.image.labels,
                createdAt: r.image.createdAt.toISOString(),
                updatedAt: r.image.updatedAt.toISOString(),
                ...(r.error ? { error: r.error } : {}),
              })),
            );
            return;
          }
          for (const r of rows) if (r.error) process.stderr.write(`dist: size of ${r.image.name}: ${r.error}\n`);
          printTable(
            ["REF", "TYPE", "DIGEST", "PLATFORMS", "SIZE"],
            rows.map((r) => [
              r.image.name,
              r.image.target.mediaType,
              r.image.target.digest,
              r.platforms.join(",") || "-",
              r.size === undefined ? "-" : formatBytes(r.size),
            ]),
          );
        });
      },
    );
}

async function removeImages(c: Command, names: string[], opts: { sync?: boolean; output?: string }): Promise<void> {
  const g = globals(c);
  const format = outputFormat(opts.output);
  const store = await openImageStore(g);
  const { storedName } = await import("../images/names.ts");
  const deleted: string[] = [];
  await forEachItem(names, async (name) => {
    const n = await storedName(store, name);
    await store.delete(n, { sync: opts.sync });
    deleted.push(n);
    if (format === "table") process.stdout.write(`${n}\n`);
  });
  // a daemon collects by itself after a delete; the root's garbage is collected here
  const { collectRoot, printCollected } = await import("./gc.ts");
  const collected = opts.sync && !g.address ? await collectRoot(g) : undefined;
  if (format === "json") printJson({ deleted, ...(collected ? { collected } : {}) });
  else if (collected) printCollected(collected, "table");
}

function addRemove(parent: Command, name: string, aliases: string[]): Command {
  return parent
    .command(name)
    .aliases(aliases)
    .description("delete image names (their content stays until a collection: --prune, or dist gc)")
    .argument("<name...>", "image names, as `dist images` lists them (short forms like redis are normalised)")
    .option("--prune", "collect the garbage afterwards: the blobs and snapshots nothing references go")
    .option("--sync", "the same as --prune (ctr's name)")
    .addOption(outputOption())
    .addHelpText(
      "after",
      `
Prints each name deleted. A name that is not there is reported on stderr and
the exit status is 1, after the others were deleted. With --prune (or --sync,
ctr's name), what the deleted images alone referenced is removed before the
command returns, and what was removed is printed as \`dist gc\` prints it.

Examples:
  dist images rm docker.io/library/redis:latest
  dist rmi redis 127.0.0.1:5000/app:1.0
  dist rmi --prune redis`,
    )
    .action(async (names: string[], opts: { prune?: boolean; sync?: boolean; output?: string }, c: Command) =>
      removeImages(c, names, { sync: opts.prune || opts.sync, output: opts.output }),
    );
}

function addTag(parent: Command): Command {
  return parent
    .command("tag")
    .description("give an image another name, pointing at the same target")
    .argument("<source>", "an existing image name")
    .argument("<target...>", "new names (normalised like references)")
    .option("-f, --force", "replace a name that exists")
    .addHelpText(
      "after",
      `
Examples:
  dist images tag docker.io/library/redis:latest 127.0.0.1:5000/redis:7
  dist images tag --force redis redis:stable`,
    )
    .action(async (source: string, targets: string[], opts: { force?: boolean }, c: Command) => {
      const g = globals(c);
      const store = await openImageStore(g);
      const [{ newImageName, storedName }, { tagImage }] = await Promise.all([
        import("../images/names.ts"),
        import("../images/tag.ts"),
      ]);
      const src = await storedName(store, source);
      for (const t of targets) {
        const dst = newImageName(t);
        await tagImage(store, src, dst, { force: opts.force });
        process.stdout.write(`${dst}\n`);
      }
    });
}

function addCheck(parent: Command): Command {
  const cmd = parent
    .command("check")
    .description("check that the content of images is present: what is there, what is missing")
    .argument("[name...]", "image names (default: every image)")
    .option("-q, --quiet", "print only the names of complete images")
    .addOption(outputOption());
  addPlatformFlags(cmd);
  return cmd
    .addHelpText(
      "after",
      `
STATUS is complete (n/m), incomplete (n/m) or unavailable (n/?) when a manifest
itself is missing; SIZE is present/required for the platform (default: the
host's). Missing blobs are listed after the table. Exit status 1 when an image
is incomplete.

Examples:
  dist images check docker.io/library/redis:latest
  dist images check --all-platforms
  dist images check --output json redis | jq '.[0].missing'`,
    )
    .action(
      async (
        names: string[],
        opts: { quiet?: boolean; output?: string; platform?: string[]; allPlatforms?: boolean },
        c: Command,
      ) => {
        const g = globals(c);
        const format = outputFormat(opts.output);
        const matcher = await platformMatcher(opts);
        const signal = commandSignal(g);
        const [{ check }, { refKey }, { storedName }] = await Promise.all([
          import("../images/check.ts"),
          import("../images/mediatypes.ts"),
          import("../images/names.ts"),
        ]);
        await withStores(g, async (images, content) => {
          const list: Image[] = [];
          if (names.length === 0) list.push(...(await images.list()));
          await forEachItem(names, async (n) => list.push(await images.get(await storedName(images, n))));
          const results = [];
          for (const image of list) {
            try {
              results.push({ image, r: await check(content, image.target, matcher, { signal }) });
            } catch (err) {
              results.push({ image, error: errorMessage(err) });
            }
          }
          if (results.some((x) => !x.r?.complete)) process.exitCode = 1;
          if (opts.quiet) {
            for (const x of results) if (x.r?.complete) process.stdout.write(`${x.image.name}\n`);
            return;
          }
          if (format === "json") {
            printJson(
              results.map(({ image, r, error }) => ({
                name: image.name,
                digest: image.target.digest,
                complete: r?.complete ?? false,
                known: r?.known ?? false,
                presentSize: r?.presentSize ?? null,
                requiredSize: r?.requiredSize ?? null,
                present: r?.present ?? [],
                missing: r?.missing ?? [],
                ...(error ? { error } : {}),
              })),
            );
            return;
          }
          printTable(
            ["REF", "TYPE", "DIGEST", "STATUS", "SIZE"],
            results.map(({ image, r, error }) => {
              let status = `error: ${error}`;
              let size = "-";
              if (r) {
                const n = r.present.length;
                status = !r.known
                  ? `unavailable (${n}/?)`
                  : r.complete
                    ? `complete (${n}/${r.required.length})`
                    : `incomplete (${n}/${r.required.length})`;
                size = `${formatBytes(r.presentSize)}/${r.known ? formatBytes(r.requiredSize) : "?"}`;
              }
              return [image.name, image.target.mediaType, image.target.digest, status, size];
            }),
          );
          for (const { image, r } of results) {
            for (const m of r?.missing ?? []) {
              process.stdout.write(`${image.name}: missing ${refKey(m)} (${formatBytes(m.size)})\n`);
            }
          }
        });
      },
    );
}

export function register(program: Command): void {
  const images = program
    .command("images")
    .alias("image")
    .description("list, remove, tag and check images (name → target descriptor records)")
    .addHelpText(
      "after",
      `
Examples:
  dist images
  dist images rm docker.io/library/redis:latest
  dist images tag docker.io/library/redis:latest redis:mine
  dist images check redis`,
    );
  addList(images, "ls", true).alias("list");
  addRemove(images, "rm", ["delete", "del", "remove"]);
  addTag(images);
  addCheck(images);
  addRemove(program, "rmi", []);
}
