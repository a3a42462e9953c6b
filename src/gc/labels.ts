/**
 * The labels containerd's garbage collector reads (metadata/gc.go), and the
 * ones its clients write so that it keeps an image's tree:
 *
 *   containerd.io/gc.ref.content[.<name>|/<name>]   → a blob of the same namespace
 *   containerd.io/gc.ref.snapshot.<snapshotter>[/<name>] → a snapshot key on that snapshotter
 *   containerd.io/gc.root        the record is a root (content, snapshots)
 *   containerd.io/gc.expire      a lease's end (RFC 3339); past it, the lease holds nothing
 *   containerd.io/gc.flat        a lease holds its resources without what their labels reference
 *
 * An image record names its target; the target's labels name its children:
 * an index `containerd.io/gc.ref.content.m.<i>` its manifests, a manifest
 * `.config` and `.l.<i>` its config and layers, and an unpacked image's
 * config `containerd.io/gc.ref.snapshot.<snapshotter>` its top snapshot
 * (whose parents follow). childGCLabels numbers them as containerd's
 * SetChildrenMappedLabels does, so a store written by dist reads the same to
 * containerd and the other way round.
 */
import type { Descriptor } from "../descriptor.ts";
import { isConfig, isIndex, isLayer, isManifest } from "../images/mediatypes.ts";
import { parsePreciseDate } from "../time.ts";

export const GC_ROOT = "containerd.io/gc.root";
export const GC_REF_CONTENT = "containerd.io/gc.ref.content";
export const GC_REF_SNAPSHOT = "containerd.io/gc.ref.snapshot.";
export const GC_EXPIRE = "containerd.io/gc.expire";
export const GC_FLAT = "containerd.io/gc.flat";
/**
 * The snapshot an unpack's temporary active snapshot is to be committed as
 * (containerd's unpacker and remote snapshotters): such a snapshot is not a
 * root of its own; the lease of the unpack holds it.
 */
export const SNAPSHOT_REF = "containerd.io/snapshot.ref";

/** A snapshot a label references: the snapshotter (as the label spells it) and the key. */
export interface SnapshotRef {
  snapshotter: string;
  key: string;
}

/** What a record's labels reference (containerd's sendLabelRefs). */
export interface LabelRefs {
  content: string[];
  snapshots: SnapshotRef[];
}

/** The content and snapshots `labels` reference, in key order. */
export function labelRefs(labels: Record<string, string>): LabelRefs {
  const out: LabelRefs = { content: [], snapshots: [] };
  for (const key of Object.keys(labels).sort()) {
    const value = labels[key];
    if (key.startsWith(GC_REF_CONTENT)) {
      // "containerd.io/gc.ref.content", or a name after "." or "/"
      const sep = key.charAt(GC_REF_CONTENT.length);
      if (sep === "" || sep === "." || sep === "/") out.content.push(value);
    } else if (key.startsWith(GC_REF_SNAPSHOT)) {
      const rest = key.slice(GC_REF_SNAPSHOT.length);
      const slash = rest.indexOf("/");
      const snapshotter = slash < 0 ? rest : rest.slice(0, slash);
      if (snapshotter !== "") out.snapshots.push({ snapshotter, key: value });
    }
  }
  return out;
}

/** The name containerd gives a dist snapshotter ("overlay" is "overlayfs"), as labels and lease resources spell it. */
export function containerdSnapshotterName(name: string): string {
  return name === "overlay" ? "overlayfs" : name;
}

/** The dist snapshotter a containerd name stands for ("overlayfs" is "overlay"). */
export function distSnapshotterName(name: string): string {
  return name === "overlayfs" ? "overlay" : name;
}

/** The label on an image config naming its unpacked top snapshot on `snapshotter`. */
export function snapshotLabelKey(snapshotter: string): string {
  return `${GC_REF_SNAPSHOT}${containerdSnapshotterName(snapshotter)}`;
}

/** containerd's ChildGCLabels: the label key (a prefix when it ends with ".") for a child of this media type. */
function childLabelKey(child: Descriptor): string {
  if (isConfig(child.mediaType)) return `${GC_REF_CONTENT}.config`;
  if (isManifest(child.mediaType)) return `${GC_REF_CONTENT}.m.`;
  if (isLayer(child.mediaType)) return `${GC_REF_CONTENT}.l.`;
  return `${GC_REF_CONTENT}.`;
}

/** Options of childGCLabels. */
export interface ChildLabelOptions {
  /** Reference the layers too (default); false leaves them to be collected once unpacked (`--discard-layers`). */
  layers?: boolean;
}

/**
 * The labels a manifest or an index gets for its children (every child, before
 * any platform filter), numbered as containerd's SetChildrenMappedLabels
 * numbers them: a key ending in "." takes the child's index among those of its
 * kind (`m.0`, `m.1`, `l.0`), another takes one from the second child of its
 * kind on.
 */
export function childGCLabels(children: readonly Descriptor[], opts: ChildLabelOptions = {}): Record<string, string> {
  const labels: Record<string, string> = {};
  const seen = new Map<string, number>();
  for (const child of children) {
    if (opts.layers === false && isLayer(child.mediaType)) continue;
    let key = childLabelKey(child);
    const n = seen.get(key) ?? 0;
    seen.set(key, n + 1);
    if (n > 0 || key.endsWith(".")) key = `${key}${n}`;
    labels[key] = child.digest;
  }
  return labels;
}

/** Whether a descriptor's blob may reference children (a manifest or an index). */
export function hasChildren(desc: Descriptor): boolean {
  return isManifest(desc.mediaType) || isIndex(desc.mediaType);
}

/** A lease's `containerd.io/gc.expire`: absent, a time, or a value that is not one (then ignored, as containerd does). */
export type Expiry = { kind: "none" } | { kind: "at"; at: Date } | { kind: "invalid"; value: string };

export function leaseExpiry(labels: Record<string, string>): Expiry {
  const value = labels[GC_EXPIRE];
  if (value === undefined) return { kind: "none" };
  const at = parsePreciseDate(value);
  return at ? { kind: "at", at } : { kind: "invalid", value };
}

/** The `containerd.io/gc.expire` value for a lease ending `ms` from now (RFC 3339, as containerd writes it). */
export function expiryLabel(ms: number, now = Date.now()): string {
  return new Date(now + ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}
