/**
 * The records garbage collection reads (every namespace's images, blobs,
 * ingests, snapshots and leases, and the snapshotters' own records), and the
 * mark over them: containerd's scanRoots and references (metadata/gc.go).
 *
 * Roots, per namespace:
 * - an image: its target, and what its labels reference;
 * - a live lease: every resource it lists (flat with `containerd.io/gc.flat`:
 *   then what their labels reference is not followed, a snapshot's parents
 *   are); a lease is dead past its `containerd.io/gc.expire`, and a process
 *   lease once its process is gone (process-lease.ts);
 * - a blob or a snapshot labelled `containerd.io/gc.root`;
 * - an active snapshot or a view (a container's root filesystem, a mount
 *   someone made), except an unpack's temporary one (labelled
 *   `containerd.io/snapshot.ref`: its lease holds it), and a container's
 *   snapshot;
 * - an ingest a writer holds open, and one no lease holds that was written to
 *   within the ingest expiry (containerd: 24 hours);
 * - every snapshot of a namespace a containerd keeps through a dist daemon as
 *   its proxy snapshotter (labelled PROXY_NAMESPACE_LABEL): that containerd
 *   owns and collects them.
 * References: a blob's and a snapshot's labels (labels.ts), a snapshot's
 * parent, an ingest's expected blob. The rest is garbage.
 */
import type { Digest } from "../digest.ts";
import { type Database, statement } from "../metadata/db.ts";
import { BACKEND_TABLE } from "../snapshots/storage.ts";
import {
  distSnapshotterName,
  GC_FLAT,
  GC_ROOT,
  labelRefs,
  leaseExpiry,
  optionalRef,
  PROXY_NAMESPACE_LABEL,
  SNAPSHOT_REF,
} from "./labels.ts";
import { mark } from "./mark.ts";
import { PROCESS_LABEL } from "./process-lease.ts";

export interface ContentRecord {
  namespace: string;
  digest: Digest;
  size: number;
  labels: Record<string, string>;
}

export interface SnapshotRecord {
  namespace: string;
  /** dist's name of the snapshotter ("overlay", "native"). */
  snapshotter: string;
  key: string;
  backendKey: string;
  parent?: string;
  labels: Record<string, string>;
  /** The backend snapshot's kind; undefined when the snapshotter has no such snapshot. */
  kind?: "active" | "view" | "committed";
}

export interface IngestRecord {
  namespace: string;
  ref: string;
  backendRef: string;
  expected?: Digest;
  /** Set for an ingest that stands for a blob another namespace committed (no bytes of its own). */
  sharedSize?: number;
  createdAtMs: number;
}

export interface LeaseRecord {
  namespace: string;
  id: string;
  labels: Record<string, string>;
  resources: { type: string; id: string }[];
}

export interface ImageRecord {
  namespace: string;
  name: string;
  digest: Digest;
  labels: Record<string, string>;
}

/** A container's snapshot (run/containers.ts records): a root, as containerd's containers are. */
export interface ContainerRoot {
  id: string;
  namespace: string;
  snapshotter: string;
  key: string;
}

export interface BackendSnapshot {
  snapshotter: string;
  name: string;
  parent?: string;
  kind: string;
}

/** Everything collection reads from the database. */
export interface Records {
  images: ImageRecord[];
  content: ContentRecord[];
  ingests: IngestRecord[];
  snapshots: SnapshotRecord[];
  leases: LeaseRecord[];
  backend: BackendSnapshot[];
  /** Namespaces whose snapshots a containerd owns (PROXY_NAMESPACE_LABEL). */
  proxyNamespaces: Set<string>;
}

/** Reads every namespace's records (inside the caller's transaction, so they are one state). */
export function loadRecords(db: Database): Records {
  const json = (s: string) => JSON.parse(s) as Record<string, string>;
  const images = (
    db.prepare("SELECT namespace, name, digest, labels FROM images ORDER BY namespace, name").all() as {
      namespace: string;
      name: string;
      digest: Digest;
      labels: string;
    }[]
  ).map((r) => ({ ...r, labels: json(r.labels) }));
  const content = (
    db.prepare("SELECT namespace, digest, size, labels FROM content_blobs ORDER BY namespace, digest").all() as {
      namespace: string;
      digest: Digest;
      size: number;
      labels: string;
    }[]
  ).map((r) => ({ ...r, size: Number(r.size), labels: json(r.labels) }));
  const ingests = (
    statement(
      db,
      "SELECT namespace, ref, backend_ref, expected, size, created_at FROM content_ingests ORDER BY namespace, ref",
    ).all() as unknown as {
      namespace: string;
      ref: string;
      backend_ref: string;
      expected: Digest | null;
      size: bigint | null;
      created_at: bigint;
    }[]
  ).map((r) => ({
    namespace: r.namespace,
    ref: r.ref,
    backendRef: r.backend_ref,
    expected: r.expected ?? undefined,
    sharedSize: r.size === null || r.expected === null ? undefined : Number(r.size),
    createdAtMs: Number(r.created_at / 1_000_000n),
  }));
  const backendRows = hasTable(db, BACKEND_TABLE)
    ? (db.prepare(`SELECT snapshotter, name, parent, kind FROM ${BACKEND_TABLE} ORDER BY id`).all() as {
        snapshotter: string;
        name: string;
        parent: string | null;
        kind: string;
      }[])
    : [];
  const backend = backendRows.map((r) => ({ ...r, parent: r.parent ?? undefined }));
  const kinds = new Map(backend.map((b) => [`${b.snapshotter}\0${b.name}`, b.kind]));
  const snapshots = (
    db
      .prepare(
        "SELECT namespace, snapshotter, key, backend_key, parent, labels FROM snapshots ORDER BY namespace, snapshotter, key",
      )
      .all() as {
      namespace: string;
      snapshotter: string;
      key: string;
      backend_key: string;
      parent: string | null;
      labels: string;
    }[]
  ).map((r) => ({
    namespace: r.namespace,
    snapshotter: r.snapshotter,
    key: r.key,
    backendKey: r.backend_key,
    parent: r.parent ?? undefined,
    labels: json(r.labels),
    kind: kinds.get(`${r.snapshotter}\0${r.backend_key}`) as SnapshotRecord["kind"],
  }));
  const resources = new Map<string, { type: string; id: string }[]>();
  for (const r of db
    .prepare("SELECT namespace, lease, type, id FROM lease_resources ORDER BY namespace, lease, type, id")
    .all() as { namespace: string; lease: string; type: string; id: string }[]) {
    const k = `${r.namespace}\0${r.lease}`;
    const list = resources.get(k) ?? [];
    list.push({ type: r.type, id: r.id });
    resources.set(k, list);
  }
  const leases = (
    db.prepare("SELECT namespace, id, labels FROM leases ORDER BY namespace, id").all() as {
      namespace: string;
      id: string;
      labels: string;
    }[]
  ).map((r) => ({
    namespace: r.namespace,
    id: r.id,
    labels: json(r.labels),
    resources: resources.get(`${r.namespace}\0${r.id}`) ?? [],
  }));
  const proxyNamespaces = new Set(
    (db.prepare("SELECT name, labels FROM namespaces").all() as { name: string; labels: string }[])
      .filter((r) => json(r.labels)[PROXY_NAMESPACE_LABEL] !== undefined)
      .map((r) => r.name),
  );
  return { images, content, ingests, snapshots, leases, backend, proxyNamespaces };
}

function hasTable(db: Database, name: string): boolean {
  return db.prepare("SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
}

/** A node of the graph: `<type>\0<namespace>\0<key>` (a snapshot's key is `<snapshotter>\0<key>`). */
export type Node = string & { readonly __node: unique symbol };

type NodeType = "content" | "snapshot" | "ingest" | "lease";
/** Flat variants: reached through a flat lease, their labels are not followed (containerd's upper type bit). */
type FlatType = "content-flat" | "snapshot-flat";

function node(type: NodeType | FlatType, namespace: string, key: string): Node {
  return `${type}\0${namespace}\0${key}` as Node;
}

export const contentNode = (ns: string, digest: string): Node => node("content", ns, digest);
export const snapshotNode = (ns: string, snapshotter: string, key: string): Node =>
  node("snapshot", ns, `${snapshotter}\0${key}`);
export const ingestNode = (ns: string, ref: string): Node => node("ingest", ns, ref);
export const leaseNode = (ns: string, id: string): Node => node("lease", ns, id);

function parse(n: Node): { type: NodeType | FlatType; namespace: string; key: string } {
  const [type, namespace, ...rest] = n.split("\0");
  return { type: type as NodeType | FlatType, namespace, key: rest.join("\0") };
}

/** A node's name for messages: `content sha256:… (ns default)`. */
export function describeNode(n: Node): string {
  const { type, namespace, key } = parse(n);
  const base = type.replace("-flat", "");
  const what = base === "snapshot" ? `snapshot ${key.replace("\0", "/")}` : `${base} ${key}`;
  return `${what} (namespace ${namespace})`;
}

/** Why a lease holds nothing any more. */
export type LeaseState = { live: true } | { live: false; reason: string };

/** What the mark needs to know besides the records. */
export interface MarkPolicy {
  now: Date;
  /** Whether the process holding a process lease lives. */
  processLive(namespace: string, id: string): boolean;
  /** Whether a writer holds the ingest open (then it is a root). */
  ingestOpen(rec: IngestRecord): boolean;
  /** When the ingest was last written to (ms since the epoch). */
  ingestUpdatedMs(rec: IngestRecord): number;
  ingestExpiryMs: number;
  /** Container snapshots (roots). */
  containers: ContainerRoot[];
  /** Images to leave out of the roots (what df calls reclaimable: images no container uses). */
  skipImage?(image: ImageRecord): boolean;
}

export interface Marked {
  reachable: Set<Node>;
  leases: Map<Node, LeaseState>;
  /** Problems met (dangling references, cycles, unreadable expiries): each once. */
  problems: string[];
}

/** The mark over `records` (see the module comment). */
export function markRecords(records: Records, policy: MarkPolicy): Marked {
  const problems = new Set<string>();
  const content = new Map(records.content.map((r) => [contentNode(r.namespace, r.digest), r]));
  const snapshots = new Map(records.snapshots.map((r) => [snapshotNode(r.namespace, r.snapshotter, r.key), r]));
  const ingests = new Map(records.ingests.map((r) => [ingestNode(r.namespace, r.ref), r]));
  const leaseStates = new Map<Node, LeaseState>();
  const roots: Node[] = [];
  /** Who first referenced each node ("image x (namespace default) references"), for a dangling one's message. */
  const referrers = new Map<Node, string>();
  const refer = (from: string | undefined, to: Node) => {
    if (from !== undefined && !referrers.has(to)) referrers.set(to, from);
    return to;
  };
  const labelled = (what: string, ns: string, labels: Record<string, string>, flat = false): Node[] => {
    const refs = labelRefs(labels);
    const from = `${what} references`;
    const type = flat ? "-flat" : "";
    return [
      // an index's manifests that were never fetched (other platforms) are not a problem
      ...refs.content.map((c) =>
        refer(optionalRef(c.key) ? undefined : from, node(`content${type}` as NodeType, ns, c.digest)),
      ),
      ...refs.snapshots.map((s) =>
        refer(from, node(`snapshot${type}` as NodeType, ns, `${distSnapshotterName(s.snapshotter)}\0${s.key}`)),
      ),
    ];
  };

  /**
   * What live leases hold: work in progress (a fetch labels a manifest for its
   * layers before they arrive), so what is missing below them is no problem.
   */
  const leaseRoots: Node[] = [];
  let quiet = false;
  const leased = new Set<Node>();
  for (const lease of records.leases) {
    const id = leaseNode(lease.namespace, lease.id);
    for (const r of lease.resources) {
      if (r.type === "ingests") leased.add(ingestNode(lease.namespace, r.id));
    }
    const state = leaseState(lease, policy, (p) => problems.add(p));
    leaseStates.set(id, state);
    if (!state.live) continue;
    leaseRoots.push(id);
    const flat = lease.labels[GC_FLAT] !== undefined ? "-flat" : "";
    for (const r of lease.resources) {
      const from = `lease ${lease.id} (namespace ${lease.namespace}) holds`;
      if (r.type === "content") leaseRoots.push(refer(from, node(`content${flat}` as NodeType, lease.namespace, r.id)));
      else if (r.type === "ingests") leaseRoots.push(ingestNode(lease.namespace, r.id));
      else if (r.type.startsWith("snapshots/")) {
        const sn = distSnapshotterName(r.type.slice("snapshots/".length));
        leaseRoots.push(refer(from, node(`snapshot${flat}` as NodeType, lease.namespace, `${sn}\0${r.id}`)));
      }
    }
  }
  for (const image of records.images) {
    if (policy.skipImage?.(image)) continue;
    const what = `image ${image.name} (namespace ${image.namespace})`;
    roots.push(refer(`${what} has the target`, contentNode(image.namespace, image.digest)));
    roots.push(...labelled(what, image.namespace, image.labels));
  }
  for (const c of records.content) if (c.labels[GC_ROOT] !== undefined) roots.push(contentNode(c.namespace, c.digest));
  for (const s of records.snapshots) {
    const temporary = s.labels[SNAPSHOT_REF] !== undefined && s.kind !== "committed";
    const inUse = (s.kind === "active" || s.kind === "view") && !temporary;
    const containerds = records.proxyNamespaces.has(s.namespace);
    if (inUse || containerds || s.labels[GC_ROOT] !== undefined)
      roots.push(snapshotNode(s.namespace, s.snapshotter, s.key));
  }
  for (const c of policy.containers) {
    roots.push(refer(`container ${c.id} uses`, snapshotNode(c.namespace, distSnapshotterName(c.snapshotter), c.key)));
  }
  const now = policy.now.getTime();
  for (const i of records.ingests) {
    const n = ingestNode(i.namespace, i.ref);
    const fresh = !leased.has(n) && now - policy.ingestUpdatedMs(i) < policy.ingestExpiryMs;
    if (fresh || policy.ingestOpen(i)) roots.push(n);
  }

  const refs = (n: Node): Node[] => {
    const { type, namespace, key } = parse(n);
    const flat = type.endsWith("-flat");
    if (type === "content" || type === "content-flat") {
      const rec = content.get(contentNode(namespace, key));
      if (!rec) return dangling(n);
      return flat ? [] : labelled(describeNode(n), namespace, rec.labels);
    }
    if (type === "snapshot" || type === "snapshot-flat") {
      const [sn, ...k] = key.split("\0");
      const rec = snapshots.get(snapshotNode(namespace, sn, k.join("\0")));
      if (!rec) return dangling(n);
      const out: Node[] = [];
      if (rec.parent !== undefined) {
        out.push(refer(`${describeNode(n)} has the parent`, node(type, namespace, `${sn}\0${rec.parent}`)));
      }
      if (!flat) out.push(...labelled(describeNode(n), namespace, rec.labels));
      return out;
    }
    if (type === "ingest") {
      // the expected blob may be another namespace's (a shared ingest): a reference only where it is here
      const rec = ingests.get(n);
      const expected = rec?.expected && contentNode(namespace, rec.expected);
      return expected && content.has(expected) ? [expected] : [];
    }
    return [];
  };
  const dangling = (n: Node): Node[] => {
    const from = referrers.get(n);
    if (from && !quiet) problems.add(`${from} ${describeNode(n)}, which does not exist`);
    return [];
  };
  // the leases' last: what only they reach is walked quietly
  const allRoots = function* () {
    yield* roots;
    quiet = true;
    yield* leaseRoots;
  };
  const reached = mark(allRoots(), refs, (path) => {
    problems.add(`reference cycle: ${path.map((p) => describeNode(p)).join(" → ")}`);
  });
  const reachable = new Set<Node>();
  for (const n of reached) reachable.add(n.replace("-flat\0", "\0") as Node);
  return { reachable, leases: leaseStates, problems: [...problems] };
}

function leaseState(lease: LeaseRecord, policy: MarkPolicy, problem: (p: string) => void): LeaseState {
  if (lease.labels[PROCESS_LABEL] !== undefined) {
    if (policy.processLive(lease.namespace, lease.id)) return { live: true };
    return { live: false, reason: `its process (pid ${lease.labels[PROCESS_LABEL]}) is gone` };
  }
  const expiry = leaseExpiry(lease.labels);
  if (expiry.kind === "invalid") {
    problem(
      `lease ${lease.id} (namespace ${lease.namespace}): containerd.io/gc.expire "${expiry.value}" is not an RFC 3339 time: ignored, the lease holds`,
    );
  }
  if (expiry.kind === "at" && expiry.at.getTime() <= policy.now.getTime()) {
    return { live: false, reason: `expired at ${expiry.at.toISOString()}` };
  }
  return { live: true };
}
