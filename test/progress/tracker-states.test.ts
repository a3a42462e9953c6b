// The tracker's push states: a mounted blob is complete and was not transferred.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ProgressTracker } from "../../src/progress/tracker.ts";

describe("progress tracker: push states", () => {
  it("counts uploaded bytes, not those of blobs that existed or were mounted", () => {
    const t = new ProgressTracker({ now: () => 0 });
    t.update("layer-a", { state: "waiting", total: 100 });
    t.update("layer-a", { state: "uploading", offset: 40 });
    t.update("layer-b", { state: "waiting", total: 50 });
    t.update("layer-b", { state: "mounted" });
    t.update("layer-c", { state: "waiting", total: 70 });
    t.update("layer-c", { state: "exists" });
    assert.equal(t.get("layer-b")?.offset, 50);
    assert.equal(t.transferred(), 40);
    t.update("layer-a", { state: "done" });
    assert.equal(t.transferred(), 100);
  });
});
