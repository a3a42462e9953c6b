import assert from "node:assert/strict";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import type { Writer } from "../../src/content/content.ts";
import { LocalStore } from "../../src/content/local/store.ts";
import { type Digest, digestOf } from "../../src/digest.ts";

/**
 * The blob store below the namespaces (content/local): blobs, ingests and their
 * locks, with no namespaces or labels (test/metadata/content.test.ts has those).
 */

const hasCode = (code: string) => (e: Error & { code?: string }) => e.code === code;

let tmp: string;
let n = 0;
function newStore(opts: { lockTimeout?: number; root?: string } = {}) {
  const root = opts.root ?? join(tmp, `root${n++}`);
  return new LocalStore({ root, lockTimeout: opts.lockTimeout });
}

async function put(store: LocalStore, data: string, ref = `ref-${data}`): Promise<Digest> {
  const w = await store.writer({ ref });
  await w.write(Buffer.from(data));
  await w.commit(Buffer.byteLength(data), digestOf(data));
  return digestOf(data);
}

async function readAll(r: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
}

const ingestDirs = (s: LocalStore) => {
  const dir = join(s.contentRoot, "ingest");
  return existsSync(dir) ? readdirSync(dir) : [];
};
const blobFiles = (s: LocalStore, alg = "sha256") => {
  const dir = join(s.contentRoot, "blobs", alg);
  return existsSync(dir) ? readdirSync(dir) : [];
};

before(() => {
  tmp = mkdtempSync(join(tmpdir(), "dist-content-"));
});
after(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe("LocalStore writer and commit", () => {
  it("commits a verified, read-only blob and leaves no ingest or lock behind", async () => {
    const s = newStore();
    const w = await s.writer({ ref: "r1", total: 11, expected: digestOf("hello world") });
    await w.write(Buffer.from("hello "));
    assert.equal(w.status().offset, 6);
    await w.write(Buffer.from("world"));
    assert.equal(w.digest(), digestOf("hello world"));
    await w.commit();
    const d = digestOf("hello world");
    const path = s.blobPath(d);
    assert.equal(readFileSync(path, "utf8"), "hello world");
    assert.equal(statSync(path).mode & 0o222, 0, "blob must be read-only");
    assert.deepEqual(ingestDirs(s), []);
    assert.deepEqual(readdirSync(join(s.contentRoot, "locks")), []);
    const info = await s.info(d);
    assert.equal(info.size, 11);
    assert.deepEqual(info.labels, {});
  });

  it("rejects an empty ref, a bad digest and a bad total with InvalidArgument", async () => {
    const s = newStore();
    await assert.rejects(s.writer({ ref: "" }), hasCode("InvalidArgument"));
    await assert.rejects(s.writer({ ref: "r", expected: "sha256:abc" as Digest }), hasCode("InvalidArgument"));
    await assert.rejects(
      s.writer({ ref: "r", expected: `md5:${"a".repeat(32)}` as Digest }),
      hasCode("InvalidArgument"),
    );
    await assert.rejects(s.writer({ ref: "r", total: -1 }), hasCode("InvalidArgument"));
    await assert.rejects(s.info(`sha256:${"A".repeat(64)}` as Digest), hasCode("InvalidArgument"));
    await assert.rejects(s.delete("nope" as Digest), hasCode("InvalidArgument"));
    assert.deepEqual(ingestDirs(s), []);
  });

  it("a wrong digest keeps the ingest (as containerd does), names expected and actual, and frees the ref", async () => {
    const s = newStore();
    const wrong = digestOf("something else");
    const w = await s.writer({ ref: "bad" });
    await w.write(Buffer.from("payload"));
    await assert.rejects(w.commit(7, wrong), (e: Error & { code?: string }) => {
      assert.equal(e.code, "FailedPrecondition");
      assert.match(e.message, new RegExp(wrong));
      assert.match(e.message, new RegExp(digestOf("payload")));
      return true;
    });
    assert.deepEqual(blobFiles(s), []);
    assert.equal((await s.status("bad")).offset, 7);
    await assert.rejects(w.write(Buffer.from("more")), hasCode("FailedPrecondition"), "the writer is closed");
    // the ref is free again and resumes where it stopped; the right digest commits it
    const again = await s.writer({ ref: "bad" });
    assert.equal(again.status().offset, 7);
    await again.commit(7, digestOf("payload"));
    assert.equal(blobFiles(s).length, 1);
    assert.deepEqual(ingestDirs(s), []);
  });

  it("a wrong size keeps the ingest and names both sizes", async () => {
    const s = newStore();
    const w = await s.writer({ ref: "short", total: 10 });
    await w.write(Buffer.from("12345"));
    await assert.rejects(w.commit(), /got 5 bytes, expected 10/);
    assert.deepEqual(blobFiles(s), []);
    assert.equal((await s.status("short")).offset, 5);
    const resumed = await s.writer({ ref: "short", total: 10 });
    await resumed.write(Buffer.from("67890"));
    await resumed.commit();
    assert.equal(blobFiles(s).length, 1);
  });

  it("AlreadyExists at once when the expected content is present", async () => {
    const s = newStore();
    const d = await put(s, "exists");
    await assert.rejects(s.writer({ ref: "other", expected: d }), hasCode("AlreadyExists"));
    assert.deepEqual(ingestDirs(s), []);
  });

  it("committing content that already exists under another ref is AlreadyExists, and the ingest goes", async () => {
    const s = newStore();
    const w1 = await s.writer({ ref: "a" });
    const w2 = await s.writer({ ref: "b" });
    await w1.write(Buffer.from("same"));
    await w2.write(Buffer.from("same"));
    await w1.commit(4, digestOf("same"));
    await assert.rejects(w2.commit(4, digestOf("same")), hasCode("AlreadyExists"));
    assert.deepEqual(blobFiles(s), [digestOf("same").slice(7)]);
    assert.deepEqual(ingestDirs(s), []);
  });

  it("uses the algorithm of the expected digest (sha512)", async () => {
    const s = newStore();
    const d = digestOf("five-twelve", "sha512");
    const w = await s.writer({ ref: "s512", expected: d });
    await w.write(Buffer.from("five-twelve"));
    assert.equal(w.digest(), d);
    await w.commit();
    assert.equal(readFileSync(s.blobPath(d), "utf8"), "five-twelve");
    assert.equal((await s.info(d)).size, 11);
    // a sha512 expected given only at commit is verified too
    const w2 = await s.writer({ ref: "s512b" });
    await w2.write(Buffer.from("late"));
    await w2.commit(4, digestOf("late", "sha512"));
    assert.ok(existsSync(s.blobPath(digestOf("late", "sha512"))));
  });

  it("resumes at the offset with the running digest restored", async () => {
    const s = newStore();
    const d = digestOf("first half, second half");
    const w = await s.writer({ ref: "resume", total: 23, expected: d });
    await w.write(Buffer.from("first half, "));
    await w.close();
    const st = await s.status("resume");
    assert.equal(st.offset, 12);
    assert.equal(st.total, 23);
    assert.equal(st.expected, d);
    const w2 = await s.writer({ ref: "resume", total: 23 });
    assert.equal(w2.status().offset, 12);
    assert.equal(w2.digest(), digestOf("first half, "));
    await w2.write(Buffer.from("second half"));
    await w2.commit();
    assert.equal(readFileSync(s.blobPath(d), "utf8"), "first half, second half");
  });

  it("refuses a total that differs from the ingest's, naming both", async () => {
    const s = newStore();
    const w = await s.writer({ ref: "tot", total: 100 });
    await w.write(Buffer.from("x"));
    await w.close();
    await assert.rejects(s.writer({ ref: "tot", total: 50 }), /50.*100/);
    // the ref was released despite the error
    const w2 = await s.writer({ ref: "tot", total: 100 });
    assert.equal(w2.status().offset, 1);
    await w2.close();
  });

  it("recreates a corrupt ingest instead of failing", async () => {
    const s = newStore();
    const w = await s.writer({ ref: "corrupt", total: 4 });
    await w.write(Buffer.from("ab"));
    await w.close();
    const [dir] = ingestDirs(s);
    writeFileSync(join(s.contentRoot, "ingest", dir, "total"), "not a number");
    const w2 = await s.writer({ ref: "corrupt", total: 4 });
    assert.equal(w2.status().offset, 0);
    await w2.write(Buffer.from("abcd"));
    await w2.commit();
    // an ingest dir with no ref file (interrupted creation) is recreated too
    const w3 = await s.writer({ ref: "noref" });
    await w3.write(Buffer.from("zz"));
    await w3.close();
    const [dir3] = ingestDirs(s);
    rmSync(join(s.contentRoot, "ingest", dir3, "ref"));
    const w4 = await s.writer({ ref: "noref" });
    assert.equal(w4.status().offset, 0);
    await w4.close();
  });

  it("truncate(0) restarts the ingest", async () => {
    const s = newStore();
    const w = await s.writer({ ref: "trunc" });
    await w.write(Buffer.from("garbage"));
    await w.truncate(0);
    assert.equal(w.status().offset, 0);
    await w.write(Buffer.from("good"));
    await w.commit(4, digestOf("good"));
    assert.equal(readFileSync(s.blobPath(digestOf("good")), "utf8"), "good");
  });
});

describe("LocalStore locking", () => {
  it("a second writer on a held ref waits until the first releases it", async () => {
    const s = newStore();
    const w1 = await s.writer({ ref: "busy" });
    await w1.write(Buffer.from("one"));
    let second: Writer | undefined;
    const pending = s.writer({ ref: "busy" }).then((w) => {
      second = w;
      return w;
    });
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(second, undefined, "the second writer must not get the ref while the first holds it");
    await w1.close();
    const w2 = await pending;
    assert.equal(w2.status().offset, 3);
    await w2.close();
  });

  it("gives up with a clear 'ref locked' Unavailable error after the timeout", async () => {
    const s = newStore({ lockTimeout: 100 });
    const w1 = await s.writer({ ref: "held" });
    await assert.rejects(s.writer({ ref: "held" }), (e: Error & { code?: string }) => {
      assert.equal(e.code, "Unavailable");
      assert.match(e.message, /ref held locked/);
      return true;
    });
    await w1.close();
  });

  it("a waiting writer of content the holder commits gets AlreadyExists", async () => {
    const s = newStore();
    const d = digestOf("shared");
    const w1 = await s.writer({ ref: "same", expected: d });
    // settle at once so an early rejection is not reported as unhandled
    const waiting = s.writer({ ref: "same", expected: d }).then(
      () => undefined,
      (e: Error & { code?: string }) => e,
    );
    await w1.write(Buffer.from("shared"));
    await w1.commit();
    assert.equal((await waiting)?.code, "AlreadyExists");
  });

  it("stops waiting when the signal aborts", async () => {
    const s = newStore();
    const w1 = await s.writer({ ref: "sig" });
    const ctrl = new AbortController();
    const waiting = s.writer({ ref: "sig", signal: ctrl.signal }).then(
      () => undefined,
      (e: Error) => e,
    );
    ctrl.abort(new Error("stop"));
    assert.match((await waiting)?.message ?? "", /stop|abort/i);
    await w1.close();
  });
});

describe("LocalStore reads, walk, delete", () => {
  it("streams with offset and length, refuses reads past the end, readAt", async () => {
    const s = newStore();
    const d = await put(s, "0123456789");
    assert.equal(await readAll(await s.openRead(d)), "0123456789");
    assert.equal(await readAll(await s.openRead(d, { offset: 3 })), "3456789");
    assert.equal(await readAll(await s.openRead(d, { offset: 2, length: 3 })), "234");
    assert.equal(await readAll(await s.openRead(d, { offset: 10 })), "");
    await assert.rejects(s.openRead(d, { offset: 11 }), hasCode("OutOfRange"));
    await assert.rejects(s.openRead(d, { offset: 8, length: 5 }), hasCode("OutOfRange"));
    await assert.rejects(s.openRead(digestOf("absent")), hasCode("NotFound"));
    const buf = Buffer.alloc(4);
    assert.equal(await s.readAt(d, buf, 6), 4);
    assert.equal(buf.toString(), "6789");
    assert.equal(await s.readAt(d, buf, 10), 0);
    await assert.rejects(s.readAt(digestOf("absent"), buf, 0), hasCode("NotFound"));
  });

  it("walks its blob files with digest-prefix filters, and carries no labels", async () => {
    const s = newStore();
    const a = await put(s, "alpha");
    const b = await put(s, "beta");
    const seen = async (filter?: Parameters<LocalStore["walk"]>[1]) => {
      const out: string[] = [];
      await s.walk((i) => void out.push(i.digest), filter);
      return out.sort();
    };
    assert.deepEqual(await seen(), [a, b].sort());
    assert.deepEqual(await seen({ digestPrefixes: [a.slice(0, 12)] }), [a]);
    assert.deepEqual(await seen({ digestPrefixes: [a.slice(7, 14)] }), [a]);
    assert.deepEqual(await seen({ labels: ["keep"] }), []);
    await assert.rejects(s.update(a), hasCode("FailedPrecondition"));
  });

  it("deletes blob files; a missing blob is NotFound", async () => {
    const s = newStore();
    const d = await put(s, "doomed");
    await s.delete(d);
    assert.equal(existsSync(s.blobPath(d)), false);
    await assert.rejects(s.info(d), hasCode("NotFound"));
    await assert.rejects(s.delete(d), hasCode("NotFound"));
  });
});

describe("LocalStore ingests", () => {
  it("status, listStatuses (locks are not ingests) and abort", async () => {
    const s = newStore();
    assert.deepEqual(await s.listStatuses(), []);
    const w1 = await s.writer({ ref: "layer-1", total: 9 });
    await w1.write(Buffer.from("abc"));
    const w2 = await s.writer({ ref: "config-1" });
    await w2.close();
    const all = await s.listStatuses();
    assert.deepEqual(
      all.map((st) => [st.ref, st.offset, st.total]),
      [
        ["config-1", 0, 0],
        ["layer-1", 3, 9],
      ],
    );
    assert.deepEqual(
      (await s.listStatuses({ refPrefixes: ["layer-"] })).map((st) => st.ref),
      ["layer-1"],
    );
    assert.equal((await s.status("layer-1")).offset, 3);
    await assert.rejects(s.status("nope"), hasCode("NotFound"));
    // abort does not wait for the writer (containerd's is a RemoveAll): the writer can no longer publish
    await s.abort("layer-1");
    await w1.write(Buffer.from("defghi"));
    await assert.rejects(w1.commit(9), hasCode("NotFound"));
    assert.deepEqual(blobFiles(s), []);
    await assert.rejects(s.abort("layer-1"), hasCode("NotFound"));
    await assert.rejects(s.status("layer-1"), hasCode("NotFound"));
    assert.deepEqual(
      (await s.listStatuses()).map((st) => st.ref),
      ["config-1"],
    );
  });

  it("prunes stale ingests but not fresh or held ones", async () => {
    const s = newStore();
    for (const ref of ["old", "fresh", "held-old"]) {
      const w = await s.writer({ ref });
      await w.write(Buffer.from(ref));
      await w.close();
    }
    const past = new Date(Date.now() - 3 * 3600_000);
    for (const dir of ingestDirs(s)) {
      const base = join(s.contentRoot, "ingest", dir);
      if (readFileSync(join(base, "ref"), "utf8") === "fresh") continue;
      writeFileSync(join(base, "updatedat"), past.toISOString());
      utimesSync(join(base, "data"), past, past);
    }
    const held = await s.writer({ ref: "held-old" });
    const removed = await s.pruneIngests(3600_000);
    assert.deepEqual(
      removed.map((st) => st.ref),
      ["old"],
    );
    assert.deepEqual((await s.listStatuses()).map((st) => st.ref).sort(), ["fresh", "held-old"]);
    await held.close();
  });
});

describe("LocalStore on a missing root", () => {
  it("lists nothing and creates nothing", async () => {
    const root = join(tmp, "never-created");
    const s = new LocalStore({ root });
    assert.deepEqual(await s.listStatuses(), []);
    let count = 0;
    await s.walk(() => {
      count++;
    });
    assert.equal(count, 0);
    await assert.rejects(s.info(digestOf("x")), hasCode("NotFound"));
    assert.equal(existsSync(root), false);
  });
});
