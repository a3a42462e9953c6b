/**
 * The image config (OCI image-spec `config.json`, Docker's `container.image.v1`)
 * as far as running a container needs it, parsed from untrusted bytes: every
 * field is type-checked and a wrong one is an error naming the config digest.
 */
import { errorMessage, InvalidArgumentError } from "../errors.ts";

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

/** Parses and checks an image config; `what` (its digest) names it in errors. */
export function parseImageConfig(bytes: Uint8Array | string, what: string): ImageConfig {
  let v: unknown;
  try {
    v = JSON.parse(typeof bytes === "string" ? bytes : Buffer.from(bytes).toString("utf8"));
  } catch (err) {
    throw new InvalidArgumentError(`image config ${what} is not JSON: ${errorMessage(err)}`);
  }
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
