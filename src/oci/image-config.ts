/**
 * The image config (OCI image-spec `config.json`, Docker's `container.image.v1`),
 * parsed from untrusted bytes: the layers and platform (what unpacking needs) and
 * the process defaults (what running a container needs). Every field is
 * type-checked and a wrong one is an error naming the config digest.
 */
import type { Platform } from "../descriptor.ts";
import { type Digest, validateDigest } from "../digest.ts";
import { InvalidArgumentError, wrapError } from "../errors.ts";

/** Image configs larger than this are refused before they are read (they are read whole). */
export const MAX_CONFIG_SIZE = 8 << 20;

/** The `config` object of an image config: the defaults for a container's process. */
export interface ExecConfig {
  User?: string;
  ExposedPorts?: Record<string, unknown>;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  Volumes?: Record<string, unknown>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
}

export interface ImageConfig {
  created?: string;
  author?: string;
  architecture?: string;
  os?: string;
  variant?: string;
  config: ExecConfig;
}

function fail(what: string, field: string, expected: string): never {
  throw new InvalidArgumentError(`image config ${what}: ${field} is not ${expected}`);
}

function optString(o: Record<string, unknown>, key: string, what: string, where = ""): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") fail(what, `${where}${key}`, "a string");
  return v;
}

function optStrings(o: Record<string, unknown>, key: string, what: string): string[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) fail(what, `config.${key}`, "an array of strings");
  return [...(v as string[])];
}

function optObject(o: Record<string, unknown>, key: string, what: string): Record<string, unknown> | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "object" || Array.isArray(v)) fail(what, `config.${key}`, "an object");
  return v as Record<string, unknown>;
}

function decode(bytes: Uint8Array | string, what: string): unknown {
  try {
    return JSON.parse(typeof bytes === "string" ? bytes : Buffer.from(bytes).toString("utf8"));
  } catch (err) {
    throw wrapError(err, `image config ${what} is not JSON`, "InvalidArgument");
  }
}

/** The layers of an image (and its platform when the config names one): what unpacking needs. */
export interface ImageRootfs {
  diffIDs: Digest[];
  platform?: Platform;
}

/** Parses and checks the rootfs of an image config (only that: unpacking ignores the rest). */
export function parseImageRootfs(bytes: Uint8Array | string, what: string): ImageRootfs {
  const v = decode(bytes, what);
  const o = v as {
    rootfs?: { type?: unknown; diff_ids?: unknown };
    os?: unknown;
    architecture?: unknown;
    variant?: unknown;
  };
  if (typeof v !== "object" || v === null || typeof o.rootfs !== "object" || o.rootfs === null) {
    throw new InvalidArgumentError(`image config ${what} has no rootfs`);
  }
  if (o.rootfs.type !== "layers") {
    throw new InvalidArgumentError(
      `image config ${what}: rootfs.type is ${JSON.stringify(o.rootfs.type)}, expected "layers"`,
    );
  }
  if (!Array.isArray(o.rootfs.diff_ids)) {
    throw new InvalidArgumentError(`image config ${what}: rootfs.diff_ids is not an array`);
  }
  const diffIDs = o.rootfs.diff_ids.map((d, i) => {
    try {
      return validateDigest(String(d));
    } catch (err) {
      throw wrapError(err, `image config ${what}: rootfs.diff_ids[${i}]`, "InvalidArgument");
    }
  });
  const out: ImageRootfs = { diffIDs };
  if (typeof o.os === "string" && typeof o.architecture === "string") {
    out.platform = { os: o.os, architecture: o.architecture };
    if (typeof o.variant === "string" && o.variant) out.platform.variant = o.variant;
  }
  return out;
}

/** Parses and checks an image config's process defaults; `what` (its digest) names it in errors. */
export function parseImageConfig(bytes: Uint8Array | string, what: string): ImageConfig {
  const v = decode(bytes, what);
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail(what, "the document", "an object");
  const top = v as Record<string, unknown>;
  const out: ImageConfig = { config: {} };
  for (const k of ["created", "author", "architecture", "os", "variant"] as const) {
    const s = optString(top, k, what);
    if (s !== undefined) out[k] = s;
  }
  const c = top.config;
  if (c === undefined || c === null) return out;
  if (typeof c !== "object" || Array.isArray(c)) fail(what, "config", "an object");
  const o = c as Record<string, unknown>;
  const e: ExecConfig = out.config;
  for (const k of ["User", "WorkingDir", "StopSignal"] as const) {
    const s = optString(o, k, what, "config.");
    if (s !== undefined) e[k] = s;
  }
  for (const k of ["Env", "Entrypoint", "Cmd"] as const) {
    const a = optStrings(o, k, what);
    if (a !== undefined) e[k] = a;
  }
  for (const k of ["ExposedPorts", "Volumes"] as const) {
    const m = optObject(o, k, what);
    if (m !== undefined) e[k] = m;
  }
  const labels = optObject(o, "Labels", what);
  if (labels !== undefined) {
    for (const [k, val] of Object.entries(labels)) {
      if (typeof val !== "string") fail(what, `config.Labels[${JSON.stringify(k)}]`, "a string");
    }
    e.Labels = { ...(labels as Record<string, string>) };
  }
  return out;
}
