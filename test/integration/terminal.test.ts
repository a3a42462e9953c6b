/**
 * The progress table in a real terminal: `dist pull` of two images (sharing a
 * layer) run inside tmux at 80, 100 and 200 columns, its blobs slowed down by a
 * proxy so frames with byte counts are drawn, then tmux's own screen read back
 * (capture-pane): one line per object, no line the terminal had to wrap, nothing
 * left of earlier frames. And a resize in the middle of the downloads (SIGWINCH).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { must, requireTools, run } from "./fixtures/exec.ts";
import { DIST, type Testbed, testbed } from "./harness.ts";

const REFS = ["tiny/busybox:oci", "edge/whiteouts:oci"];

describe("dist pull in a real terminal (tmux)", () => {
  let tb: Testbed;
  let slow: string;
  let slower: string;
  /** The short names (`layer 09bc57836280`) of every blob of the two images, each once. */
  let objects: string[];

  before(async () => {
    requireTools(["tmux"]);
    tb = await testbed();
    slow = await tb.proxy(tb.plain, "slow", { delayMs: 30 });
    slower = await tb.proxy(tb.plain, "slow", { delayMs: 120 });
    const names = new Set<string>();
    for (const ref of REFS) {
      const img = tb.images[ref];
      names.add(`manifest ${hex12(img.digest)}`);
      assert.ok(img.config && img.layers, `${ref} is an image manifest`);
      names.add(`config ${hex12(img.config.digest)}`);
      for (const l of img.layers) names.add(`layer ${hex12(l.digest)}`);
    }
    objects = [...names].sort();
  });
  after(() => tb.stop());

  const hex12 = (digest: string) => digest.slice(digest.indexOf(":") + 1, digest.indexOf(":") + 13);

  /** A tmux server of its own running `dist pull` in a `width`-column window; its socket and raw output log. */
  async function startPull(
    registry: string,
    width: number,
  ): Promise<{ tmux: (...a: string[]) => Promise<string>; log: string; pid: () => number }> {
    const dir = tb.tempDir("tmux");
    const socket = join(dir, "socket");
    const log = join(dir, "raw.log");
    const pidFile = join(dir, "dist.pid");
    const tmux = (...args: string[]) => must("tmux", ["-S", socket, "-f", "/dev/null", ...args]);
    const refs = REFS.map((r) => `${registry}/${r}`).join(" ");
    // CI=true would make the table plain lines: the terminal is what is tested here;
    // the inner shell's pid is dist's (bin/dist execs node)
    const dist = `env -u CI -u NO_COLOR DOCKER_CONFIG=${tb.tempDir("docker")} ${DIST} --root ${tb.newRoot()} pull --plain-http ${refs}`;
    const cmd = `sh -c 'echo $$ > ${pidFile}; exec ${dist}'; echo "EXIT=$?"; sleep 600`;
    // a prompt line first, as in a shell
    await tmux(
      "new-session",
      "-d",
      "-x",
      String(width),
      "-y",
      "40",
      "-s",
      "t",
      "sh",
      "-c",
      `sleep 0.3; echo '$ dist pull'; ${cmd}`,
    );
    await tmux("pipe-pane", "-t", "t", "-o", `cat >> ${log}`);
    after(() => run("tmux", ["-S", socket, "kill-server"]));
    return { tmux, log, pid: () => Number(readFileSync(pidFile, "utf8")) };
  }

  async function waitFor(tmux: (...a: string[]) => Promise<string>, pattern: RegExp): Promise<void> {
    for (let i = 0; i < 600; i++) {
      if (pattern.test(await tmux("capture-pane", "-p", "-t", "t"))) return;
      await sleep(100);
    }
    assert.fail(`the terminal never showed ${pattern}:\n${await tmux("capture-pane", "-p", "-t", "t")}`);
  }

  /**
   * The screen (with its history unless `visible`), each row as tmux holds it,
   * and the same with wrapped rows joined.
   */
  async function screen(
    tmux: (...a: string[]) => Promise<string>,
    visible = false,
  ): Promise<{ rows: string[]; joined: string[] }> {
    const trim = (s: string) => s.replace(/\n+$/, "").split("\n");
    const range = visible ? [] : ["-S", "-", "-E", "-"];
    return {
      rows: trim(await tmux("capture-pane", "-p", ...range, "-t", "t")),
      joined: trim(await tmux("capture-pane", "-p", "-J", ...range, "-t", "t")),
    };
  }

  /** One line per reference and per object, then the summary: nothing else above it, no row wrapped. */
  function assertTable(rows: string[], joined: string[], width: number, registry: string): void {
    const text = rows.join("\n");
    assert.equal(joined.length, rows.length, `a line was wrapped at ${width} columns:\n${text}`);
    for (const r of rows) assert.ok(r.trimEnd().length < width, `a line fills the ${width}-column row: ${r}`);
    const top = rows[0] === "$ dist pull" ? 1 : 0;
    const end = rows.findIndex((r) => r.startsWith("elapsed: "));
    assert.ok(end > 0, text);
    const table = rows.slice(top, end);
    assert.deepEqual(table.slice(0, REFS.length).sort(), REFS.map((r) => `${registry}/${r}  resolved`).sort(), text);
    const objectRows = table.slice(REFS.length);
    const named = objectRows.map((r) => /^(\w+ [0-9a-f]{12}) +(done|exists)(?: +\|\++\|)?$/.exec(r)?.[1]);
    assert.ok(
      named.every((n) => n !== undefined),
      `not an object's final line:\n${text}`,
    );
    assert.deepEqual([...named].sort(), objects, text);
    assert.match(rows[end + REFS.length + 1] ?? "", /^done: /, text);
    assert.equal(rows.length, end + REFS.length + 3, text);
    assert.match(rows[end + REFS.length + 2] ?? "", /^EXIT=0$/, text);
  }

  for (const width of [80, 100, 200]) {
    test(`${width} columns: one line per object, none wrapped`, async () => {
      const { tmux, log } = await startPull(slow, width);
      await waitFor(tmux, /EXIT=\d+/);
      const { rows, joined } = await screen(tmux);
      assert.equal(rows[0], "$ dist pull", "nothing above the prompt line: no frame went to the history");
      assertTable(rows, joined, width, slow);
      // frames with byte counts were drawn, in place (cursor up, clear to the end)
      const raw = readFileSync(log, "latin1");
      assert.match(raw, /downloading {2}.*\d\.\d [KM]iB\/1\.0 MiB/);
      assert.match(raw, /\r\x1b\[\d+A\x1b\[2K/);
    });
  }

  test("a terminal narrowed from 200 to 80 columns while downloading: redrawn to fit, nothing left behind", async () => {
    const { tmux, pid } = await startPull(slower, 200);
    await waitFor(tmux, /downloading .*MiB\/1\.0 MiB/);
    // dist stopped while the terminal narrows, so no frame is on its way to tmux meanwhile: one
    // written for 200 columns and read by tmux after its rewrap is a race no program can win
    process.kill(pid(), "SIGSTOP");
    let before = "";
    for (let now = await screen(tmux); now.rows.join("\n") !== before; now = await screen(tmux)) {
      before = now.rows.join("\n");
      await sleep(200);
    }
    await tmux("resize-window", "-t", "t", "-x", "80");
    process.kill(pid(), "SIGCONT");
    await waitFor(tmux, /EXIT=\d+/);
    // what the user sees: tmux moves rows into its history as it rewraps, out of reach of any redraw
    const { rows, joined } = await screen(tmux, true);
    assertTable(rows, joined, 80, slower);
  });
});
