/**
 * Reading and validating manifests and indexes. Their bytes come from a
 * registry, so every field is checked before a walk trusts it: digests are
 * validated, sizes are non-negative safe integers. (They are read whole, capped
 * and verified, by content/helpers.ts readBlob.)
 */
import type { Descriptor, Platform } from "../descriptor.ts";
import { validateDigest } from "../digest.ts";
import { errorMessage, InvalidArgumentError, wrapError } from "../errors.ts";
import { baseMediaType, isIndex, isManifest, isSchema1 } from "./mediatypes.ts";

/** An OCI (or Docker schema 2) image manifest: a config and layers. */
export interface Manifest {
  schemaVersion: number;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** An OCI image index (or Docker manifest list): manifests, one per platform. */
export interface Index {
  schemaVersion: number;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function stringMap(v: unknown, where: string): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw new Error(`${where}: expected an object of strings`);
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== "string") throw new Error(`${where}.${k}: expected a string`);
  }
  return v as Record<string, string>;
}

function parsePlatformField(v: unknown, where: string): Platform | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw new Error(`${where}: expected an object`);
  if (typeof v.os !== "string" || typeof v.architecture !== "string") {
    throw new Error(`${where}: os and architecture must be strings`);
  }
  const p: Platform = { os: v.os, architecture: v.architecture };
  if (v.variant !== undefined) {
    if (typeof v.variant !== "string") throw new Error(`${where}.variant: expected a string`);
    p.variant = v.variant;
  }
  if (v["os.version"] !== undefined) {
    if (typeof v["os.version"] !== "string") throw new Error(`${where}.os.version: expected a string`);
    p["os.version"] = v["os.version"];
  }
  if (v["os.features"] !== undefined) {
    const f = v["os.features"];
    if (!Array.isArray(f) || f.some((x) => typeof x !== "string")) {
      throw new Error(`${where}.os.features: expected an array of strings`);
    }
    p["os.features"] = f as string[];
  }
  return p;
}

/** Validates one descriptor from untrusted JSON; throws a plain Error naming the field. */
export function parseDescriptor(v: unknown, where: string): Descriptor {
  if (!isObject(v)) throw new Error(`${where}: expected a descriptor object`);
  if (typeof v.mediaType !== "string" || v.mediaType === "") throw new Error(`${where}.mediaType: expected a string`);
  if (typeof v.digest !== "string") throw new Error(`${where}.digest: expected a string`);
  let digest: Descriptor["digest"];
  try {
    digest = validateDigest(v.digest);
  } catch (err) {
    // a field error: wrap() below names the manifest and makes it InvalidArgument
    throw new Error(`${where}.digest: ${errorMessage(err)}`, { cause: err });
  }
  if (typeof v.size !== "number" || !Number.isSafeInteger(v.size) || v.size < 0) {
    throw new Error(`${where}.size: expected a non-negative integer, got ${JSON.stringify(v.size)}`);
  }
  const d: Descriptor = { mediaType: v.mediaType, digest, size: v.size };
  if (v.urls !== undefined) {
    if (!Array.isArray(v.urls) || v.urls.some((u) => typeof u !== "string")) {
      throw new Error(`${where}.urls: expected an array of strings`);
    }
    d.urls = v.urls as string[];
  }
  const annotations = stringMap(v.annotations, `${where}.annotations`);
  if (annotations) d.annotations = annotations;
  const platform = parsePlatformField(v.platform, `${where}.platform`);
  if (platform) d.platform = platform;
  if (typeof v.artifactType === "string") d.artifactType = v.artifactType;
  if (typeof v.data === "string") d.data = v.data;
  return d;
}

function parseBody(bytes: Uint8Array, desc: Descriptor): Json {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch (err) {
    throw wrapError(err, `invalid ${what(desc)} ${desc.digest}: malformed JSON`, "InvalidArgument");
  }
  if (!isObject(v)) throw new InvalidArgumentError(`invalid ${what(desc)} ${desc.digest}: expected a JSON object`);
  // a body claiming another type than its descriptor is a confusion attack (CVE-2021-41190)
  if (typeof v.mediaType === "string" && baseMediaType(v.mediaType) !== baseMediaType(desc.mediaType)) {
    throw new InvalidArgumentError(
      `invalid ${what(desc)} ${desc.digest}: body says media type ${v.mediaType}, descriptor says ${desc.mediaType}`,
    );
  }
  return v;
}

function what(desc: Descriptor): string {
  return isIndex(desc.mediaType) ? "index" : "manifest";
}

function wrap<T>(desc: Descriptor, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw err;
    throw wrapError(err, `invalid ${what(desc)} ${desc.digest}`, "InvalidArgument");
  }
}

/** The optional fields manifests and indexes share. */
function commonFields(v: Json): Pick<Manifest, "mediaType" | "artifactType" | "subject" | "annotations"> {
  const f: Pick<Manifest, "mediaType" | "artifactType" | "subject" | "annotations"> = {};
  if (typeof v.mediaType === "string") f.mediaType = v.mediaType;
  if (typeof v.artifactType === "string") f.artifactType = v.artifactType;
  if (v.subject !== undefined) f.subject = parseDescriptor(v.subject, "subject");
  const annotations = stringMap(v.annotations, "annotations");
  if (annotations) f.annotations = annotations;
  return f;
}

/** Parses an image manifest (OCI or Docker schema 2). */
export function parseManifest(bytes: Uint8Array, desc: Descriptor): Manifest {
  const v = parseBody(bytes, desc);
  return wrap(desc, () => {
    if (v.manifests !== undefined) throw new Error("a manifest must not have a manifests field");
    if (v.schemaVersion !== 2) throw new Error(`schemaVersion ${JSON.stringify(v.schemaVersion)}, expected 2`);
    const config = parseDescriptor(v.config, "config");
    if (!Array.isArray(v.layers)) throw new Error("layers: expected an array");
    const layers = v.layers.map((l, i) => parseDescriptor(l, `layers[${i}]`));
    return { schemaVersion: 2, ...commonFields(v), config, layers };
  });
}

/** Parses an index (OCI image index or Docker manifest list). */
export function parseIndex(bytes: Uint8Array, desc: Descriptor): Index {
  const v = parseBody(bytes, desc);
  return wrap(desc, () => {
    if (v.layers !== undefined || v.config !== undefined) throw new Error("an index must not have layers or config");
    if (v.schemaVersion !== 2) throw new Error(`schemaVersion ${JSON.stringify(v.schemaVersion)}, expected 2`);
    if (!Array.isArray(v.manifests)) throw new Error("manifests: expected an array");
    const manifests = v.manifests.map((m, i) => parseDescriptor(m, `manifests[${i}]`));
    return { schemaVersion: 2, ...commonFields(v), manifests };
  });
}

/** The children a manifest or index names; nothing for other kinds. Schema 1 is refused. */
export function childrenOf(desc: Descriptor, bytes: Uint8Array): Descriptor[] {
  if (isManifest(desc.mediaType)) {
    const m = parseManifest(bytes, desc);
    return [m.config, ...m.layers];
  }
  if (isIndex(desc.mediaType)) return parseIndex(bytes, desc).manifests;
  return [];
}

export function refuseSchema1(desc: Descriptor, name?: string): void {
  if (isSchema1(desc.mediaType)) {
    throw new InvalidArgumentError(
      `${name ?? desc.digest}: Docker schema 1 manifests (${desc.mediaType}) are not supported; push the image again with a current client`,
    );
  }
}
