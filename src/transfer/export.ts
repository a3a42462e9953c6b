/**
 * `exportImages`: stored images to an OCI image layout, as a tar (a stream or
 * a file) or a directory, as containerd's exporter writes it: `oci-layout`,
 * `index.json` naming each image (`io.containerd.image.name` and the tag in
 * `org.opencontainers.image.ref.name`), every blob under `blobs/`, and
 * Docker's `manifest.json` so that `docker load` takes the archive too.
 *
 * The plan is a walk of each image through the store for the platforms asked
 * (the host's by default): an index is exported whole, with the manifests of
 * the selected platforms and their blobs. The blobs then stream from the
 * store, verified as they go, straight into the output: memory stays flat and
 * nothing is copied to a temporary place first.
 */
import type { Writable } from "node:stream";
import type { Provider } from "../content/content.ts";
import { readBlob } from "../content/helpers.ts";
import type { Descriptor } from "../descriptor.ts";
import { InvalidArgumentError, NotFoundError } from "../errors.ts";
import type { NoteFn } from "../images/children.ts";
import type { ImageStore } from "../images/image.ts";
import { parseManifest } from "../images/manifest.ts";
import { descriptorKind, isIndex, isManifest } from "../images/mediatypes.ts";
import { storedName } from "../images/names.ts";
import { defaultMatcher, type PlatformMatcher } from "../images/platforms.ts";
import { imageTree } from "../images/tree.ts";
import type { ProgressTracker } from "../progress/tracker.ts";
import { type DockerArchiveEntry, dockerEntry } from "./docker-archive.ts";
import { type LayoutContents, writeDirectoryLayout, writeTarFile, writeTarLayout } from "./layout-writer.ts";
import { withNameAnnotations } from "./oci-layout.ts";

/** Where exportImages writes the layout: a tar stream, a tar file, or a directory. */
export type ExportOutput = { tar: Writable } | { file: string } | { directory: string };

/** What exportImages exports, from where, to where. */
export interface ExportOptions {
  content: Provider;
  images: ImageStore;
  /** Image names as stored, or as typed (`redis` finds docker.io/library/redis:latest). */
  names: string[];
  /** Where the layout goes: a tar stream, a tar file (written whole, then renamed in), or a directory. */
  output: ExportOutput;
  /** One matcher per platform to export (allPlatforms() for all); default the host's. */
  platforms?: PlatformMatcher[];
  /** Write Docker's manifest.json (default true). */
  dockerManifest?: boolean;
  signal?: AbortSignal;
  progress?: ProgressTracker;
  onNote?: NoteFn;
}

/** What exportImages wrote. */
export interface ExportResult {
  /** The index.json entries written (one per name). */
  manifests: Descriptor[];
  /** The blobs the layout holds. */
  blobs: Descriptor[];
  /** Bytes of the blobs. */
  size: number;
}

/** What to write: the entries of index.json and manifest.json, and every blob, each once. */
export async function planExport(opts: Omit<ExportOptions, "output">): Promise<LayoutContents> {
  const { content, signal } = opts;
  const platforms = opts.platforms ?? [defaultMatcher()];
  const all = platforms.some((m) => m.all);
  const index: Descriptor[] = [];
  const blobs = new Map<string, Descriptor>();
  /** Per manifest for `docker load`: the names that load it. */
  const docker = new Map<string, { desc: Descriptor; names: string[] }>();
  const dockerMatcher = all ? defaultMatcher() : platforms[0];
  const walked = new Set<string>();
  const exported = new Set<string>();
  for (const typed of opts.names) {
    const name = await storedName(opts.images, typed);
    if (exported.has(name)) continue;
    exported.add(name);
    const image = await opts.images.get(name);
    const target = image.target;
    if (!isManifest(target.mediaType) && !isIndex(target.mediaType)) {
      throw new InvalidArgumentError(
        `${name}: only images (a manifest or an index) can be exported, not ${target.mediaType}`,
      );
    }
    index.push(withNameAnnotations(target, name));
    const tree = await imageTree(content, target, platforms, { signal });
    if (!walked.has(target.digest)) {
      walked.add(target.digest);
      for (const m of tree.missing) {
        if (m.attestation) {
          opts.onNote?.(m.desc, `${name}: attestation ${m.desc.digest} is not in the content store: left out`);
          continue;
        }
        const hint =
          m.parent && isIndex(m.parent.mediaType)
            ? " (fetch that platform, or export others with --platform)"
            : descriptorKind(m.desc) === "layer"
              ? ` (dist fetch ${name} gets it again: pull --discard-layers removes layers once unpacked)`
              : "";
        throw new NotFoundError(
          `${name}: ${descriptorKind(m.desc)} ${m.desc.digest} is not in the content store${hint}`,
        );
      }
      for (const d of tree.present) if (!blobs.has(d.digest)) blobs.set(d.digest, d);
    }
    if (opts.dockerManifest === false) continue;
    const pick = isManifest(target.mediaType)
      ? target
      : tree.manifests
          .filter((m) => m.platform && dockerMatcher.match(m.platform))
          .sort((a, b) =>
            dockerMatcher.less(a.platform!, b.platform!) ? -1 : dockerMatcher.less(b.platform!, a.platform!) ? 1 : 0,
          )[0];
    if (!pick) {
      opts.onNote?.(
        target,
        `${name}: no manifest for ${dockerMatcher} to list in manifest.json: docker load will not see it`,
      );
      continue;
    }
    const entry = docker.get(pick.digest) ?? { desc: pick, names: [] };
    entry.names.push(name);
    docker.set(pick.digest, entry);
  }
  const dockerEntries: DockerArchiveEntry[] = [];
  for (const { desc, names } of docker.values()) {
    const manifest = parseManifest(await readBlob(content, desc, { signal }), desc);
    dockerEntries.push(dockerEntry(manifest, names));
  }
  return { index, docker: dockerEntries, blobs: [...blobs.values()] };
}

/**
 * Exports stored images to an OCI image layout (see the module comment).
 *
 * @example
 * ```ts
 * await exportImages({ content, images, names: ["redis"], output: { file: "redis.tar" } });
 * ```
 */
export async function exportImages(opts: ExportOptions): Promise<ExportResult> {
  const plan = await planExport(opts);
  const write = { provider: opts.content, progress: opts.progress, signal: opts.signal };
  const out = opts.output;
  if ("tar" in out) await writeTarLayout(out.tar, plan, write);
  else if ("file" in out) await writeTarFile(out.file, plan, write);
  else await writeDirectoryLayout(out.directory, plan, write);
  return { manifests: plan.index, blobs: plan.blobs, size: plan.blobs.reduce((n, b) => n + b.size, 0) };
}
