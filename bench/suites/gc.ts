/**
 * Garbage collection: the time of `dist gc` over a store of 20 images (each a
 * manifest, a config and 8 layers of 256 KiB, unpacked into native
 * snapshots), 10 of them deleted so that the collection has their blobs and
 * snapshots to remove, against a dry run over the same store (the baseline:
 * the mark without the sweep); and the disk a pull of the ~1 GiB image uses
 * with and without `--discard-layers` (printed on stderr at the end and kept
 * in $TMP/du-*; the timing of these two cases is the pull's).
 *
 * BENCH_BIG_MIB=256 makes a quick run of the pulls.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { writeBlob } from "../../src/content/helpers.ts";
import { type Digest, digestOf } from "../../src/digest.ts";
import { snapshotLabelKey } from "../../src/images/gc-labels.ts";
import { closeAllDatabases } from "../../src/metadata/db.ts";
import { Metadata } from "../../src/metadata/metadata.ts";
import { chainIDs } from "../../src/unpack/chainid.ts";
import type { BenchContext, BenchSuite } from "../suite.ts";
import { setupBigRegistry, teardownBigRegistry } from "./fetch.ts";

const IMAGES = 20;
const LAYERS = 8;
const LAYER_BYTES = 256 << 10;

/** A store of IMAGES images as a pull leaves them (labels, snapshots), the second half deleted. */
async function buildStore(root: string): Promise<void> {
  const md = new Metadata(root);
  const content = md.content("default");
  const sn = md.snapshotter("default", "native");
  const put = async (bytes: Buffer, labels: Record<string, string> = {}): Promise<Digest> => {
    const d = digestOf(bytes);
    await writeBlob(content, `bench-${d}`, Readable.from([bytes]), { expected: d, labels });
    return d;
  };
  for (let i = 0; i < IMAGES; i++) {
    const layers: Digest[] = [];
    const diffIDs: Digest[] = [];
    for (let l = 0; l < LAYERS; l++) {
      const bytes = randomBytes(LAYER_BYTES);
      layers.push(await put(bytes));
      diffIDs.push(digestOf(bytes));
    }
    const chains = chainIDs(diffIDs);
    for (let l = 0; l < LAYERS; l++) {
      const key = `extract-${i}-${l}`;
      const mounts = await sn.prepare(key, l === 0 ? undefined : chains[l - 1]);
      const dir = mounts[0]?.source;
      if (dir) writeFileSync(join(dir, `f${l}`), randomBytes(4096));
      await sn.commit(chains[l], key);
    }
    const config = await put(Buffer.from(JSON.stringify({ rootfs: { type: "layers", diff_ids: diffIDs }, i })), {
      [snapshotLabelKey("native")]: chains[LAYERS - 1],
    });
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, config, layers, i }));
    const labels: Record<string, string> = { "containerd.io/gc.ref.content.config": config };
    layers.forEach((d, l) => {
      labels[`containerd.io/gc.ref.content.l.${l}`] = d;
    });
    const m = await put(manifest, labels);
    await md.images("default").create({
      name: `bench.local/image:${i}`,
      target: { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: m, size: manifest.length },
      labels: {},
    });
    if (i >= IMAGES / 2) await md.images("default").delete(`bench.local/image:${i}`);
  }
  closeAllDatabases();
}

const du = (file: string) =>
  `du -sb "$TMP/pull-root" | cut -f1 > "$TMP/${file}"; "$DIST" --root "$TMP/pull-root" df >> "$TMP/${file}"`;

const suite: BenchSuite = {
  name: "gc",
  description: `dist gc over ${IMAGES} images (${IMAGES / 2} deleted), and the disk of a pull of the ~1 GiB image with and without --discard-layers`,
  repetitions: 3,
  async setup(ctx: BenchContext) {
    await buildStore(join(ctx.tmp, "store"));
    await setupBigRegistry(ctx);
  },
  cases: () => [
    {
      name: `dist gc --dry-run (${IMAGES} images)`,
      before: 'rm -rf "$TMP/root" && cp -a "$TMP/store" "$TMP/root"',
      command: '"$DIST" --root "$TMP/root" gc --dry-run >/dev/null',
      baseline: true,
    },
    {
      name: `dist gc (${IMAGES} images, ${IMAGES / 2} deleted)`,
      before: 'rm -rf "$TMP/root" && cp -a "$TMP/store" "$TMP/root"',
      command: '"$DIST" --root "$TMP/root" gc >/dev/null',
    },
    {
      name: "dist pull (layers kept)",
      before: 'rm -rf "$TMP/pull-root"',
      command: `"$DIST" --root "$TMP/pull-root" pull --plain-http --snapshotter native "$BIG_REF" >/dev/null && ${du("du-kept")}`,
    },
    {
      name: "dist pull --discard-layers",
      before: 'rm -rf "$TMP/pull-root"',
      command: `"$DIST" --root "$TMP/pull-root" pull --plain-http --snapshotter native --discard-layers "$BIG_REF" >/dev/null && ${du("du-discarded")}`,
    },
  ],
  async teardown(ctx: BenchContext) {
    for (const [what, file] of [
      ["layers kept", "du-kept"],
      ["--discard-layers", "du-discarded"],
    ]) {
      try {
        const text = readFileSync(join(ctx.tmp, file), "utf8");
        const bytes = Number(text.split("\n")[0]);
        process.stderr.write(
          `bench gc: disk used by the pull, ${what}: ${(bytes / 2 ** 20).toFixed(0)} MiB\n${text.split("\n").slice(1).join("\n")}`,
        );
      } catch {}
    }
    await teardownBigRegistry(ctx);
  },
};

export default suite;
