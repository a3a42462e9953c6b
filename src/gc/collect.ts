/**
 * Garbage collection of a root (containerd's metadata.DB GarbageCollect): the
 * mark over every namespace's records (graph.ts), then the sweep, in two
 * phases as containerd's:
 *
 * 1. One write transaction marks and removes the records nothing reaches:
 *    blobs, snapshots and ingests per namespace, and the leases that are dead.
 *    Writers wait meanwhile, so nothing changes between the mark and the sweep.
 * 2. The files follow the records: a blob file no namespace records (and no
 *    ingest stands for), an ingest directory no record names (and no writer
 *    holds), a snapshot of a snapshotter no record maps onto (children before
 *    parents). Each is checked again, under the lock or transaction that keeps
 *    a writer from making it live meanwhile, before it goes. This phase works
 *    from the records as they are, not from phase 1's list, so a collection
 *    killed at any point leaves a store the next one completes.
 *
 * Collections are serialised by a lock file (`<root>/gc.lock`), across
 * processes. Problems met on the way (a reference to nothing, a cycle, an
 * unreadable expiry, a record whose file is gone) are reported once each,
 * never a reason to stop: a record whose file is gone is removed (the blob is
 * not there to keep; a fetch gets it again), nothing reachable ever is.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { acquireRefLock, type RefLock } from "../content/local/lock.ts";
import type { Digest } from "../digest.ts";
import { errorMessage } from "../errors.ts";
import { blobHeld } from "../metadata/content.ts";
import { transaction } from "../metadata/db.ts";
import type { Metadata } from "../metadata/metadata.ts";
import { listRecords } from "../run/containers.ts";
import { SNAPSHOTTERS } from "../snapshots/open.ts";
import {
  contentNode,
  type IngestRecord,
  ingestNode,
  leaseNode,
  loadRecords,
  markRecords,
  type Records,
  type SnapshotRecord,
  snapshotNode,
} from "./graph.ts";
import { processLeaseLive } from "./process-lease.ts";

/** What garbage collection removes. */
export type RemovedKind = "content" | "snapshot" | "ingest" | "lease";

/** One thing removed (or, in a dry run, that would be). */
export interface Removed {
  kind: RemovedKind;
  /** Undefined for a file no record named (left by an interrupted operation). */
  namespace?: string;
  /** A digest, `<snapshotter>/<key>`, an ingest ref or a lease id. */
  id: string;
  /** Bytes freed on disk (0 where the bytes stay for another namespace, or had gone already). */
  bytes: number;
  /** Why, where it is not simply unreachable (a lease expired, a file gone). */
  reason?: string;
}

/** Counts and bytes of one kind. */
export interface RemovedTotals {
  count: number;
  bytes: number;
}

/** What a collection did (or, with dryRun, would do). */
export interface CollectResult {
  dryRun: boolean;
  removed: Removed[];
  totals: Record<RemovedKind, RemovedTotals>;
  /** Problems met, each once (see the module comment). */
  problems: string[];
  elapsedMs: number;
}

/** Options of collectGarbage. */
export interface CollectOptions {
  /** Say what would go, remove nothing. */
  dryRun?: boolean;
  /** How long an ingest no lease holds is kept after its last write (ms; default 24 h, containerd's). */
  ingestExpiryMs?: number;
  /**
   * Collect only these blobs of this namespace (when nothing reaches them): the
   * layers a `pull --discard-layers` unpacked. Nothing else is touched.
   */
  only?: { namespace: string; content: readonly Digest[] };
  /** Images left out of the roots (df's question: what would deleting these free?); dry runs only. */
  skipImage?: (image: { namespace: string; name: string }) => boolean;
  /** How long to wait for another collection (ms; default 10 min). */
  lockTimeout?: number;
  signal?: AbortSignal;
}

export const DEFAULT_INGEST_EXPIRY_MS = 24 * 3_600_000;
const DEFAULT_LOCK_TIMEOUT = 10 * 60_000;

/**
 * Collects the garbage of a root: see the module comment.
 *
 * @example
 * ```ts
 * const r = await collectGarbage(openMetadata("/var/lib/dist"));
 * console.log(r.totals.content.count, "blobs,", r.totals.content.bytes, "bytes");
 * ```
 */
export async function collectGarbage(md: Metadata, opts: CollectOptions = {}): Promise<CollectResult> {
  const started = performance.now();
  const dryRun = opts.dryRun === true || opts.skipImage !== undefined;
  const lock = await acquireRefLock(md.root, "gc.lock", `gc:${md.root}`, {
    timeout: opts.lockTimeout ?? DEFAULT_LOCK_TIMEOUT,
    signal: opts.signal,
  });
  try {
    const removed: Removed[] = [];
    const problems = new Set<string>();
    const updated = await ingestActivity(md);
    const containers = listRecords(md.root).map((c) => ({
      id: c.id,
      namespace: c.namespace,
      snapshotter: c.snapshotter,
      key: c.snapshotKey,
    }));
    const held: RefLock[] = [];
    let swept: Swept;
    try {
      swept = transaction(md.db, () => {
        const records = loadRecords(md.db);
        const marked = markRecords(records, {
          now: new Date(),
          processLive: (ns, id) => processLeaseLive(md.root, ns, id),
          ingestOpen: (rec) => {
            if (rec.sharedSize !== undefined) return false;
            const l = md.blobs.tryLockIngest(rec.backendRef);
            if (!l) return true;
            // held until the records are gone: no writer resumes an ingest being removed
            held.push(l);
            return false;
          },
          ingestUpdatedMs: (rec) => Math.max(rec.createdAtMs, updated.get(rec.backendRef) ?? 0),
          ingestExpiryMs: opts.ingestExpiryMs ?? DEFAULT_INGEST_EXPIRY_MS,
          containers,
          skipImage: opts.skipImage,
        });
        for (const p of marked.problems) problems.add(p);
        const plan = planSweep(md, records, marked.reachable, marked.leases, opts.only, (p) => problems.add(p));
        if (!dryRun) deleteRecords(md, plan);
        return plan;
      });
    } finally {
      for (const l of held) l.release();
    }
    removed.push(...swept.removed);
    await sweepFiles(md, swept, dryRun, opts.only, removed, (p) => problems.add(p));
    return summarize(dryRun, removed, [...problems], performance.now() - started);
  } finally {
    lock.release();
  }
}

/** When each ingest of the blob store was last written to (ms), by its ref there. */
async function ingestActivity(md: Metadata): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const st of await md.blobs.listStatuses()) out.set(st.ref, st.updatedAt.getTime());
  return out;
}

/** What phase 1 removes, and what phase 2 needs to know of it. */
interface Swept {
  removed: Removed[];
  content: { namespace: string; digest: Digest }[];
  snapshots: SnapshotRecord[];
  ingests: IngestRecord[];
  leases: { namespace: string; id: string }[];
  /** After the sweep: digests some record or ingest still holds. */
  heldDigests: Set<string>;
  /** After the sweep: backend refs of the ingests still recorded. */
  ingestRefs: Set<string>;
  /** After the sweep: `<snapshotter>\0<backend key>` of the snapshots still recorded. */
  backendKeys: Set<string>;
  /** The snapshotters that have snapshots of their own. */
  backendSnapshotters: Set<string>;
}

function planSweep(
  md: Metadata,
  records: Records,
  reachable: Set<string>,
  leaseStates: Map<string, { live: boolean; reason?: string }>,
  only: CollectOptions["only"],
  problem: (p: string) => void,
): Swept {
  const removed: Removed[] = [];
  const onlyContent = only && new Set<string>(only.content);
  const content: Swept["content"] = [];
  for (const c of records.content) {
    const candidate = !only || (c.namespace === only.namespace && onlyContent?.has(c.digest));
    if (!candidate) continue;
    if (!md.blobs.hasBlob(c.digest)) {
      problem(`content ${c.digest} (namespace ${c.namespace}) is recorded but its file is missing: record removed`);
      content.push(c);
      removed.push({ kind: "content", namespace: c.namespace, id: c.digest, bytes: 0, reason: "its file was missing" });
      continue;
    }
    if (reachable.has(contentNode(c.namespace, c.digest))) continue;
    content.push(c);
    removed.push({ kind: "content", namespace: c.namespace, id: c.digest, bytes: 0 });
  }
  const snapshots: SnapshotRecord[] = [];
  const ingests: IngestRecord[] = [];
  const leases: Swept["leases"] = [];
  if (!only) {
    const goes = (s: SnapshotRecord) => !reachable.has(snapshotNode(s.namespace, s.snapshotter, s.key));
    const parents = new Set(
      records.snapshots.filter((s) => !goes(s) && s.parent).map((s) => `${s.namespace}\0${s.snapshotter}\0${s.parent}`),
    );
    for (const s of records.snapshots) {
      const id = `${s.snapshotter}/${s.key}`;
      if (s.kind === undefined) {
        const what = `snapshot ${id} (namespace ${s.namespace}) is recorded but missing from the ${s.snapshotter} snapshotter`;
        // a record of nothing goes, unless a snapshot that stays names it as its parent
        if (!parents.has(`${s.namespace}\0${s.snapshotter}\0${s.key}`)) {
          problem(`${what}: record removed`);
          snapshots.push(s);
          removed.push({
            kind: "snapshot",
            namespace: s.namespace,
            id,
            bytes: 0,
            reason: "missing from its snapshotter",
          });
        } else problem(`${what}: kept (a snapshot that stays has it as its parent)`);
        continue;
      }
      if (!goes(s)) continue;
      snapshots.push(s);
      removed.push({ kind: "snapshot", namespace: s.namespace, id, bytes: 0 });
    }
    for (const i of records.ingests) {
      if (reachable.has(ingestNode(i.namespace, i.ref))) continue;
      ingests.push(i);
      removed.push({ kind: "ingest", namespace: i.namespace, id: i.ref, bytes: 0 });
    }
    for (const l of records.leases) {
      const state = leaseStates.get(leaseNode(l.namespace, l.id));
      if (state?.live !== false) continue;
      leases.push(l);
      removed.push({ kind: "lease", namespace: l.namespace, id: l.id, bytes: 0, reason: state.reason });
    }
  }
  const gone = new Set(content.map((c) => `${c.namespace}\0${c.digest}`));
  const goneIngests = new Set(ingests.map((i) => `${i.namespace}\0${i.ref}`));
  const goneSnapshots = new Set(snapshots.map((s) => `${s.namespace}\0${s.snapshotter}\0${s.key}`));
  const heldDigests = new Set<string>();
  for (const c of records.content) if (!gone.has(`${c.namespace}\0${c.digest}`)) heldDigests.add(c.digest);
  const ingestRefs = new Set<string>();
  for (const i of records.ingests) {
    if (goneIngests.has(`${i.namespace}\0${i.ref}`)) continue;
    ingestRefs.add(i.backendRef);
    if (i.expected) heldDigests.add(i.expected);
  }
  const backendKeys = new Set<string>();
  for (const s of records.snapshots) {
    if (!goneSnapshots.has(`${s.namespace}\0${s.snapshotter}\0${s.key}`))
      backendKeys.add(`${s.snapshotter}\0${s.backendKey}`);
  }
  const backendSnapshotters = new Set(records.backend.map((b) => b.snapshotter));
  return { removed, content, snapshots, ingests, leases, heldDigests, ingestRefs, backendKeys, backendSnapshotters };
}

function deleteRecords(md: Metadata, plan: Swept): void {
  const db = md.db;
  const blob = db.prepare("DELETE FROM content_blobs WHERE namespace = ? AND digest = ?");
  for (const c of plan.content) blob.run(c.namespace, c.digest);
  const snap = db.prepare("DELETE FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?");
  for (const s of plan.snapshots) snap.run(s.namespace, s.snapshotter, s.key);
  const ingest = db.prepare("DELETE FROM content_ingests WHERE namespace = ? AND ref = ?");
  for (const i of plan.ingests) ingest.run(i.namespace, i.ref);
  // their resources go with them (ON DELETE CASCADE)
  const lease = db.prepare("DELETE FROM leases WHERE namespace = ? AND id = ?");
  for (const l of plan.leases) lease.run(l.namespace, l.id);
}

/** Phase 2 (see the module comment): the files no record holds, with their bytes put on what removed them. */
async function sweepFiles(
  md: Metadata,
  plan: Swept,
  dryRun: boolean,
  only: CollectOptions["only"],
  removed: Removed[],
  problem: (p: string) => void,
): Promise<void> {
  const credit = (kind: RemovedKind, match: (r: Removed) => boolean, bytes: number, orphan: () => Removed) => {
    const r = removed.find((x) => x.kind === kind && x.bytes === 0 && !x.reason && match(x));
    if (r) r.bytes = bytes;
    else removed.push({ ...orphan(), bytes });
  };

  // blobs
  const files: { digest: Digest; size: number }[] = [];
  const onlyDigests = only && new Set<string>(only.content);
  await md.blobs.walk((info) => {
    if (!onlyDigests || onlyDigests.has(info.digest)) files.push({ digest: info.digest, size: info.size });
  });
  const freed = dryRun
    ? files.filter((f) => !plan.heldDigests.has(f.digest))
    : transaction(md.db, () => files.filter((f) => !blobHeld(md.db, f.digest) && md.blobs.removeBlob(f.digest)));
  for (const f of freed) {
    credit(
      "content",
      (r) => r.id === f.digest,
      f.size,
      () => ({ kind: "content", id: f.digest, bytes: 0 }),
    );
  }
  if (only) return;

  // ingests
  const byRef = new Map(plan.ingests.map((i) => [i.backendRef, i]));
  const prunedIngests = await md.blobs.pruneIngests(
    0,
    (ref) => ref === undefined || (dryRun ? !plan.ingestRefs.has(ref) : !ingestRecorded(md, ref)),
    dryRun,
  );
  for (const st of prunedIngests) {
    const rec = byRef.get(st.ref);
    credit(
      "ingest",
      (r) => rec !== undefined && r.namespace === rec.namespace && r.id === rec.ref,
      st.offset,
      () => ({ kind: "ingest", id: st.ref, bytes: 0 }),
    );
  }

  // snapshots, per snapshotter, children before parents
  const names = new Set<string>([
    ...plan.snapshots.map((s) => s.snapshotter),
    ...plan.backendSnapshotters,
    ...SNAPSHOTTERS.filter((s) => existsSync(join(md.root, "snapshots", s))),
  ]);
  for (const name of names) {
    let sn: ReturnType<Metadata["backendSnapshotter"]>;
    try {
      sn = md.backendSnapshotter(name);
    } catch {
      continue;
    }
    const rows = sn.meta.list();
    const children = new Map<string, string[]>();
    for (const r of rows) {
      if (r.parent === undefined) continue;
      const list = children.get(r.parent) ?? [];
      list.push(r.name);
      children.set(r.parent, list);
    }
    const referenced = (key: string) =>
      dryRun
        ? plan.backendKeys.has(`${name}\0${key}`)
        : md.db
            .prepare("SELECT 1 AS x FROM snapshots WHERE snapshotter = ? AND backend_key = ? LIMIT 1")
            .get(name, key) !== undefined;
    const byBackend = new Map(plan.snapshots.filter((s) => s.snapshotter === name).map((s) => [s.backendKey, s]));
    /** Removes what it can below `key`, then `key`; true when `key` went. */
    const prune = async (key: string): Promise<boolean> => {
      let all = true;
      for (const child of children.get(key) ?? []) all = (await prune(child)) && all;
      if (!all || referenced(key)) return false;
      const size = await sn
        .usage(key)
        .then((u) => u.size)
        .catch(() => 0);
      if (!dryRun) {
        let cleanup: (() => Promise<void>) | undefined;
        try {
          cleanup = transaction(md.db, () => (referenced(key) ? undefined : sn.detach(key)));
        } catch (err) {
          problem(`snapshot ${name}/${key}: not removed: ${errorMessage(err)}`);
          return false;
        }
        if (!cleanup) return false;
        await cleanup();
      }
      const rec = byBackend.get(key);
      credit(
        "snapshot",
        (r) => rec !== undefined && r.namespace === rec.namespace && r.id === `${name}/${rec.key}`,
        size,
        () => ({ kind: "snapshot", id: `${name}/${key}`, bytes: 0 }),
      );
      return true;
    };
    for (const r of rows) if (r.parent === undefined || !rows.some((p) => p.name === r.parent)) await prune(r.name);
    for (const o of await sn.removeOrphanDirs(dryRun)) {
      removed.push({
        kind: "snapshot",
        id: `${name}/${o.path}`,
        bytes: o.size,
        reason: "a directory without a record",
      });
    }
  }
}

function ingestRecorded(md: Metadata, backendRef: string): boolean {
  return (
    md.db.prepare("SELECT 1 AS x FROM content_ingests WHERE backend_ref = ? LIMIT 1").get(backendRef) !== undefined
  );
}

function summarize(dryRun: boolean, removed: Removed[], problems: string[], elapsedMs: number): CollectResult {
  const totals: Record<RemovedKind, RemovedTotals> = {
    content: { count: 0, bytes: 0 },
    snapshot: { count: 0, bytes: 0 },
    ingest: { count: 0, bytes: 0 },
    lease: { count: 0, bytes: 0 },
  };
  for (const r of removed) {
    totals[r.kind].count++;
    totals[r.kind].bytes += r.bytes;
  }
  return { dryRun, removed, totals, problems, elapsedMs: Math.round(elapsedMs * 10) / 10 };
}
