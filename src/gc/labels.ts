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
 * What dist writes so that an image's tree is kept: images/gc-labels.ts.
 */
import { GC_REF_CONTENT, GC_REF_SNAPSHOT } from "../images/gc-labels.ts";
import { parsePreciseDate } from "../time.ts";

export const GC_ROOT = "containerd.io/gc.root";
export const GC_EXPIRE = "containerd.io/gc.expire";
export const GC_FLAT = "containerd.io/gc.flat";
/**
 * The snapshot an unpack's temporary active snapshot is to be committed as
 * (containerd's unpacker and remote snapshotters): such a snapshot is not a
 * root of its own; the lease of the unpack holds it.
 */
export const SNAPSHOT_REF = "containerd.io/snapshot.ref";
/**
 * On a namespace: a containerd that uses a dist daemon as its proxy
 * snapshotter (the alias, the label's value) keeps its snapshots there
 * (services/snapshotter-names.ts). That containerd owns their lifetime and
 * collects them through the snapshots API, so every snapshot of such a
 * namespace is a root here: dist has none of the records that reference them.
 */
export const PROXY_NAMESPACE_LABEL = "dist.snapshotter-alias";

/** A snapshot a label references: the snapshotter (as the label spells it) and the key. */
export interface SnapshotRef {
  snapshotter: string;
  key: string;
}

/** What a record's labels reference (containerd's sendLabelRefs): blobs with the key naming each, snapshots. */
export interface LabelRefs {
  content: { key: string; digest: string }[];
  snapshots: SnapshotRef[];
}

/**
 * Whether a label references a child that is often not there: an index's
 * manifests (`m.<i>`) name every platform, and a pull keeps only some.
 */
export function optionalRef(key: string): boolean {
  return key.startsWith(`${GC_REF_CONTENT}.m.`);
}

/** The content and snapshots `labels` reference, in key order. */
export function labelRefs(labels: Record<string, string>): LabelRefs {
  const out: LabelRefs = { content: [], snapshots: [] };
  for (const key of Object.keys(labels).sort()) {
    const value = labels[key];
    if (key.startsWith(GC_REF_CONTENT)) {
      // "containerd.io/gc.ref.content", or a name after "." or "/"
      const sep = key.charAt(GC_REF_CONTENT.length);
      if (sep === "" || sep === "." || sep === "/") out.content.push({ key, digest: value });
    } else if (key.startsWith(GC_REF_SNAPSHOT)) {
      const rest = key.slice(GC_REF_SNAPSHOT.length);
      const slash = rest.indexOf("/");
      const snapshotter = slash < 0 ? rest : rest.slice(0, slash);
      if (snapshotter !== "") out.snapshots.push({ snapshotter, key: value });
    }
  }
  return out;
}

/** The dist snapshotter a containerd name stands for ("overlayfs" is "overlay"). */
export function distSnapshotterName(name: string): string {
  return name === "overlayfs" ? "overlay" : name;
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
