/**
 * The snapshots of a namespace (metadata/snapshots.ts) over a namespace-free
 * snapshotter: keys, parents, labels, usage and leases per namespace; commit
 * times; the snapshotter's own rows follow the records.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { closeAllDatabases } from "../../src/metadata/db.ts";
import { Metadata } from "../../src/metadata/metadata.ts";
import type { NamespacedSnapshotter } from "../../src/metadata/snapshots.ts";
import { epochNsOf, nowNs } from "../../src/time.ts";

const tmp = mkdtempSync(join(tmpdir(), "dist-md-snapshots-"));
after(() => {
  closeAllDatabases();
  rmSync(tmp, { recursive: true, force: true });
});

let n = 0;
const fresh = () => new Metadata(join(tmp, `root${n++}`));

const code = (c: string) => (e: Error & { code?: string }) => {
  assert.equal(e.code, c, e.message);
  return true;
};

async function keys(sn: NamespacedSnapshotter): Promise<string[]> {
  const out: string[] = [];
  await sn.walk((i) => void out.push(`${i.name}:${i.kind}`));
  return out;
}

/** The snapshotter's own names, below the namespaces. */
const backendNames = (md: Metadata) =>
  md
    .backendSnapshotter("native")
    .meta.list()
    .map((r) => r.name);

describe("namespaced snapshots", () => {
  it("the same key in two namespaces is two snapshots; each namespace walks and stats only its own", async () => {
    const md = fresh();
    const a = md.snapshotter("a", "native");
    const b = md.snapshotter("b", "native");
    const ma = await a.prepare("k");
    const mb = await b.prepare("k");
    assert.notEqual(ma[0].source, mb[0].source);
    writeFileSync(join(ma[0].source, "f"), "a's");
    await a.commit("base", "k");
    assert.deepEqual(await keys(a), ["base:committed"]);
    assert.deepEqual(await keys(b), ["k:active"]);
    await assert.rejects(b.stat("base"), code("NotFound"));
    await assert.rejects(b.mounts("base"), code("NotFound"));
    await assert.rejects(b.usage("base"), code("NotFound"));
    await assert.rejects(b.remove("base"), code("NotFound"));
    await assert.rejects(b.update({ name: "base", labels: {} }), code("NotFound"));
    assert.ok((await a.usage("base")).size > 0);
    assert.deepEqual(await keys(md.snapshotter("c", "native")), []);
  });

  it("a parent from another namespace does not exist; a key taken in another namespace is free", async () => {
    const md = fresh();
    const a = md.snapshotter("a", "native");
    const b = md.snapshotter("b", "native");
    await a.prepare("p");
    await a.commit("parent", "p");
    await assert.rejects(b.prepare("child", "parent"), (e: Error & { code?: string }) => {
      assert.equal(e.code, "NotFound");
      assert.match(e.message, /parent snapshot "parent" does not exist in namespace b/);
      return true;
    });
    await assert.rejects(b.view("v", "parent"), code("NotFound"));
    assert.deepEqual(await keys(b), [], "nothing half-made in B");
    await b.prepare("p");
    await b.commit("parent", "p");
    await b.prepare("child", "parent");
    assert.equal((await b.stat("child")).parent, "parent");
    assert.equal(backendNames(md).length, 3);
  });

  it("a commit's created and updated are the commit's time, in nanoseconds", async () => {
    const md = fresh();
    const sn = md.snapshotter("default", "native");
    await sn.prepare("k", undefined, { labels: { at: "prepare" } });
    const prepared = await sn.stat("k");
    assert.equal(epochNsOf(prepared.createdAt), epochNsOf(prepared.updatedAt));
    const t0 = nowNs();
    await sn.commit("c", "k", { labels: { at: "commit" } });
    const c = await sn.stat("c");
    assert.equal(epochNsOf(c.createdAt), epochNsOf(c.updatedAt));
    assert.ok(epochNsOf(c.createdAt) >= t0 && epochNsOf(c.createdAt) <= nowNs());
    assert.deepEqual(c.labels, { at: "commit" }, "a commit's labels are those it was given, as containerd's");
    const u = await sn.update({ name: "c", labels: { more: "1" } }, ["labels.more"]);
    assert.deepEqual(u.labels, { at: "commit", more: "1" });
    assert.ok(epochNsOf(u.updatedAt) > epochNsOf(u.createdAt));
  });

  it("the snapshotter below keeps only containerd's inherited labels", async () => {
    const md = fresh();
    const sn = md.snapshotter("default", "native");
    await sn.prepare("k", undefined, { labels: { "containerd.io/snapshot/x": "down", mine: "up" } });
    const [row] = md.backendSnapshotter("native").meta.list();
    assert.deepEqual(row.labels, { "containerd.io/snapshot/x": "down" });
    assert.deepEqual((await sn.stat("k")).labels, { "containerd.io/snapshot/x": "down", mine: "up" });
  });

  it("removing a key removes its snapshot below; a parent with children stays", async () => {
    const md = fresh();
    const sn = md.snapshotter("default", "native");
    await sn.prepare("p");
    await sn.commit("parent", "p");
    await sn.view("v", "parent");
    await assert.rejects(sn.remove("parent"), code("FailedPrecondition"));
    await sn.remove("v");
    await sn.remove("parent");
    assert.deepEqual(backendNames(md), []);
    assert.deepEqual(await keys(sn), []);
  });

  it("refuses what containerd refuses, leaving nothing behind", async () => {
    const md = fresh();
    const sn = md.snapshotter("default", "native");
    await sn.prepare("k");
    await assert.rejects(sn.prepare("k"), code("AlreadyExists"));
    await assert.rejects(sn.prepare("", undefined), code("InvalidArgument"));
    await assert.rejects(sn.prepare("n", "k"), code("FailedPrecondition"), "a parent must be committed");
    await assert.rejects(sn.commit("c", "missing"), code("NotFound"));
    await assert.rejects(sn.commit("", "k"), code("InvalidArgument"));
    await sn.view("v");
    await assert.rejects(sn.commit("c", "v"), code("FailedPrecondition"));
    await sn.commit("c", "k");
    await assert.rejects(sn.commit("c", "k"), code("AlreadyExists"));
    await assert.rejects(sn.prepare("x", undefined, { labels: { ["k".repeat(4097)]: "" } }), code("InvalidArgument"));
    assert.deepEqual((await keys(sn)).sort(), ["c:committed", "v:view"]);
    assert.equal(backendNames(md).length, 2);
  });

  it("writes under a lease put the keys on it; a lease that does not exist fails with nothing made", async () => {
    const md = fresh();
    md.leases("a").create("l");
    const sn = md.snapshotter("a", "native", { lease: "l" });
    await sn.prepare("k");
    assert.deepEqual(md.leases("a").listResources("l"), [{ type: "snapshots/native", id: "k" }]);
    await sn.commit("c", "k");
    assert.deepEqual(md.leases("a").listResources("l"), [{ type: "snapshots/native", id: "c" }]);
    const missing = md.snapshotter("a", "native", { lease: "nope" });
    await assert.rejects(missing.prepare("k2"), code("NotFound"));
    await assert.rejects(missing.commit("c2", "c"), code("NotFound"));
    assert.deepEqual(await keys(md.snapshotter("a", "native")), ["c:committed"]);
    assert.equal(backendNames(md).length, 1);
  });
});
