/**
 * Docker's archive format (`docker save`, `docker load`): `manifest.json`
 * lists each image as its config file, its layer files in order and its
 * names (`RepoTags`); the legacy layout keeps layers at `<id>/layer.tar`
 * (duplicates as symlinks), the newer one is also an OCI layout whose
 * `manifest.json` points into `blobs/`. Export writes the `manifest.json`
 * `docker load` reads; import turns each entry into a Docker schema 2
 * manifest, as containerd's importer does.
 */
import type { Descriptor } from "../descriptor.ts";
import { digestOf } from "../digest.ts";
import { InvalidArgumentError } from "../errors.ts";
import type { Manifest } from "../images/manifest.ts";
import { MediaType } from "../images/mediatypes.ts";
import { familiar, parseReference } from "../reference/index.ts";
import { blobPath } from "./oci-layout.ts";

export const DOCKER_MANIFEST_FILE = "manifest.json";
export const REPOSITORIES_FILE = "repositories";

/** One image of Docker's manifest.json. */
export interface DockerArchiveEntry {
  Config: string;
  RepoTags: string[];
  Layers: string[];
}

/** Images in one manifest.json beyond this are refused (a hostile file must not become work without end). */
export const MAX_DOCKER_ENTRIES = 10_000;

/**
 * The manifest.json entry of an image manifest for `docker load`: its config
 * and layers as layout paths, its names as Docker prints them (`redis:7`).
 * Names without a tag (pinned by digest) cannot be a RepoTag and are left out.
 */
export function dockerEntry(manifest: Manifest, names: string[]): DockerArchiveEntry {
  const repoTags: string[] = [];
  for (const n of names) {
    try {
      const ref = parseReference(n, { defaultTag: false });
      if (ref.tag !== undefined) repoTags.push(familiar({ ...ref, digest: undefined }));
    } catch {
      // a name that is not a reference has no Docker spelling
    }
  }
  return {
    Config: blobPath(manifest.config.digest),
    RepoTags: [...new Set(repoTags)],
    Layers: manifest.layers.map((l) => blobPath(l.digest)),
  };
}

/** Parses a manifest.json (capped by the caller), checking every field's type. */
export function parseDockerManifest(bytes: Uint8Array): DockerArchiveEntry[] {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    throw new InvalidArgumentError(`${DOCKER_MANIFEST_FILE} is not JSON`);
  }
  if (!Array.isArray(v)) throw new InvalidArgumentError(`${DOCKER_MANIFEST_FILE}: expected an array of images`);
  if (v.length > MAX_DOCKER_ENTRIES) {
    throw new InvalidArgumentError(`${DOCKER_MANIFEST_FILE} lists ${v.length} images (limit ${MAX_DOCKER_ENTRIES})`);
  }
  const strings = (x: unknown, where: string): string[] => {
    if (x === undefined || x === null) return [];
    if (!Array.isArray(x) || x.some((s) => typeof s !== "string")) {
      throw new InvalidArgumentError(`${DOCKER_MANIFEST_FILE}: ${where} is not an array of strings`);
    }
    return x as string[];
  };
  return v.map((e, i) => {
    const o = e as Record<string, unknown> | null;
    if (typeof o !== "object" || o === null || Array.isArray(o)) {
      throw new InvalidArgumentError(`${DOCKER_MANIFEST_FILE}: [${i}] is not an object`);
    }
    if (typeof o.Config !== "string" || o.Config === "") {
      throw new InvalidArgumentError(`${DOCKER_MANIFEST_FILE}: [${i}].Config is not a file name`);
    }
    return {
      Config: o.Config,
      RepoTags: strings(o.RepoTags, `[${i}].RepoTags`),
      Layers: strings(o.Layers, `[${i}].Layers`),
    };
  });
}

/** The Docker schema 2 manifest of an imported entry (containerd's importer writes the same). */
export function dockerManifestBytes(config: Descriptor, layers: Descriptor[]): { desc: Descriptor; bytes: Buffer } {
  const body = {
    schemaVersion: 2,
    mediaType: MediaType.DockerManifest,
    config: { mediaType: MediaType.DockerConfig, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  const bytes = Buffer.from(JSON.stringify(body));
  return { desc: { mediaType: MediaType.DockerManifest, digest: digestOf(bytes), size: bytes.length }, bytes };
}
