import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bar, ProgressRenderer, summaryLine } from "../../src/progress/render.ts";
import { ProgressTracker } from "../../src/progress/tracker.ts";

function fakeClock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

function sink(isTTY = false) {
  const chunks: string[] = [];
  return { out: { write: (s: string) => chunks.push(s), isTTY, columns: 300 }, text: () => chunks.join("") };
}

describe("ProgressTracker", () => {
  it("counts finished objects in the total, not those that existed", () => {
    const c = fakeClock();
    const t = new ProgressTracker({ now: c.now });
    t.update("layer-a", { state: "downloading", total: 1000 });
    t.update("layer-a", { offset: 400 });
    t.update("layer-b", { state: "downloading", total: 2048 });
    t.update("layer-b", { state: "done" });
    t.update("layer-c", { state: "exists", total: 5000 });
    t.update("layer-d", { state: "downloading", offset: 100, startOffset: 100, total: 300 });
    t.update("layer-d", { offset: 300 });
    assert.equal(t.transferred(), 400 + 2048 + 200);
    c.advance(2000);
    assert.equal(summaryLine(t), "elapsed: 2.0 s  total: 2.6 KiB (1.3 KiB/s)");
  });

  it("keeps keys in the order they appeared and clamps offsets", () => {
    const t = new ProgressTracker();
    t.set("ref", "resolving");
    t.set("manifest-x", "waiting", 10);
    t.update("manifest-x", { state: "downloading", offset: 50 });
    assert.deepEqual(
      t.entries().map((e) => e.key),
      ["ref", "manifest-x"],
    );
    assert.equal(t.get("manifest-x")?.offset, 10);
  });
});

describe("ProgressRenderer", () => {
  it("prints one plain line per state change and the summary when not a TTY", () => {
    const c = fakeClock();
    const t = new ProgressTracker({ now: c.now });
    const s = sink(false);
    const r = new ProgressRenderer(t, { out: s.out });
    assert.equal(r.mode, "plain");
    r.start();
    t.set("docker.io/library/redis:latest", "resolving");
    t.set("docker.io/library/redis:latest", "resolved");
    t.update("layer-sha256:aa", { state: "waiting", total: 2048 });
    t.update("layer-sha256:aa", { state: "downloading" });
    t.update("layer-sha256:aa", { offset: 1024 }); // no line: same state
    t.update("layer-sha256:aa", { state: "done" });
    t.update("config-sha256:bb", { state: "exists", total: 100 });
    c.advance(1600);
    r.stop();
    assert.equal(
      s.text(),
      [
        "docker.io/library/redis:latest: resolving",
        "docker.io/library/redis:latest: resolved",
        "layer-sha256:aa: waiting",
        "layer-sha256:aa: downloading 0.0 B/2.0 KiB",
        "layer-sha256:aa: done 2.0 KiB",
        "config-sha256:bb: exists 100.0 B",
        "elapsed: 1.6 s  total: 2.0 KiB (1.3 KiB/s)",
        "",
      ].join("\n"),
    );
  });

  it("uses plain lines under CI even on a TTY", () => {
    const prev = process.env.CI;
    process.env.CI = "true";
    try {
      assert.equal(new ProgressRenderer(new ProgressTracker(), { out: sink(true).out }).mode, "plain");
    } finally {
      if (prev === undefined) delete process.env.CI;
      else process.env.CI = prev;
    }
  });

  it("draws the seed's table and redraws it in place", () => {
    const c = fakeClock();
    const t = new ProgressTracker({ now: c.now });
    const s = sink(true);
    const r = new ProgressRenderer(t, { out: s.out, mode: "table", color: false, interval: 1_000_000 });
    t.set("ref", "resolved");
    t.update("layer-sha256:aa", { state: "downloading", total: 4096, offset: 1024 });
    r.start();
    const first = s.text();
    assert.match(first, /^ref:\s+resolved\s+\|\+{38}\|\n/);
    assert.match(first, /layer-sha256:aa:\s+downloading\s+\|\+{10}-{28}\| +1\.0 KiB\/4\.0 KiB\n/);
    assert.match(first, /elapsed: 0\.0 s\s+total: 1\.0 KiB\s+\(0\.0 B\/s\)\n$/);
    t.update("layer-sha256:aa", { state: "done" });
    c.advance(1000);
    r.stop();
    const second = s.text().slice(first.length);
    assert.ok(second.startsWith("\x1b[3F\x1b[J"), "moves up over the previous 3 lines and clears");
    assert.match(second, /layer-sha256:aa:\s+done\s+\|\+{38}\|/);
    assert.match(second, /total: 4\.0 KiB\s+\(4\.0 KiB\/s\)/);
  });

  it("keeps a frame within the terminal's height, dropping finished objects first", () => {
    const t = new ProgressTracker();
    t.set("ref", "resolved");
    for (let i = 0; i < 8; i++) t.update(`layer-${i}`, { state: i < 6 ? "done" : "downloading", total: 10 });
    const s = sink(true);
    const frame = new ProgressRenderer(t, { out: { ...s.out, rows: 6 }, mode: "table", color: false }).frame();
    const lines = frame.trimEnd().split("\n");
    assert.equal(lines.length, 5);
    assert.match(lines[0], /^ref:/);
    assert.match(lines[2], /^layer-6:\s+downloading/);
    assert.match(lines[3], /^layer-7:\s+downloading/);
    assert.match(lines[4], /^elapsed/);
  });

  it("bar clamps and fills proportionally", () => {
    assert.equal(bar(0.5, 12), "|+++++-----|");
    assert.equal(bar(2, 6), "|++++|");
    assert.equal(bar(Number.NaN, 6), "|----|");
  });
});
