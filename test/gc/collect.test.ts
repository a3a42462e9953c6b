/**
 * Garbage collection over a root's records (src/gc): containerd's roots and
 * references, per namespace over the shared blob store and snapshotter, the
 * files following the records, and the bad input it must survive.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, describe, it } from "node:test";
import { writeBlob } from "../../src/content/helpers.ts";
import type { Digest } from "../../src/digest.ts";
import { digestOf } from "../../src/digest.ts";
import { type CollectResult, collectGarbage } from "../../src/gc/collect.ts";
import { GC_EXPIRE, GC_FLAT, GC_ROOT } from "../../src/gc/labels.ts";
import { holdProcessLease, PROCESS_LABEL } from "../../src/gc/process-lease.ts";
import { snapshotLabelKey } from "../../src/images/gc-labels.ts";
import { closeAllDatabases } from "../../src/metadata/db.ts";
import { Metadata } from "../../src/metadata/metadata.ts";
import { embeddedBackend } from "../../src/services/server/embedded.ts";

const tmp = mkdtempSync(join(tmpdir(), "dist-gc-"));
after(() => {
  closeAllDatabases();
  rmSync(tmp, { recursive: true, force: true });
});

let n = 0;
const fresh = () => new Metadata(join(tmp, `root${n++}`));

async function blob(
  md: Metadata,
  ns: string,
  text: string,
  labels: Record<string, string> = {},
  lease?: string,
): Promise<Digest> {
  const bytes = Buffer.from(text);
  const d = digestOf(bytes);
  await writeBlob(md.content(ns, { lease }), `ref-${d}`, Readable.from([bytes]), { expected: d, labels });
  return d;
}

async function digests(md: Metadata, ns: string): Promise<string[]> {
  const out: string[] = [];
  await md.content(ns).walk((i) => void out.push(i.digest));
  return out.sort();
}

const files = (md: Metadata) => {
  try {
    return readdirSync(join(md.root, "content", "blobs", "sha256")).length;
  } catch {
    return 0;
  }
};

async function keys(md: Metadata, ns: string): Promise<string[]> {
  const out: string[] = [];
  await md.snapshotter(ns, "native").walk((i) => void out.push(i.name));
  return out.sort();
}

const ids = (r: CollectResult, kind: string) =>
  r.removed
    .filter((x) => x.kind === kind)
    .map((x) => x.id)
    .sort();

/** An image whose manifest references a config and a layer, as a pull labels them. */
async function image(md: Metadata, ns: string, name: string, tag: string) {
  const layer = await blob(md, ns, `layer of ${tag}`);
  const config = await blob(md, ns, `config of ${tag}`);
  const manifest = await blob(md, ns, `manifest of ${tag}`, {
    "containerd.io/gc.ref.content.config": config,
    "containerd.io/gc.ref.content.l.0": layer,
  });
  await md.images(ns).create({
    name,
    target: { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: manifest, size: 1 },
    labels: {},
  });
  return { layer, config, manifest };
}

describe("garbage collection", () => {
  it("keeps an image's tree through its labels and removes the rest; a dry run removes nothing", async () => {
    const md = fresh();
    const img = await image(md, "default", "a", "a");
    const stray = await blob(md, "default", "nobody's");
    const dry = await collectGarbage(md, { dryRun: true });
    assert.deepEqual(ids(dry, "content"), [stray]);
    assert.equal(dry.totals.content.bytes, "nobody's".length);
    assert.equal((await digests(md, "default")).length, 4, "a dry run removes nothing");
    const r = await collectGarbage(md);
    assert.deepEqual(ids(r, "content"), [stray]);
    assert.deepEqual(r.totals.content, { count: 1, bytes: "nobody's".length });
    assert.deepEqual(await digests(md, "default"), [img.config, img.layer, img.manifest].sort());
    assert.equal(files(md), 3);
    assert.deepEqual(r.problems, []);
    await md.images("default").delete("a");
    const r2 = await collectGarbage(md);
    assert.equal(r2.totals.content.count, 3);
    assert.equal(files(md), 0);
    assert.deepEqual((await collectGarbage(md)).removed, [], "nothing left to collect");
  });

  it("keeps a blob another namespace references; its bytes go with the last record", async () => {
    const md = fresh();
    const img = await image(md, "a", "img", "shared");
    await blob(md, "b", "layer of shared");
    const r = await collectGarbage(md);
    assert.deepEqual(
      r.removed.map((x) => [x.namespace, x.id, x.bytes]),
      [["b", img.layer, 0]],
      "b's record goes, the file stays for a",
    );
    assert.equal(files(md), 3);
  });

  it("leases: live ones hold, expired and dead ones go; flat ones do not follow labels", async () => {
    const md = fresh();
    const leases = md.leases("default");
    leases.create("live", { [GC_EXPIRE]: new Date(Date.now() + 3_600_000).toISOString() });
    leases.create("expired", { [GC_EXPIRE]: "2015-12-05T00:00:00Z" });
    leases.create("bad-expiry", { [GC_EXPIRE]: "tomorrow" });
    leases.create("flat", { [GC_FLAT]: "1" });
    leases.create("dead-process", { [PROCESS_LABEL]: "1" });
    const child = await blob(md, "default", "child");
    const kept = await blob(md, "default", "kept", { "containerd.io/gc.ref.content": child }, "live");
    const lost = await blob(md, "default", "lost", {}, "expired");
    const bad = await blob(md, "default", "bad", {}, "bad-expiry");
    const flatChild = await blob(md, "default", "flat child");
    await blob(md, "default", "flat", { "containerd.io/gc.ref.content": flatChild }, "flat");
    const dead = await blob(md, "default", "dead", {}, "dead-process");
    const held = await holdProcessLease(md, "default");
    const mine = await blob(md, "default", "mine", {}, held.id);

    const r = await collectGarbage(md);
    assert.deepEqual(ids(r, "lease"), ["dead-process", "expired"]);
    assert.match(r.removed.find((x) => x.id === "expired")?.reason ?? "", /expired at 2015-12-05/);
    assert.match(r.removed.find((x) => x.id === "dead-process")?.reason ?? "", /pid 1\) is gone/);
    assert.deepEqual(ids(r, "content"), [dead, flatChild, lost].sort());
    const left = await digests(md, "default");
    for (const d of [child, kept, bad, mine]) assert.ok(left.includes(d));
    assert.deepEqual(r.problems, [
      'lease bad-expiry (namespace default): containerd.io/gc.expire "tomorrow" is not an RFC 3339 time: ignored, the lease holds',
    ]);
    held.release();
    assert.ok(!leases.list().some((l) => l.id === held.id), "released: deleted");
    assert.ok(
      (await collectGarbage(md)).removed.some((x) => x.id === mine),
      "then what it held is garbage",
    );
  });

  it("snapshots: the config's label keeps the chain; active ones are roots, an unpack's temporary one is its lease's", async () => {
    const md = fresh();
    const sn = md.snapshotter("default", "native");
    await sn.prepare("a", undefined);
    await sn.commit("L1", "a");
    await sn.prepare("b", "L1");
    await sn.commit("L2", "b");
    await sn.prepare("c", "L1");
    await sn.commit("other", "c");
    await sn.prepare("container", "L2");
    md.leases("default").create("pull", { [GC_EXPIRE]: "2000-01-01T00:00:00Z" });
    const leased = md.snapshotter("default", "native", { lease: "pull" });
    await leased.prepare("extract-1 sha256:x", "L2", { labels: { "containerd.io/snapshot.ref": "sha256:x" } });
    await sn.prepare("unleased-extract", "L2", { labels: { "containerd.io/snapshot.ref": "sha256:y" } });
    await blob(md, "default", "config", { [snapshotLabelKey("native")]: "L2" }, undefined);
    await md.images("default").create({
      name: "i",
      target: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: digestOf(Buffer.from("config")),
        size: 6,
      },
      labels: {},
    });
    const r = await collectGarbage(md);
    assert.deepEqual(ids(r, "snapshot"), ["native/extract-1 sha256:x", "native/other", "native/unleased-extract"]);
    assert.deepEqual(await keys(md, "default"), ["L1", "L2", "container"]);
    assert.ok(r.totals.snapshot.count === 3);
    assert.equal(md.backendSnapshotter("native").meta.list().length, 3, "the snapshotter's own follow");
    await md.images("default").delete("i");
    await sn.remove("container");
    const r2 = await collectGarbage(md);
    assert.deepEqual(ids(r2, "snapshot"), ["native/L1", "native/L2"], "children before parents");
    assert.equal(md.backendSnapshotter("native").meta.list().length, 0);
  });

  it("a containerd's proxy-snapshotter namespace: its snapshots are that containerd's, never collected", async () => {
    const root = join(tmp, `root${n++}`);
    // the daemon's backend labels each alias's namespace as it starts
    await embeddedBackend(root, { snapshotterAliases: { dist: "native" } }).close();
    const md = new Metadata(root);
    const theirs = md.snapshotter("dist", "native");
    await theirs.prepare("default/1/extract", undefined);
    await theirs.commit("default/2/sha256:layer", "default/1/extract");
    const ours = md.snapshotter("default", "native");
    await ours.prepare("a", undefined);
    await ours.commit("stray", "a");
    const r = await collectGarbage(md);
    assert.deepEqual(ids(r, "snapshot"), ["native/stray"]);
    assert.deepEqual(await keys(md, "dist"), ["default/2/sha256:layer"]);
  });

  it("gc.root labels make roots; an overlayfs label names the overlay snapshotter", async () => {
    const md = fresh();
    const rooted = await blob(md, "default", "rooted", { [GC_ROOT]: "2020-01-01T00:00:00Z" });
    const r = await collectGarbage(md, { dryRun: true });
    assert.ok(!ids(r, "content").includes(rooted));
    assert.equal(snapshotLabelKey("overlay"), "containerd.io/gc.ref.snapshot.overlayfs");
  });

  it("bad input: missing targets, cycles, a missing file, a missing parent: reported once, nothing reachable removed", async () => {
    const md = fresh();
    const missing = digestOf(Buffer.from("never stored"));
    const a = await blob(md, "default", "a", { "containerd.io/gc.ref.content.x": missing });
    const b = await blob(md, "default", "b", { "containerd.io/gc.ref.content": a });
    await md
      .content("default")
      .update(a, { "containerd.io/gc.ref.content.back": b }, ["labels.containerd.io/gc.ref.content.back"]);
    const c = await blob(md, "default", "c");
    const d = await blob(md, "default", "d", { "containerd.io/gc.ref.content": c });
    await md
      .content("default")
      .update(c, { "containerd.io/gc.ref.content": d }, ["labels.containerd.io/gc.ref.content"]);
    for (const name of ["x", "y"]) {
      await md.images("default").create({
        name,
        target: { mediaType: "application/octet-stream", digest: b, size: 1 },
        labels: {},
      });
    }
    const gone = await blob(md, "default", "file gone");
    unlinkSync(md.blobs.blobPath(gone));
    const sn = md.snapshotter("default", "native");
    await sn.prepare("p", undefined);
    await sn.commit("parent", "p");
    await sn.prepare("k", "parent");
    await sn.commit("child", "k");
    await sn.update({ name: "child", labels: { [GC_ROOT]: "x" } });
    md.db.prepare("DELETE FROM snapshots WHERE key = 'parent'").run();

    const r = await collectGarbage(md);
    const left = await digests(md, "default");
    assert.ok(left.includes(a) && left.includes(b), "a reachable cycle stays");
    assert.ok(!left.includes(c) && !left.includes(d), "an unreachable cycle goes");
    assert.ok(!left.includes(gone), "a record without its file goes");
    assert.deepEqual(await keys(md, "default"), ["child"]);
    assert.deepEqual(
      r.problems.sort(),
      [
        `content ${a} (namespace default) references content ${missing} (namespace default), which does not exist`,
        `content ${gone} (namespace default) is recorded but its file is missing: record removed`,
        `reference cycle: content ${b} (namespace default) → content ${a} (namespace default) → content ${b} (namespace default)`,
        "snapshot native/child (namespace default) has the parent snapshot native/parent (namespace default), which does not exist",
      ].sort(),
    );
    assert.equal(
      md.backendSnapshotter("native").meta.list().length,
      2,
      "the parent's own snapshot stays under the child",
    );
  });

  it("work in progress: a leased manifest labelled for layers not there yet is no problem; an image's is", async () => {
    const md = fresh();
    md.leases("default").create("fetching");
    const layer = digestOf(Buffer.from("still downloading"));
    const manifest = await blob(md, "default", "manifest", { "containerd.io/gc.ref.content.l.0": layer }, "fetching");
    const r = await collectGarbage(md);
    assert.deepEqual(r.problems, []);
    assert.deepEqual(r.removed, []);
    await md.images("default").create({
      name: "done",
      target: { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: manifest, size: 8 },
      labels: {},
    });
    assert.deepEqual((await collectGarbage(md, { dryRun: true })).problems, [
      `content ${manifest} (namespace default) references content ${layer} (namespace default), which does not exist`,
    ]);
  });

  it("ingests: fresh and open ones stay, stale ones and directories nobody records go", async () => {
    const md = fresh();
    const content = md.content("default");
    const open = await content.writer({ ref: "open" });
    await open.write(Buffer.from("writing"));
    const stale = await content.writer({ ref: "stale" });
    await stale.write(Buffer.from("stale bytes"));
    await stale.close();
    const fresh1 = await content.writer({ ref: "fresh" });
    await fresh1.close();
    assert.deepEqual(ids(await collectGarbage(md), "ingest"), [], "within the expiry, all stay");
    const r = await collectGarbage(md, { ingestExpiryMs: 0 });
    assert.deepEqual(ids(r, "ingest"), ["fresh", "stale"]);
    assert.equal(r.removed.find((x) => x.id === "stale")?.bytes, "stale bytes".length);
    await open.write(Buffer.from(" on"));
    await open.commit();
    // a directory without a record (a collection killed after its records went)
    const orphan = join(md.root, "content", "ingest", "feed");
    mkdirSync(orphan);
    writeFileSync(join(orphan, "ref"), "default/99/orphan");
    writeFileSync(join(orphan, "data"), "12345");
    const r2 = await collectGarbage(md, { ingestExpiryMs: 0 });
    assert.deepEqual(
      r2.removed.filter((x) => x.kind === "ingest").map((x) => [x.namespace, x.id, x.bytes]),
      [[undefined, "default/99/orphan", 5]],
    );
  });

  it("a collection killed after phase 1 leaves files that the next one removes; two at once are serialised", async () => {
    const md = fresh();
    const stray = await blob(md, "default", "stray");
    const sn = md.snapshotter("default", "native");
    await sn.prepare("x", undefined);
    await sn.commit("y", "x");
    // what phase 1 leaves: records gone, files and backend snapshots still there
    md.db.prepare("DELETE FROM content_blobs").run();
    md.db.prepare("DELETE FROM snapshots").run();
    const [r1, r2] = await Promise.all([collectGarbage(md), collectGarbage(md)]);
    const all = [...r1.removed, ...r2.removed];
    assert.deepEqual(
      all.map((x) => [x.kind, x.namespace, x.id]).sort(),
      [
        ["content", undefined, stray],
        ["snapshot", undefined, `native/${md.backendSnapshotter("native").meta.list()[0]?.name ?? "default/2/y"}`],
      ].sort(),
    );
    assert.equal(files(md), 0);
    assert.equal(md.backendSnapshotter("native").meta.list().length, 0);
  });

  it("only: a targeted collection takes just the named blobs, when nothing reaches them", async () => {
    const md = fresh();
    const img = await image(md, "default", "a", "a");
    const stray = await blob(md, "default", "stray");
    const layer = await blob(md, "default", "unreferenced layer");
    const r = await collectGarbage(md, { only: { namespace: "default", content: [layer, img.layer] } });
    assert.deepEqual(ids(r, "content"), [layer]);
    assert.ok((await digests(md, "default")).includes(stray), "the rest stays");
  });
});
