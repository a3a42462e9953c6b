/**
 * Labels of namespaced records (content, snapshots, namespaces): containerd's
 * size rule and its update masks.
 */
import { InvalidArgumentError } from "../errors.ts";

const MAX_LABEL = 4096;

/** containerd's labels.Validate: a key and its value together at most 4096 bytes. */
export function checkLabels(labels: Record<string, string> | undefined, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels ?? {})) {
    if (typeof v !== "string") throw new InvalidArgumentError(`${what}: label "${k.slice(0, 64)}" has no string value`);
    if (k === "") throw new InvalidArgumentError(`${what}: a label key must not be empty`);
    if (Buffer.byteLength(k) + Buffer.byteLength(v) > MAX_LABEL) {
      throw new InvalidArgumentError(
        `${what}: label key and value greater than maximum size (${MAX_LABEL} bytes), key: ${k.slice(0, 10)}`,
      );
    }
    out[k] = v;
  }
  return out;
}

/**
 * Applies an update mask to a label map, as containerd does: no paths
 * replaces all labels; "labels" replaces all; "labels.<key>" sets or (empty
 * value) removes one key. Any other path is InvalidArgument unless listed in
 * `otherPaths`. Empty values are dropped.
 */
export function applyLabelMask(
  current: Record<string, string>,
  incoming: Record<string, string>,
  paths: string[],
  what: string,
  otherPaths: string[] = [],
): Record<string, string> {
  let labels: Record<string, string>;
  if (paths.length === 0) labels = { ...incoming };
  else {
    labels = { ...current };
    for (const p of paths) {
      if (p === "labels") labels = { ...incoming };
      else if (p.startsWith("labels.") && p.length > "labels.".length) {
        const key = p.slice("labels.".length);
        const v = incoming[key];
        if (v === undefined || v === "") delete labels[key];
        else labels[key] = v;
      } else if (!otherPaths.includes(p)) {
        throw new InvalidArgumentError(`${what}: cannot update field "${p}"`);
      }
    }
  }
  for (const [k, v] of Object.entries(labels)) if (v === "") delete labels[k];
  return labels;
}
