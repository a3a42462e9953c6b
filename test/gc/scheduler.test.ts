/**
 * The daemon's collection schedule (src/gc/scheduler.ts): a delete is followed
 * by a collection, an on-demand one is done when it resolves, a lease's
 * expiry brings one, and a closed scheduler collects nothing more.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, describe, it } from "node:test";
import { writeBlob } from "../../src/content/helpers.ts";
import { digestOf } from "../../src/digest.ts";
import type { CollectResult } from "../../src/gc/collect.ts";
import { GC_EXPIRE } from "../../src/gc/labels.ts";
import { GcScheduler } from "../../src/gc/scheduler.ts";
import { closeAllDatabases } from "../../src/metadata/db.ts";
import { Metadata } from "../../src/metadata/metadata.ts";

const tmp = mkdtempSync(join(tmpdir(), "dist-gc-sched-"));
after(() => {
  closeAllDatabases();
  rmSync(tmp, { recursive: true, force: true });
});
let n = 0;

async function stray(md: Metadata, text: string, lease?: string) {
  const bytes = Buffer.from(text);
  await writeBlob(md.content("default", { lease }), `r-${text}`, Readable.from([bytes]), { expected: digestOf(bytes) });
  return digestOf(bytes);
}

async function has(md: Metadata, digest: string): Promise<boolean> {
  return md
    .content("default")
    .info(digestOf(Buffer.from(digest)))
    .then(
      () => true,
      () => false,
    );
}

describe("GcScheduler", () => {
  it("schedule() is followed by one collection; collectNow() resolves once it is done", async () => {
    const md = new Metadata(join(tmp, `r${n++}`));
    const seen: CollectResult[] = [];
    let collected!: () => void;
    const once = new Promise<void>((resolve) => {
      collected = resolve;
    });
    const gc = new GcScheduler(md, {
      delayMs: 1,
      onCollected: (r) => {
        seen.push(r);
        collected();
      },
    });
    await stray(md, "a");
    gc.schedule();
    gc.schedule();
    await once;
    assert.equal(await has(md, "a"), false);
    assert.equal(seen[0].totals.content.count, 1);
    await stray(md, "b");
    const r = await gc.collectNow();
    assert.equal(r.totals.content.count, 1);
    assert.equal(await has(md, "b"), false, "gone when collectNow resolves");
    await gc.close();
    await assert.rejects(gc.collectNow(), /closed/);
  });

  it("a lease's expiry brings a collection that takes what it alone held", async () => {
    const md = new Metadata(join(tmp, `r${n++}`));
    let collected: (() => void) | undefined;
    const gc = new GcScheduler(md, { delayMs: 1, onCollected: () => collected?.() });
    const at = new Date(Date.now() + 500);
    md.leases("default").create("short", { [GC_EXPIRE]: at.toISOString() });
    await stray(md, "held", "short");
    assert.equal((await gc.collectNow()).totals.content.count, 0, "held while the lease lives");
    const once = new Promise<void>((resolve) => {
      collected = resolve;
    });
    gc.expireAt(at);
    await once;
    assert.equal(await has(md, "held"), false);
    assert.deepEqual(md.leases("default").list(), []);
    await gc.close();
  });
});
