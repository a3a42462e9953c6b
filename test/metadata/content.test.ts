/**
 * The content of a namespace (metadata/content.ts) over the shared blob store:
 * what each namespace sees, containerd's shared policy, commits, aborts, leases
 * and nanosecond times.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import type { Info, Writer } from "../../src/content/content.ts";
import { type Digest, digestOf } from "../../src/digest.ts";
import type { NamespacedContentStore } from "../../src/metadata/content.ts";
import { closeAllDatabases } from "../../src/metadata/db.ts";
import { Metadata } from "../../src/metadata/metadata.ts";
import { epochNsOf, nowNs } from "../../src/time.ts";

const tmp = mkdtempSync(join(tmpdir(), "dist-md-content-"));
after(() => {
  closeAllDatabases();
  rmSync(tmp, { recursive: true, force: true });
});

let n = 0;
const fresh = (opts: { lockTimeout?: number } = {}) => new Metadata(join(tmp, `root${n++}`), opts);

const code = (c: string) => (e: Error & { code?: string }) => {
  assert.equal(e.code, c, e.message);
  return true;
};

async function put(s: NamespacedContentStore, data: string, ref = `ref-${data}`): Promise<Digest> {
  const w = await s.writer({ ref });
  await w.write(Buffer.from(data));
  await w.commit(Buffer.byteLength(data), digestOf(data));
  return digestOf(data);
}

async function digests(s: NamespacedContentStore): Promise<string[]> {
  const out: string[] = [];
  await s.walk((i) => void out.push(i.digest));
  return out.sort();
}

const ingestDirs = (md: Metadata) => {
  const dir = join(md.blobs.contentRoot, "ingest");
  return existsSync(dir) ? readdirSync(dir) : [];
};

describe("namespaced content: what each namespace sees", () => {
  it("a blob committed in A is not in B: Info, Walk, reads and Delete in B say NotFound", async () => {
    const md = fresh();
    const a = md.content("a");
    const b = md.content("b");
    const d = await put(a, "only in a");
    assert.equal((await a.info(d)).size, 9);
    await assert.rejects(b.info(d), code("NotFound"));
    await assert.rejects(b.openRead(d), code("NotFound"));
    await assert.rejects(b.readAt(d, Buffer.alloc(4), 0), code("NotFound"));
    await assert.rejects(b.delete(d), code("NotFound"));
    await assert.rejects(b.update(d, { x: "1" }), code("NotFound"));
    assert.deepEqual(await digests(b), []);
    assert.deepEqual(await digests(a), [d]);
  });

  it("labels are the namespace's own", async () => {
    const md = fresh();
    const a = md.content("a");
    const b = md.content("b");
    const d = await put(a, "labelled");
    const w = await b.writer({ ref: "x", expected: d });
    await w.commit();
    await a.update(d, { team: "a" });
    await b.update(d, { team: "b", only: "b" });
    assert.deepEqual((await a.info(d)).labels, { team: "a" });
    assert.deepEqual((await b.info(d)).labels, { team: "b", only: "b" });
    assert.deepEqual((await a.update(d, { only: "a" }, ["labels.only"])).labels, { team: "a", only: "a" });
    await assert.rejects(a.update(d, {}, ["size"]), code("InvalidArgument"));
    await assert.rejects(a.update(d, { ["k".repeat(4000)]: "v".repeat(100) }), code("InvalidArgument"));
  });

  it("walks with digest-prefix and label filters", async () => {
    const md = fresh();
    const s = md.content("default");
    const a = await put(s, "alpha");
    const b = await put(s, "beta");
    const c = await put(s, "gamma");
    await s.update(a, { keep: "yes", team: "x" });
    await s.update(b, { keep: "no" });
    const seen = async (filter?: Parameters<NamespacedContentStore["walk"]>[1]) => {
      const out: string[] = [];
      await s.walk((i) => void out.push(i.digest), filter);
      return out.sort();
    };
    assert.deepEqual(await seen(), [a, b, c].sort());
    assert.deepEqual(await seen({ digestPrefixes: [a.slice(0, 12)] }), [a]);
    assert.deepEqual(await seen({ digestPrefixes: [a.slice(7, 14)] }), [a]);
    assert.deepEqual(await seen({ labels: ["keep"] }), [a, b].sort());
    assert.deepEqual(await seen({ labels: ["keep=yes"] }), [a]);
    assert.deepEqual(await seen({ labels: ["keep=yes", "team=y"] }), []);
  });

  it("ingests are the namespace's own: the same ref in two namespaces is two ingests, with two locks", async () => {
    const md = fresh({ lockTimeout: 100 });
    const a = md.content("a");
    const b = md.content("b");
    const wa = await a.writer({ ref: "same" });
    const wb = await b.writer({ ref: "same" }); // would wait, then Unavailable, were the lock shared
    await wa.write(Buffer.from("aaa"));
    await wb.write(Buffer.from("b"));
    assert.deepEqual(
      (await a.listStatuses()).map((s) => [s.ref, s.offset]),
      [["same", 3]],
    );
    assert.deepEqual(
      (await b.listStatuses()).map((s) => [s.ref, s.offset]),
      [["same", 1]],
    );
    assert.deepEqual(await md.content("c").listStatuses(), []);
    await assert.rejects(md.content("c").status("same"), code("NotFound"));
    await assert.rejects(md.content("c").abort("same"), code("NotFound"));
    await wa.commit(3, digestOf("aaa"));
    assert.equal((await b.status("same")).offset, 1, "A's commit leaves B's ingest alone");
    await wb.close();
  });
});

describe("namespaced content: containerd's shared policy", () => {
  it("a writer in B for a digest only A has starts at its size; the commit records it in B at B's time", async () => {
    const md = fresh();
    const a = md.content("a");
    const b = md.content("b");
    const d = await put(a, "shared bytes");
    const before = nowNs();
    const w = await b.writer({ ref: "share", expected: d });
    assert.equal(w.status().offset, 12);
    assert.equal(w.status().total, 12);
    assert.equal(w.digest(), d);
    assert.deepEqual(
      (await b.listStatuses()).map((s) => [s.ref, s.offset, s.expected]),
      [["share", 12, d]],
    );
    await w.commit(12, d, { labels: { in: "b" } });
    const info = await b.info(d);
    const at = epochNsOf(info.createdAt);
    assert.ok(at >= before && at <= nowNs(), "created at B's commit, in nanoseconds");
    assert.equal(epochNsOf(info.updatedAt), at);
    assert.ok(at > epochNsOf((await a.info(d)).createdAt));
    assert.deepEqual(info.labels, { in: "b" });
    assert.deepEqual(await b.listStatuses(), []);
    assert.equal(readdirSync(join(md.blobs.contentRoot, "blobs", "sha256")).length, 1, "one copy of the bytes");
    await assert.rejects(b.writer({ ref: "again", expected: d }), code("AlreadyExists"));
  });

  it("appending to a shared writer copies the blob first (CrossNamespaceAppend)", async () => {
    const md = fresh();
    const d = await put(md.content("a"), "head");
    const b = md.content("b");
    const w = await b.writer({ ref: "append", expected: d });
    await w.write(Buffer.from("+tail"));
    assert.equal(w.status().offset, 9);
    await w.commit(9, digestOf("head+tail"));
    assert.deepEqual(await digests(b), [digestOf("head+tail")]);
    // truncating a shared writer starts it empty
    const w2 = await b.writer({ ref: "trunc", expected: d });
    await w2.truncate(0);
    assert.equal(w2.status().offset, 0);
    await w2.write(Buffer.from("other"));
    await w2.commit(5, digestOf("other"));
  });

  it("a size that contradicts the present blob is no sharing: a fresh writer, the mismatch caught at commit", async () => {
    const md = fresh();
    const d = await put(md.content("a"), "1234");
    const b = md.content("b");
    const w = await b.writer({ ref: "lying", expected: d, total: 5 });
    assert.equal(w.status().offset, 0);
    await w.write(Buffer.from("12345"));
    await assert.rejects(w.commit(5, d), code("FailedPrecondition"));
    await assert.rejects(b.info(d), code("NotFound"));
    // in the namespace that has it, containerd answers AlreadyExists whatever the size
    await assert.rejects(md.content("a").writer({ ref: "x", expected: d, total: 5 }), code("AlreadyExists"));
  });

  it("deleting in B leaves A's blob; the bytes go with the last namespace", async () => {
    const md = fresh();
    const a = md.content("a");
    const b = md.content("b");
    const d = await put(a, "twice");
    await (await b.writer({ ref: "s", expected: d })).commit();
    const file = md.blobs.blobPath(d);
    await b.delete(d);
    await assert.rejects(b.info(d), code("NotFound"));
    assert.equal((await a.info(d)).size, 5);
    assert.ok(existsSync(file));
    await a.delete(d);
    assert.equal(existsSync(file), false, "no namespace has it any more");
  });

  it("a shared ingest holds the bytes while the last namespace deletes them, and commits after", async () => {
    const md = fresh();
    const a = md.content("a");
    const b = md.content("b");
    const d = await put(a, "held");
    const w = await b.writer({ ref: "hold", expected: d });
    await a.delete(d);
    assert.ok(existsSync(md.blobs.blobPath(d)), "B's ingest stands for it");
    await w.commit();
    assert.equal((await b.info(d)).size, 4);
  });
});

describe("namespaced content: commits and aborts", () => {
  it("commit of content the namespace has is AlreadyExists with or without an expected digest; the ingest goes", async () => {
    const md = fresh();
    const s = md.content("default");
    await put(s, "dup");
    for (const expected of [digestOf("dup"), undefined]) {
      const w = await s.writer({ ref: `dup-${expected ?? "none"}` });
      await w.write(Buffer.from("dup"));
      await assert.rejects(w.commit(3, expected), code("AlreadyExists"));
    }
    assert.deepEqual(await s.listStatuses(), []);
    assert.deepEqual(ingestDirs(md), []);
  });

  it("a failed commit keeps the ingest, and nothing is visible; a resumed writer commits it", async () => {
    const md = fresh();
    const s = md.content("default");
    const w = await s.writer({ ref: "bad" });
    await w.write(Buffer.from("payload"));
    await assert.rejects(w.commit(7, digestOf("other")), code("FailedPrecondition"));
    await assert.rejects(w.commit(7, digestOf("payload")), code("FailedPrecondition"), "the writer is closed");
    await assert.rejects(s.info(digestOf("payload")), code("NotFound"));
    await assert.rejects(w.commit(8), code("FailedPrecondition"));
    const again = await s.writer({ ref: "bad" });
    assert.equal(again.status().offset, 7);
    await assert.rejects(again.commit(8), /got 7 bytes, expected 8/);
    const third = await s.writer({ ref: "bad" });
    await third.commit(7, digestOf("payload"));
    assert.equal((await s.info(digestOf("payload"))).size, 7);
  });

  it("abort does not wait for a live writer: its ref is free at once, and that writer can never publish", async () => {
    const md = fresh({ lockTimeout: 100 });
    const s = md.content("default");
    const w = await s.writer({ ref: "live" });
    await w.write(Buffer.from("half"));
    await s.abort("live");
    await assert.rejects(s.status("live"), code("NotFound"));
    const next = await s.writer({ ref: "live" });
    assert.equal(next.status().offset, 0, "a new ingest, not the aborted one");
    await w.write(Buffer.from(" more"));
    await assert.rejects(w.commit(9, digestOf("half more")), code("NotFound"));
    await assert.rejects(s.info(digestOf("half more")), code("NotFound"));
    assert.equal(existsSync(md.blobs.blobPath(digestOf("half more"))), false);
    await next.write(Buffer.from("whole"));
    await next.commit(5, digestOf("whole"));
    assert.deepEqual(ingestDirs(md), []);
  });

  it("a second writer of a held ref waits for it; one still held after the wait is Unavailable", async () => {
    const md = fresh({ lockTimeout: 150 });
    const s = md.content("default");
    const w1 = await s.writer({ ref: "busy" });
    await assert.rejects(s.writer({ ref: "busy" }), code("Unavailable"));
    let second: Writer | undefined;
    const waiting = md
      .content("default", { lockTimeout: 5000 })
      .writer({ ref: "busy" })
      .then((w) => {
        second = w;
        return w;
      });
    await w1.write(Buffer.from("one"));
    assert.equal(second, undefined);
    await w1.close();
    const w2 = await waiting;
    assert.equal(w2.status().offset, 3);
    await w2.close();
  });

  it("a writer that waited for a ref its holder committed starts a new ingest", async () => {
    const md = fresh();
    const s = md.content("default");
    const w1 = await s.writer({ ref: "turn" });
    const waiting = s.writer({ ref: "turn" });
    await w1.write(Buffer.from("first"));
    await w1.commit(5, digestOf("first"));
    const w2 = await waiting;
    assert.equal(w2.status().offset, 0);
    await w2.write(Buffer.from("second"));
    await w2.commit(6, digestOf("second"));
    assert.deepEqual(await digests(s), [digestOf("first"), digestOf("second")].sort());
  });

  it("a ref another writer is filling is not taken over when another namespace commits the blob meanwhile", async () => {
    const md = fresh({ lockTimeout: 2000 });
    const b = md.content("b");
    const data = "same bytes";
    const d = digestOf(data);
    const filling = await b.writer({ ref: "same-ref", expected: d });
    await filling.write(Buffer.from(data));
    await put(md.content("a"), data, "other-ref");
    // the bytes are in the blob store now: a second writer of "same-ref" in B waits for the first, not shares over it
    const second = b.writer({ ref: "same-ref", expected: d });
    second.catch(() => {});
    await filling.commit(data.length, d);
    await assert.rejects(second, code("AlreadyExists"));
    assert.deepEqual(await digests(b), [d]);
    assert.deepEqual(await b.listStatuses(), []);
  });

  it("two shared writers of one ref: the second commit is AlreadyExists, not an aborted ingest", async () => {
    const md = fresh();
    const d = await put(md.content("a"), "shared twice");
    const b = md.content("b");
    const w1 = await b.writer({ ref: "twice", expected: d });
    const w2 = await b.writer({ ref: "twice", expected: d });
    await w1.commit(12, d);
    await assert.rejects(w2.commit(12, d), code("AlreadyExists"));
    assert.deepEqual(await digests(b), [d]);
  });

  it("keeps ingest times in nanoseconds across a close", async () => {
    const md = fresh();
    const s = md.content("default");
    const before = nowNs();
    const w = await s.writer({ ref: "t" });
    await w.write(Buffer.from("x"));
    const { startedAt, updatedAt } = w.status();
    await w.close();
    const st = await s.status("t");
    assert.equal(epochNsOf(st.startedAt), epochNsOf(startedAt));
    assert.equal(epochNsOf(st.updatedAt), epochNsOf(updatedAt));
    assert.ok(epochNsOf(startedAt) >= before && epochNsOf(updatedAt) <= nowNs());
  });
});

describe("namespaced content: leases", () => {
  it("writes under a lease put the ingest, then the blob, on it", async () => {
    const md = fresh();
    md.leases("a").create("l");
    const s = md.content("a", { lease: "l" });
    const w = await s.writer({ ref: "leased" });
    assert.deepEqual(md.leases("a").listResources("l"), [{ type: "ingests", id: "leased" }]);
    await w.write(Buffer.from("kept"));
    await w.commit(4, digestOf("kept"));
    assert.deepEqual(md.leases("a").listResources("l"), [{ type: "content", id: digestOf("kept") }]);
    await s.delete(digestOf("kept"));
    assert.deepEqual(md.leases("a").listResources("l"), []);
  });

  it("a lease that does not exist fails the write with NotFound, and nothing is left", async () => {
    const md = fresh();
    const s = md.content("a", { lease: "nope" });
    await assert.rejects(s.writer({ ref: "r" }), (e: Error & { code?: string }) => {
      assert.equal(e.code, "NotFound");
      assert.match(e.message, /lease nope does not exist/);
      return true;
    });
    assert.deepEqual(await md.content("a").listStatuses(), []);
    assert.deepEqual(ingestDirs(md), []);
    // the lease went between the writer and its commit: the commit fails, nothing is visible
    md.leases("a").create("brief");
    const leased = md.content("a", { lease: "brief" });
    const w = await leased.writer({ ref: "r2" });
    await w.write(Buffer.from("gone"));
    md.leases("a").delete("brief");
    await assert.rejects(w.commit(4, digestOf("gone")), code("NotFound"));
    await assert.rejects(md.content("a").info(digestOf("gone")), code("NotFound"));
    assert.equal(existsSync(md.blobs.blobPath(digestOf("gone"))), false);
    assert.equal((await md.content("a").status("r2")).offset, 4, "refused before publishing: the ingest stays");
  });
});

describe("namespaced content: nanosecond times", () => {
  it("created and updated are the commit's time, then a label change's", async () => {
    const md = fresh();
    const s = md.content("default");
    const t0 = nowNs();
    const d = await put(s, "timed");
    const t1 = nowNs();
    const info: Info = await s.info(d);
    const created = epochNsOf(info.createdAt);
    assert.ok(created >= t0 && created <= t1);
    assert.equal(epochNsOf(info.updatedAt), created);
    const updated = epochNsOf((await s.update(d, { a: "1" })).updatedAt);
    assert.ok(updated > created && updated <= nowNs());
    assert.equal(epochNsOf((await s.info(d)).createdAt), created);
  });
});
