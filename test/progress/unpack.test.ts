import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Descriptor } from "../../src/descriptor.ts";
import { digestOf } from "../../src/digest.ts";
import { refKey } from "../../src/images/mediatypes.ts";
import { ProgressTracker } from "../../src/progress/tracker.ts";
import { unpackProgress } from "../../src/progress/unpack.ts";
import type { UnpackEvent } from "../../src/unpack/unpacker.ts";

const layer: Descriptor = {
  mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
  digest: digestOf("l"),
  size: 1000,
};
const key = refKey(layer);
const at = (status: UnpackEvent["status"], offset?: number): UnpackEvent => ({
  layer,
  index: 0,
  chainID: digestOf("chain"),
  status,
  offset,
});

describe("unpackProgress", () => {
  it("a teed layer shows its download, then its extraction, its bytes counted once", () => {
    const t = new ProgressTracker();
    const on = unpackProgress(t);
    t.update(key, { state: "downloading", offset: 0, startOffset: 0, total: 1000 });
    t.update(key, { offset: 600 });
    on(at("extracting", 500));
    assert.equal(t.get(key)?.state, "downloading", "extraction follows the download");
    t.update(key, { state: "done" });
    on(at("extracting", 800));
    assert.equal(t.get(key)?.state, "extracting");
    assert.equal(t.get(key)?.offset, 800);
    on(at("extracted"));
    assert.equal(t.get(key)?.state, "done");
    assert.equal(t.transferred(), 1000);
  });

  it("a layer downloaded from an offset counts only what this run downloaded", () => {
    const t = new ProgressTracker();
    const on = unpackProgress(t);
    t.update(key, { state: "downloading", offset: 400, startOffset: 400, total: 1000 });
    t.update(key, { state: "done" });
    on(at("extracting", 0));
    assert.equal(t.transferred(), 600);
    on(at("extracting", 700));
    assert.equal(t.transferred(), 600);
    on(at("extracted"));
    assert.equal(t.transferred(), 600);
  });

  it("a layer whose snapshot exists shows as existing; events about it otherwise change nothing", () => {
    const t = new ProgressTracker();
    const on = unpackProgress(t);
    t.update(key, { state: "waiting", total: 1000 });
    on(at("waiting"));
    assert.equal(t.get(key)?.state, "waiting");
    on(at("exists"));
    assert.equal(t.get(key)?.state, "exists");
    assert.equal(t.transferred(), 0);
  });
});
