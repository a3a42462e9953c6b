/**
 * `importImages`: an OCI image layout (a tar, compressed or not, a pipe, or a
 * directory) or a `docker save` archive into the content store and the image
 * store, optionally unpacked.
 *
 *   1. collect (collect.ts): every file of the archive into the store as it
 *      streams by, blobs verified against their names, whatever the order;
 *   2. resolve: the layout's index.json, or Docker's manifest.json turned into
 *      Docker schema 2 manifests (as containerd's importer does);
 *   3. name (import-names.ts) and check each image through the store: every
 *      blob of its selected platforms there, with the size its descriptor says
 *      (missing attestations are noted and left out, containerd #11344);
 *   4. record the images, only now that all their blobs are committed, and
 *      remove the blobs this import wrote that no recorded image reaches
 *      (dist's store has no garbage collector to leave them to);
 *   5. unpack, when a snapshotter is given.
 * A failure before the images are recorded removes every blob the import wrote.
 */
import { Readable } from "node:stream";
import type { Store } from "../content/content.ts";
import { readBlob, writeBlob } from "../content/helpers.ts";
import type { Descriptor } from "../descriptor.ts";
import { InvalidArgumentError, isNotFound, NotFoundError, wrapError } from "../errors.ts";
import type { NoteFn } from "../images/children.ts";
import { labelTree } from "../images/gc-labels.ts";
import type { Image, ImageStore } from "../images/image.ts";
import { selectManifest } from "../images/lookup.ts";
import { descriptorKind, isIndex, isManifest, isSchema1 } from "../images/mediatypes.ts";
import { newImageName } from "../images/names.ts";
import { allPlatforms, defaultMatcher, type PlatformMatcher } from "../images/platforms.ts";
import { type ImageTree, imageTree } from "../images/tree.ts";
import type { ProgressTracker } from "../progress/tracker.ts";
import { unpackProgress } from "../progress/unpack.ts";
import type { Snapshotter } from "../snapshots/snapshotter.ts";
import { type UnpackedManifest, unpackManifest } from "../unpack/unpacker.ts";
import { type ArchiveEntry, directoryEntries, tarEntries, tarFileEntries } from "./archive-entries.ts";
import { ArchiveCollector } from "./collect.ts";
import { DOCKER_MANIFEST_FILE } from "./docker-archive.ts";
import { dockerIndexEntries } from "./docker-import.ts";
import { importNames, type NamingOptions } from "./import-names.ts";
import {
  checkLayoutFile,
  INDEX_FILE,
  indexBytes,
  indexDescriptor,
  LAYOUT_FILE,
  parseLayoutIndex,
} from "./oci-layout.ts";

/** What importImages reads and where it puts it; the names as NamingOptions gives them. */
export interface ImportOptions extends NamingOptions {
  content: Store;
  images: ImageStore;
  /** A tar file (gzip or zstd compressed or not) or a directory holding a layout; or a tar stream. */
  source: string | Readable;
  /**
   * The platforms to import and require, one matcher each (allPlatforms() for
   * every one). Without it, everything the archive holds is imported and an
   * index whose other platforms were left out of the archive is accepted.
   */
  platforms?: PlatformMatcher[];
  /** Also record the archive's index itself under this name (ctr's --index-name). */
  indexName?: string;
  /** Unpack each imported image into this snapshotter. */
  snapshotter?: Snapshotter;
  /** The manifest of an index to unpack (default: the host's; the first of `platforms` when given). */
  unpackPlatform?: PlatformMatcher;
  /** Apply ownership from the layers when unpacking (default: when root). */
  sameOwner?: boolean;
  signal?: AbortSignal;
  progress?: ProgressTracker;
  onNote?: NoteFn;
  onWarning?: (message: string) => void;
  /** As the unpacking of one image starts. */
  onUnpack?: (name: string, manifest: Descriptor) => void;
}

/** What importImages recorded, unpacked and removed. */
export interface ImportResult {
  images: Image[];
  unpacked: UnpackedManifest[];
  /** Blobs of the archive no imported image reaches, removed from the store. */
  removed: number;
}

/** The entries of a source: a directory's files, a tar file's or a stream's entries. */
export async function openEntries(source: string | Readable): Promise<AsyncIterable<ArchiveEntry>> {
  if (typeof source !== "string") return tarEntries(source);
  const { stat } = await import("node:fs/promises");
  const st = await stat(source);
  return st.isDirectory() ? directoryEntries(source) : tarFileEntries(source);
}

/** What the archive's index names, and the index as a blob (for --index-name). */
interface Resolved {
  entries: Descriptor[];
  index: { desc: Descriptor; bytes: Buffer };
}

/**
 * Imports an OCI layout or a docker save archive (see the module comment).
 *
 * @example
 * ```ts
 * const { images: imported } = await importImages({ content, images, source: "redis.tar" });
 * ```
 */
export async function importImages(opts: ImportOptions): Promise<ImportResult> {
  const { content, signal } = opts;
  const note: NoteFn = opts.onNote ?? (() => {});
  const collector = new ArchiveCollector({ content, signal, progress: opts.progress });
  const keep = new Set<string>();
  let recording = false;
  const recorded: Image[] = [];
  try {
    for await (const e of await openEntries(opts.source)) await collector.add(e);
    const resolved = await resolve(collector, opts);
    const named = importNames(resolved.entries, opts);
    for (const n of named.notes) note(resolved.index.desc, n);
    const records = named.images;
    if (opts.indexName !== undefined) {
      const r = await writeBlob(
        content,
        `import-${resolved.index.desc.digest}`,
        Readable.from([resolved.index.bytes]),
        {
          size: resolved.index.desc.size,
          expected: resolved.index.desc.digest,
          signal,
        },
      );
      if (!r.existed) collector.created.add(r.digest);
      records.push({ name: newImageName(opts.indexName), target: resolved.index.desc });
    }
    if (records.length === 0) {
      throw new InvalidArgumentError("the archive names no image: give --name, --index-name or --digests");
    }
    const strict = opts.platforms !== undefined;
    const platforms = opts.platforms ?? [allPlatforms()];
    const checked = new Set<string>();
    for (const r of records) {
      if (checked.has(r.target.digest)) continue;
      checked.add(r.target.digest);
      const tree = await imageTree(content, r.target, platforms, { signal });
      requireComplete(r.name, tree, strict, note);
      for (const d of tree.present) keep.add(d.digest);
    }
    recording = true;
    // garbage collection keeps what the records name through these labels, as a fetch writes them
    for (const digest of checked) {
      const r = records.find((x) => x.target.digest === digest);
      if (r) await labelTree(content, r.target, { signal });
    }
    for (const r of records) recorded.push(await opts.images.put({ name: r.name, target: r.target, labels: {} }));
  } catch (err) {
    // nothing of a failed import stays: its blobs go, but never one a recorded image reaches
    for (const d of collector.created) {
      if (!recording || !keep.has(d)) await content.delete(d).catch(() => {});
    }
    throw err;
  }
  let removed = 0;
  for (const d of collector.created) {
    if (keep.has(d)) continue;
    await content.delete(d).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
    removed++;
  }
  const unpacked = opts.snapshotter ? await unpackAll(recorded, opts, opts.snapshotter) : [];
  return { images: recorded, unpacked, removed };
}

/** The archive's images: its OCI index, else Docker's manifest.json made into manifests. */
async function resolve(c: ArchiveCollector, opts: ImportOptions): Promise<Resolved> {
  const layout = c.files.get(LAYOUT_FILE);
  if (layout) {
    checkLayoutFile(layout);
    const bytes = c.files.get(INDEX_FILE);
    if (!bytes) throw new InvalidArgumentError(`the OCI layout has no ${INDEX_FILE}`);
    const index = parseLayoutIndex(bytes);
    const entries: Descriptor[] = [];
    for (const m of index.manifests) {
      if (isSchema1(m.mediaType) || (!isManifest(m.mediaType) && !isIndex(m.mediaType))) {
        opts.onNote?.(m, `${INDEX_FILE} names ${m.digest} of media type ${m.mediaType}: not an image, left out`);
        continue;
      }
      entries.push(m);
    }
    return { entries, index: { desc: indexDescriptor(bytes), bytes } };
  }
  const dockerManifest = c.files.get(DOCKER_MANIFEST_FILE);
  if (!dockerManifest) {
    throw new InvalidArgumentError(
      `not an image archive: neither an OCI layout (${LAYOUT_FILE}, ${INDEX_FILE}) nor a docker save archive (${DOCKER_MANIFEST_FILE})`,
    );
  }
  const entries = await dockerIndexEntries(c, dockerManifest, {
    content: opts.content,
    signal: opts.signal,
    onNote: opts.onNote,
  });
  const bytes = indexBytes(entries);
  return { entries, index: { desc: indexDescriptor(bytes), bytes } };
}

/**
 * Whether an image is whole for what was asked. A missing attestation is
 * noted (containerd #11344: `docker save` leaves them out). A manifest of an
 * index that the archive left out is accepted unless platforms were asked for
 * (then the filter chose it, and it must be there). Anything else missing, or
 * a blob of another size than its descriptor says, fails the import.
 */
function requireComplete(name: string, tree: ImageTree, strict: boolean, note: NoteFn): void {
  for (const m of tree.missing) {
    if (m.attestation) {
      note(m.desc, `${name}: attestation ${m.desc.digest} is not in the archive: left out`);
      continue;
    }
    const partOfIndex = m.parent !== undefined && isIndex(m.parent.mediaType);
    if (partOfIndex && !strict) continue;
    const kind = descriptorKind(m.desc);
    throw new NotFoundError(`image ${name} is incomplete: ${kind} ${m.desc.digest} is not in the archive`);
  }
}

/** Unpacks each imported image's manifest (an index's for the platform asked), once per manifest. */
async function unpackAll(
  recorded: Image[],
  opts: ImportOptions,
  snapshotter: Snapshotter,
): Promise<UnpackedManifest[]> {
  const first = opts.platforms?.[0];
  const matcher = opts.unpackPlatform ?? (first && !first.all ? first : defaultMatcher());
  const out: UnpackedManifest[] = [];
  const done = new Set<string>();
  for (const image of recorded) {
    const target = image.target;
    if (!isManifest(target.mediaType) && !isIndex(target.mediaType)) continue;
    let chosen: Awaited<ReturnType<typeof selectManifest>>;
    try {
      chosen = await selectManifest(opts.content, target, await readBlob(opts.content, target), matcher);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      throw wrapError(err, `${image.name}: nothing to unpack`);
    }
    if (done.has(chosen.desc.digest)) continue;
    done.add(chosen.desc.digest);
    opts.onUnpack?.(image.name, chosen.desc);
    out.push(
      await unpackManifest(chosen.desc, chosen.manifest, {
        content: opts.content,
        snapshotter,
        signal: opts.signal,
        sameOwner: opts.sameOwner,
        onEvent: opts.progress ? unpackProgress(opts.progress) : undefined,
        onWarning: opts.onWarning,
        onNote: opts.onNote,
      }),
    );
  }
  return out;
}
