import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { digestOf } from "../../src/digest.ts";
import { namespacedContentStore } from "../../src/metadata/metadata.ts";
import { Downloads } from "../../src/registry/downloads.ts";

async function readAll(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** A source that sends `data` in 256 KiB pieces, waiting for `gate` before the last. */
function trickle(data: Buffer, gate: Promise<void>): Readable {
  return Readable.from(
    (async function* () {
      for (let i = 0; i < data.length; i += 256 << 10) {
        if (i + (256 << 10) >= data.length) await gate;
        yield data.subarray(i, i + (256 << 10));
        await sleep(1);
      }
    })(),
  );
}

describe("Downloads", () => {
  test("readers that join at any time get the bytes they ask for; the last byte waits for the commit", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dist-downloads-"));
    try {
      const store = namespacedContentStore(dir);
      const downloads = new Downloads(store);
      const data = Buffer.alloc(3 << 20, 7);
      data.write("the end", data.length - 7);
      const digest = digestOf(data);
      const gate = Promise.withResolvers<void>();
      let opened = 0;
      const begin = async () => ({
        size: data.length,
        open: async () => {
          opened++;
          return trickle(data, gate.promise);
        },
        discard: () => {},
      });
      const d1 = await downloads.join(digest, "test", begin);
      assert.ok(d1);
      const early = readAll(await d1.reader(0, data.length - 1));
      await sleep(30);
      const d2 = await downloads.join(digest, "test", begin);
      assert.equal(d2, d1, "a second request joins");
      const late = readAll(await d1.reader(data.length - 10, data.length - 1));
      let lateDone = false;
      void late.then(() => {
        lateDone = true;
      });
      await sleep(50);
      assert.equal(lateDone, false, "the last byte is held until the commit");
      gate.resolve();
      assert.deepEqual(await early, data);
      assert.deepEqual(await late, data.subarray(-10));
      await d1.finished;
      assert.equal(opened, 1, "one source for every reader");
      assert.equal((await store.info(digest)).size, data.length);
      assert.equal(downloads.get(digest), undefined, "forgotten once committed");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a source with the wrong bytes fails every reader and commits nothing", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dist-downloads-"));
    try {
      const store = namespacedContentStore(dir);
      const downloads = new Downloads(store);
      const data = Buffer.alloc(1 << 20, 1);
      const digest = digestOf(Buffer.alloc(1 << 20, 2));
      const d = await downloads.join(digest, "test", async () => ({
        size: data.length,
        open: async () => Readable.from([data]),
        discard: () => {},
      }));
      assert.ok(d);
      await assert.rejects(readAll(await d.reader(0, data.length - 1)), /digest/);
      await assert.rejects(d.finished);
      await assert.rejects(store.info(digest), /not found/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
