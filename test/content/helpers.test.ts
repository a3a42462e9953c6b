import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { readBlob, writeBlob } from "../../src/content/helpers.ts";
import { digestOf } from "../../src/digest.ts";
import { closeAllDatabases } from "../../src/metadata/db.ts";
import { namespacedContentStore } from "../../src/metadata/metadata.ts";

let tmp: string;
let n = 0;
const newStore = () => namespacedContentStore(join(tmp, `root${n++}`));
const hasCode = (code: string) => (e: Error & { code?: string }) => e.code === code;

/** A source that fails the test if anything reads it. */
function untouchable(): Readable {
  return new Readable({
    read() {
      this.destroy(new Error("the source must not be read"));
    },
  });
}

function chunks(...parts: string[]): Readable {
  return Readable.from(parts.map((p) => Buffer.from(p)));
}

before(() => {
  tmp = mkdtempSync(join(tmpdir(), "dist-helpers-"));
});
after(() => {
  closeAllDatabases();
  rmSync(tmp, { recursive: true, force: true });
});

describe("writeBlob", () => {
  it("copies, verifies, commits and labels", async () => {
    const s = newStore();
    const d = digestOf("abcdef");
    const r = await writeBlob(s, "w1", chunks("abc", "def"), { size: 6, expected: d, labels: { k: "v" } });
    assert.deepEqual(r, { digest: d, size: 6, existed: false, resumedAt: 0 });
    assert.deepEqual((await s.info(d)).labels, { k: "v" });
  });

  it("treats existing content as success without reading the source", async () => {
    const s = newStore();
    const d = digestOf("present");
    await writeBlob(s, "w1", chunks("present"), { expected: d });
    const r = await writeBlob(s, "w2", untouchable(), { expected: d, size: 7 });
    assert.equal(r.existed, true);
  });

  it("resumes by skipping what the ingest already holds when a digest will verify it", async () => {
    const s = newStore();
    const d = digestOf("0123456789");
    const w = await s.writer({ ref: "res", expected: d });
    await w.write(Buffer.from("0123"));
    await w.close();
    const r = await writeBlob(s, "res", chunks("01", "2345", "6789"), { expected: d, size: 10 });
    assert.equal(r.resumedAt, 4);
    assert.equal((await s.info(d)).size, 10);
  });

  it("resumes through reopen(offset) when given", async () => {
    const s = newStore();
    const d = digestOf("0123456789");
    const w = await s.writer({ ref: "reo", expected: d });
    await w.write(Buffer.from("01234"));
    await w.close();
    let asked = -1;
    await writeBlob(s, "reo", untouchable(), {
      expected: d,
      reopen: async (offset) => {
        asked = offset;
        return chunks("56789");
      },
    });
    assert.equal(asked, 5);
    assert.equal((await s.info(d)).size, 10);
  });

  it("restarts from zero when nothing could verify a resumed prefix", async () => {
    const s = newStore();
    const w = await s.writer({ ref: "nodigest" });
    await w.write(Buffer.from("stale bytes"));
    await w.close();
    const r = await writeBlob(s, "nodigest", chunks("fresh"));
    assert.equal(r.digest, digestOf("fresh"));
    assert.equal((await s.info(digestOf("fresh"))).size, 5);
  });

  it("fails on a wrong digest or size, leaving no ingest", async () => {
    const s = newStore();
    await assert.rejects(writeBlob(s, "bad", chunks("data"), { expected: digestOf("other") }), /expected sha256:/);
    await assert.rejects(writeBlob(s, "big", chunks("too", "many", "bytes"), { size: 4 }), /expected 4/);
    assert.deepEqual(await s.listStatuses(), []);
  });

  it("keeps progress when the source fails, for a later resume", async () => {
    const s = newStore();
    async function* failing() {
      yield Buffer.alloc(2 << 20, 1);
      throw new Error("connection reset");
    }
    const p = writeBlob(s, "broken", failing(), { expected: digestOf("whatever") });
    await assert.rejects(p, /connection reset/);
    const [st] = await s.listStatuses();
    assert.equal(st.ref, "broken");
    assert.equal(st.offset, 2 << 20);
  });
});

describe("readBlob", () => {
  it("reads and verifies a small blob", async () => {
    const s = newStore();
    const body = JSON.stringify({ schemaVersion: 2 });
    const d = digestOf(body);
    await writeBlob(s, "m", chunks(body), { expected: d });
    const buf = await readBlob(s, { mediaType: "application/json", digest: d, size: body.length });
    assert.equal(buf.toString(), body);
  });

  it("refuses blobs over the cap and descriptors that lie about the size", async () => {
    const s = newStore();
    const d = digestOf("0123456789");
    await writeBlob(s, "m", chunks("0123456789"), { expected: d });
    await assert.rejects(readBlob(s, { mediaType: "x", digest: d, size: 10 }, { max: 5 }), hasCode("InvalidArgument"));
    await assert.rejects(readBlob(s, { mediaType: "x", digest: d, size: 4 }), hasCode("DataLoss"));
    await assert.rejects(readBlob(s, { mediaType: "x", digest: d, size: 12 }), hasCode("DataLoss"));
  });
});
