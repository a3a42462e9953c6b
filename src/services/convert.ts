/** Conversions between dist's types and the wire messages (snake_case, Timestamps). */
import type { Info, Status } from "../content/content.ts";
import type { Descriptor } from "../descriptor.ts";
import type { Digest } from "../digest.ts";
import type { Image } from "../images/image.ts";
import type { Kind, Mount, SnapshotInfo } from "../snapshots/snapshotter.ts";
import { fromTimestamp, type Timestamp, toTimestamp } from "./proto.ts";

export interface WireInfo {
  digest: string;
  size: number;
  created_at: Timestamp | null;
  updated_at: Timestamp | null;
  labels: Record<string, string>;
}

export function infoToWire(i: Info): WireInfo {
  return {
    digest: i.digest,
    size: i.size,
    created_at: toTimestamp(i.createdAt),
    updated_at: toTimestamp(i.updatedAt),
    labels: i.labels ?? {},
  };
}

export function infoFromWire(w: WireInfo): Info {
  return {
    digest: w.digest as Digest,
    size: Number(w.size),
    createdAt: fromTimestamp(w.created_at),
    updatedAt: fromTimestamp(w.updated_at),
    labels: w.labels ?? {},
  };
}

export interface WireStatus {
  started_at: Timestamp | null;
  updated_at: Timestamp | null;
  ref: string;
  offset: number;
  total: number;
  expected: string;
}

export function statusToWire(s: Status): WireStatus {
  return {
    started_at: toTimestamp(s.startedAt),
    updated_at: toTimestamp(s.updatedAt),
    ref: s.ref,
    offset: s.offset,
    total: s.total,
    expected: s.expected ?? "",
  };
}

export function statusFromWire(w: WireStatus): Status {
  return {
    ref: w.ref,
    offset: Number(w.offset),
    total: Number(w.total),
    expected: w.expected ? (w.expected as Digest) : undefined,
    startedAt: fromTimestamp(w.started_at),
    updatedAt: fromTimestamp(w.updated_at),
  };
}

export interface WireDescriptor {
  media_type: string;
  digest: string;
  size: number;
  annotations: Record<string, string>;
}

export function descriptorToWire(d: Descriptor): WireDescriptor {
  return { media_type: d.mediaType, digest: d.digest, size: d.size, annotations: d.annotations ?? {} };
}

export function descriptorFromWire(w: WireDescriptor | null | undefined): Descriptor {
  const d: Descriptor = {
    mediaType: w?.media_type ?? "",
    digest: (w?.digest ?? "") as Digest,
    size: Number(w?.size ?? 0),
  };
  if (w?.annotations && Object.keys(w.annotations).length > 0) d.annotations = w.annotations;
  return d;
}

export interface WireImage {
  name: string;
  labels: Record<string, string>;
  target: WireDescriptor | null;
  created_at: Timestamp | null;
  updated_at: Timestamp | null;
}

export function imageToWire(i: Image): WireImage {
  return {
    name: i.name,
    labels: i.labels ?? {},
    target: descriptorToWire(i.target),
    created_at: toTimestamp(i.createdAt),
    updated_at: toTimestamp(i.updatedAt),
  };
}

export function imageFromWire(w: WireImage): Image {
  return {
    name: w.name,
    labels: w.labels ?? {},
    target: descriptorFromWire(w.target),
    createdAt: fromTimestamp(w.created_at),
    updatedAt: fromTimestamp(w.updated_at),
  };
}

export type WireKind = "UNKNOWN" | "VIEW" | "ACTIVE" | "COMMITTED";

const KIND_TO_WIRE: Record<Kind, WireKind> = { view: "VIEW", active: "ACTIVE", committed: "COMMITTED" };

export interface WireSnapshotInfo {
  name: string;
  parent: string;
  kind: WireKind;
  created_at: Timestamp | null;
  updated_at: Timestamp | null;
  labels: Record<string, string>;
}

export function snapshotInfoToWire(i: SnapshotInfo): WireSnapshotInfo {
  return {
    name: i.name,
    parent: i.parent ?? "",
    kind: KIND_TO_WIRE[i.kind] ?? "UNKNOWN",
    created_at: toTimestamp(i.createdAt),
    updated_at: toTimestamp(i.updatedAt),
    labels: i.labels ?? {},
  };
}

export function snapshotInfoFromWire(w: WireSnapshotInfo): SnapshotInfo {
  const kind: Kind = w.kind === "VIEW" ? "view" : w.kind === "COMMITTED" ? "committed" : "active";
  const info: SnapshotInfo = {
    name: w.name,
    kind,
    labels: w.labels ?? {},
    createdAt: fromTimestamp(w.created_at),
    updatedAt: fromTimestamp(w.updated_at),
  };
  if (w.parent) info.parent = w.parent;
  return info;
}

export interface WireMount {
  type: string;
  source: string;
  target: string;
  options: string[];
}

export function mountToWire(m: Mount): WireMount {
  return { type: m.type, source: m.source, target: "", options: m.options ?? [] };
}

export function mountFromWire(w: WireMount): Mount {
  return { type: w.type, source: w.source, options: w.options ?? [] };
}
