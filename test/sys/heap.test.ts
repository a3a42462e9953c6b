import assert from "node:assert/strict";
import { constants, PerformanceObserver } from "node:perf_hooks";
import { test } from "node:test";
import { COLLECT_EVERY, chunksHandled } from "../../src/sys/heap.ts";
import { mallocTrim } from "../../src/sys/index.ts";

/** Young-generation collections seen while `fn` runs. */
async function minorGcsDuring(fn: () => void): Promise<number> {
  let n = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const detail = (e as unknown as { detail?: { kind?: number } }).detail;
      if (detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) n++;
    }
  });
  obs.observe({ entryTypes: ["gc"] });
  fn();
  // gc entries are delivered asynchronously
  await new Promise((r) => setTimeout(r, 50));
  obs.disconnect();
  return n;
}

test("chunksHandled collects the young generation once COLLECT_EVERY bytes have gone by, not before", async () => {
  // start from a clean count
  chunksHandled(COLLECT_EVERY);
  const none = await minorGcsDuring(() => chunksHandled(1024));
  const some = await minorGcsDuring(() => {
    for (let i = 0; i < 4; i++) chunksHandled(COLLECT_EVERY);
  });
  assert.ok(some >= 4, `expected at least 4 minor GCs, saw ${some}`);
  assert.ok(none <= 1, `a few bytes should not collect, saw ${none}`);
});

test("mallocTrim is available on glibc", () => {
  assert.equal(mallocTrim(), true);
});
