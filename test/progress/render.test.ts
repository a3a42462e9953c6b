import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bar, ProgressRenderer, shortKey, summaryLine, tableLines } from "../../src/progress/render.ts";
import { type ProgressEntry, ProgressTracker } from "../../src/progress/tracker.ts";

const LAYER = "layer-sha256:52f171f769a7e3b1d8b0d9a2c7d5e2f0b8a4c3d2e1f0a9b8c7d6e5f4a3b2c1d0";

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

  it("draws the table and redraws it in place", () => {
    const c = fakeClock();
    const t = new ProgressTracker({ now: c.now });
    const s = sink(true);
    const r = new ProgressRenderer(t, { out: s.out, mode: "table", color: false, interval: 1_000_000 });
    t.set("ref", "resolved");
    t.update(LAYER, { state: "downloading", total: 4096, offset: 1024 });
    r.start();
    const first = s.text();
    assert.equal((first.match(/\x1b\[2K/g) ?? []).length, 3, "each line erased as it is written");
    const text = (f: string) => f.replace(/\x1b\[2K/g, "");
    assert.match(text(first), /^ref {2}resolved\n/);
    assert.match(text(first), /^layer 52f171f769a7 {2}downloading {2}\|\+{10}-{28}\| {3}1\.0 KiB\/4\.0 KiB\n/m);
    assert.match(text(first), /elapsed: 0\.0 s {2}total: 1\.0 KiB \(0\.0 B\/s\)\n$/);
    t.update(LAYER, { state: "done" });
    c.advance(1000);
    r.stop();
    const second = s.text().slice(first.length);
    assert.ok(second.startsWith("\r\x1b[3A\x1b[2K"), "moves up over the previous 3 lines");
    assert.doesNotMatch(second, /\x1b\[J/, "never erases the screen's end (tmux would keep the screen in its history)");
    assert.match(text(second), /^layer 52f171f769a7 {2}done {2}\|\+{38}\|$/m);
    assert.match(text(second), /total: 4\.0 KiB \(4\.0 KiB\/s\)/);
  });

  it("redraws at once when the terminal is resized, moving up over the old lines as they rewrapped", () => {
    const t = new ProgressTracker();
    const listeners: (() => void)[] = [];
    const chunks: string[] = [];
    const out = {
      write: (s: string) => chunks.push(s),
      isTTY: true,
      columns: 120,
      on: (_e: "resize", l: () => void) => listeners.push(l),
      off: (_e: "resize", l: () => void) => listeners.splice(listeners.indexOf(l), 1),
    };
    t.update(LAYER, { state: "downloading", total: 4096, offset: 1024 });
    const r = new ProgressRenderer(t, { out, mode: "table", color: false, interval: 1_000_000 }).start();
    const wide = chunks[0].replace(/\x1b\[2K/g, "").split("\n")[0];
    assert.ok(wide.length > 60 && wide.length < 120, wide);
    out.columns = 60;
    assert.equal(listeners.length, 1);
    listeners[0]();
    // the 2 lines drawn at 120 columns: the table's line now takes 2 rows of 60
    const up = Math.ceil(wide.length / 60) + 1;
    assert.ok(chunks[1].startsWith(`\r\x1b[${up}A`), JSON.stringify(chunks[1]));
    const lines = chunks[1]
      .replace(/^\r\x1b\[\d+A/, "")
      .replace(/\x1b\[2K/g, "")
      .split("\n");
    for (const line of lines.slice(0, 2)) assert.ok(line.length < 60, line);
    // the row the old frame's wrapped line used beyond the new frame: erased, and the cursor back above it
    assert.equal(lines.slice(2).join("\n"), `\n\x1b[${up - 2}A`);
    r.stop();
    assert.equal(listeners.length, 0, "stops listening");
  });

  it("keeps a frame within the terminal's height, dropping finished objects first", () => {
    const t = new ProgressTracker();
    t.set("ref", "resolved");
    for (let i = 0; i < 8; i++)
      t.update(`layer-sha256:${String(i).repeat(64)}`, { state: i < 6 ? "done" : "downloading", total: 10 });
    const s = sink(true);
    const frame = new ProgressRenderer(t, { out: { ...s.out, rows: 6 }, mode: "table", color: false }).frame();
    const lines = frame.trimEnd().split("\n");
    assert.equal(lines.length, 5);
    assert.match(lines[0], /^ref /);
    assert.match(lines[2], /^layer 666666666666\s+downloading/);
    assert.match(lines[3], /^layer 777777777777\s+downloading/);
    assert.match(lines[4], /^elapsed/);
  });

  it("bar clamps and fills proportionally", () => {
    assert.equal(bar(0.5, 12), "|+++++-----|");
    assert.equal(bar(2, 6), "|++++|");
    assert.equal(bar(Number.NaN, 6), "|----|");
  });
});

describe("tableLines", () => {
  const digest = (c: string) => `sha256:${c.repeat(64)}`;
  const entry = (key: string, state: ProgressEntry["state"], offset = 0, total = 0): ProgressEntry => ({
    key,
    state,
    offset,
    total,
    startOffset: 0,
    updatedAt: 0,
  });
  const pull = (): ProgressEntry[] => [
    entry("127.0.0.1:5000/debian/bookworm:minbase", "resolved"),
    entry(`manifest-${digest("4")}`, "done", 350, 350),
    entry(`config-${digest("f")}`, "exists", 475, 475),
    entry(`layer-${digest("9")}`, "downloading", 12 << 20, 51_200_000),
    entry(`layer-${digest("a")}`, "extracting", 300 << 10, 2_100_000_000),
    entry(`layer-${digest("b")}`, "waiting", 0, 1000),
  ];

  it("shortens keys to the kind and 12 hex, leaving references alone", () => {
    assert.equal(shortKey(`layer-${digest("5")}`), "layer 555555555555");
    assert.equal(shortKey(`manifest-sha512:${"c".repeat(128)}`), "manifest cccccccccccc");
    assert.equal(shortKey("docker.io/library/redis:latest"), "docker.io/library/redis:latest");
  });

  for (const columns of [200, 100, 80, 60, 40, 30, 20, 8]) {
    it(`never fills a ${columns}-column line`, () => {
      const lines = tableLines(pull(), columns);
      assert.equal(lines.length, 6);
      for (const l of lines) assert.ok(l.length <= columns - 1, `${l.length}: ${l}`);
    });
  }

  it("keeps a 40-column bar and both byte counts when there is room", () => {
    const lines = tableLines(pull(), 100);
    assert.deepEqual(lines, [
      "127.0.0.1:5000/debian/bookworm:minbase  resolved",
      `manifest 444444444444  done         |${"+".repeat(38)}|`,
      `config ffffffffffff    exists       |${"+".repeat(38)}|`,
      `layer 999999999999     downloading  |${"+".repeat(9)}${"-".repeat(29)}|  12.0 MiB/48.8 MiB`,
      `layer aaaaaaaaaaaa     extracting   |${"-".repeat(38)}|  300.0 KiB/2.0 GiB`,
      `layer bbbbbbbbbbbb     waiting      |${"-".repeat(38)}|`,
    ]);
  });

  it("narrows the bar first, then drops it, keeping the numbers", () => {
    const at80 = tableLines(pull(), 80);
    assert.equal(at80[3], `layer 999999999999     downloading  |${"+".repeat(5)}${"-".repeat(17)}|  12.0 MiB/48.8 MiB`);
    const at60 = tableLines(pull(), 60);
    assert.equal(at60[1], "manifest 444444444444  done");
    assert.equal(at60[3], "layer 999999999999     downloading  12.0 MiB/48.8 MiB");
  });

  it("drops the total, then the numbers, then shortens names", () => {
    assert.equal(tableLines(pull(), 50)[3], "layer 999999999999     downloading  12.0 MiB");
    const at40 = tableLines(pull(), 40);
    assert.equal(at40[3], "layer 999999999999     downloading");
    assert.equal(at40[0], "…5000/debian/bookworm:minbase  resolved");
    assert.equal(tableLines(pull(), 30)[3], "999999999999      downloading");
    assert.equal(tableLines(pull(), 20)[3], "999999  downloading");
  });
});
