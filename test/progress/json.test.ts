import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { progressEvent } from "../../src/progress/events.ts";
import { JsonProgressWriter } from "../../src/progress/json.ts";
import { ProgressTracker } from "../../src/progress/tracker.ts";

const LAYER = `layer-sha256:${"ab".repeat(32)}`;

function setup() {
  let t = Date.parse("2026-01-02T03:04:05.000Z");
  const tracker = new ProgressTracker({ now: () => t });
  const lines: string[] = [];
  const writer = new JsonProgressWriter(tracker, { out: { write: (s: string) => lines.push(s) }, interval: 100 });
  const events = () =>
    lines
      .join("")
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { tracker, writer, lines, events, advance: (ms: number) => (t += ms) };
}

describe("progress events", () => {
  it("describe an object by its key: kind and digest, or a reference", () => {
    const t = new ProgressTracker({ now: () => 0 });
    t.update(LAYER, { state: "downloading", total: 10, offset: 4 });
    t.set("docker.io/library/redis:latest", "resolving");
    const [layer, ref] = t.entries().map(progressEvent);
    assert.deepEqual(layer, {
      type: "progress",
      object: LAYER,
      kind: "layer",
      digest: `sha256:${"ab".repeat(32)}`,
      state: "downloading",
      offset: 4,
      total: 10,
      time: "1970-01-01T00:00:00.000Z",
      started: "1970-01-01T00:00:00.000Z",
    });
    assert.equal(ref.kind, "reference");
    assert.equal(ref.digest, undefined);
  });

  it("reach the tracker's 'event' listeners, typed, with whether the state changed", () => {
    const t = new ProgressTracker();
    const seen: [string, boolean][] = [];
    t.on("event", (e, changed) => seen.push([e.state, changed]));
    t.update(LAYER, { state: "waiting", total: 10 });
    t.update(LAYER, { state: "downloading" });
    t.update(LAYER, { offset: 5 });
    assert.deepEqual(seen, [
      ["waiting", true],
      ["downloading", true],
      ["downloading", false],
    ]);
  });
});

describe("JsonProgressWriter", () => {
  it("writes every state change, byte counts at most once per interval, then the summary with the command's fields", () => {
    const { tracker, writer, events, advance } = setup();
    writer.start();
    tracker.set("example.com/app:1", "resolving");
    tracker.set("example.com/app:1", "resolved");
    tracker.update(LAYER, { state: "downloading", total: 1000 });
    advance(10);
    tracker.update(LAYER, { offset: 100 }); // held: 10 ms after the last line
    advance(10);
    tracker.update(LAYER, { offset: 200 }); // held
    advance(100);
    tracker.update(LAYER, { offset: 300 }); // 120 ms: written
    advance(10);
    tracker.update(LAYER, { state: "done" });
    writer.stop({}, { images: [{ ref: "example.com/app:1" }], status: "overridden?" });
    const ev = events();
    assert.deepEqual(
      ev.map((e) => [e.type, e.object ?? "", e.state ?? e.status, e.offset ?? ""]),
      [
        ["progress", "example.com/app:1", "resolving", 0],
        ["progress", "example.com/app:1", "resolved", 0],
        ["progress", LAYER, "downloading", 0],
        ["progress", LAYER, "downloading", 300],
        ["progress", LAYER, "done", 1000],
        ["summary", "", "ok", ""],
      ],
    );
    const summary = ev[ev.length - 1];
    assert.equal(summary.transferred, 1000);
    assert.deepEqual(summary.objects, { done: 1 });
    assert.equal(summary.elapsedMs, 130);
    assert.deepEqual(summary.images, [{ ref: "example.com/app:1" }]);
  });

  it("writes a held byte count before a failed summary, and the error", () => {
    const { tracker, writer, events, advance } = setup();
    writer.start();
    tracker.update(LAYER, { state: "downloading", total: 1000 });
    advance(1);
    tracker.update(LAYER, { offset: 700 });
    writer.stop({ error: "connection reset" });
    const ev = events();
    assert.deepEqual(
      ev.map((e) => e.offset ?? e.error),
      [0, 700, "connection reset"],
    );
    assert.equal(ev[2].status, "error");
  });
});
