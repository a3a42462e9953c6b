/**
 * A `docker save` archive made into what the rest of an import works on: for
 * each image of its manifest.json, a Docker schema 2 manifest written to the
 * store (config and layers are the files collect.ts stored, found by their
 * paths, through docker's symlinks for repeated layers), and the index
 * entries naming it, one per RepoTag, as containerd's importer makes them.
 * An uncompressed layer's digest is its diffID: it must be the one the config
 * lists, so a swapped or altered layer is refused before anything is recorded.
 */
import { Readable } from "node:stream";
import { detectCompression, layerMediaType } from "../archive/compression.ts";
import type { Ingester, Provider } from "../content/content.ts";
import { readBlob, writeBlob } from "../content/helpers.ts";
import type { Descriptor } from "../descriptor.ts";
import { DataLossError, errorMessage, InvalidArgumentError, NotFoundError, wrapError } from "../errors.ts";
import type { NoteFn } from "../images/children.ts";
import { MediaType } from "../images/mediatypes.ts";
import { MAX_CONFIG_SIZE, parseImageRootfs } from "../oci/image-config.ts";
import { normalize } from "../reference/index.ts";
import { archivePath } from "./archive-entries.ts";
import type { ArchiveCollector, StoredFile } from "./collect.ts";
import { DOCKER_MANIFEST_FILE, dockerManifestBytes, parseDockerManifest } from "./docker-archive.ts";
import { withNameAnnotations } from "./oci-layout.ts";

export interface DockerImportOptions {
  content: Provider & Ingester;
  signal?: AbortSignal;
  onNote?: NoteFn;
}

/** The index entries of a docker save archive's images (their manifests written to the store). */
export async function dockerIndexEntries(
  c: ArchiveCollector,
  manifestJson: Buffer,
  opts: DockerImportOptions,
): Promise<Descriptor[]> {
  const { content, signal } = opts;
  const entries: Descriptor[] = [];
  for (const [i, image] of parseDockerManifest(manifestJson).entries()) {
    const where = `${DOCKER_MANIFEST_FILE} [${i}]`;
    const file = (name: string, what: string): StoredFile => {
      let path: string;
      try {
        path = archivePath(name);
      } catch (err) {
        throw wrapError(err, `${where}: ${what} ${name}`);
      }
      const f = c.resolve(path);
      if (!f) throw new NotFoundError(`${where}: ${what} ${name} is not in the archive`);
      return f;
    };
    const cfile = file(image.Config, "config");
    const config: Descriptor = { mediaType: MediaType.DockerConfig, digest: cfile.digest, size: cfile.size };
    const rootfs = parseImageRootfs(
      await readBlob(content, config, { max: MAX_CONFIG_SIZE, signal }),
      `${image.Config} (${config.digest})`,
    );
    if (rootfs.diffIDs.length !== image.Layers.length) {
      throw new InvalidArgumentError(
        `${where}: ${image.Layers.length} layers, but its config lists ${rootfs.diffIDs.length} diff_ids`,
      );
    }
    const layers: Descriptor[] = [];
    for (const [j, name] of image.Layers.entries()) {
      const f = file(name, "layer");
      const head = Buffer.alloc(4);
      const n = f.size === 0 ? 0 : await content.readAt(f.digest, head, 0);
      const compression = detectCompression(head.subarray(0, n));
      if (compression === "none" && f.digest !== rootfs.diffIDs[j]) {
        throw new DataLossError(
          `${where}: layer ${name} is ${f.digest}, but its config's diff_ids[${j}] is ${rootfs.diffIDs[j]}`,
        );
      }
      layers.push({ mediaType: layerMediaType(compression, "docker"), digest: f.digest, size: f.size });
    }
    const { desc, bytes } = dockerManifestBytes(config, layers);
    const written = await writeBlob(content, `import-${desc.digest}`, Readable.from([bytes]), {
      size: desc.size,
      expected: desc.digest,
      signal,
    });
    if (!written.existed) c.created.add(written.digest);
    const target: Descriptor = rootfs.platform ? { ...desc, platform: rootfs.platform } : desc;
    const names: string[] = [];
    for (const tag of image.RepoTags) {
      try {
        names.push(normalize(tag));
      } catch (err) {
        opts.onNote?.(
          target,
          `${where}: RepoTag ${JSON.stringify(tag.slice(0, 80))} is not a reference: ${errorMessage(err)}`,
        );
      }
    }
    if (names.length === 0) entries.push(target);
    for (const n of names) entries.push(withNameAnnotations(target, n));
  }
  return entries;
}
