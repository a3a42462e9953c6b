/**
 * bash completion for real: the script of `dist completion bash` loaded into
 * bash, the completion function called as readline calls it (COMP_LINE,
 * COMP_POINT), and TAB pressed in an interactive bash inside tmux. Image names
 * come from a store holding images fetched from the real registry.
 */
import assert from "node:assert/strict";
import { existsSync, symlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { must, requireTools, run } from "./fixtures/exec.ts";
import { DIST, type Testbed, testbed } from "./harness.ts";

const HERE = dirname(fileURLToPath(import.meta.url));

describe("bash completion", () => {
  let tb: Testbed;
  let root: string;
  let bin: string;
  let busybox: string;
  let multi: string;

  before(async () => {
    requireTools(["tmux"]);
    tb = await testbed();
    root = tb.newRoot();
    busybox = `${tb.plain}/tiny/busybox:oci`;
    multi = `${tb.plain}/multi/busybox:oci`;
    const r = await tb.dist(["fetch", "--plain-http", busybox, multi], { root });
    assert.equal(r.code, 0, r.stderr);
    bin = tb.tempDir("bin");
    symlinkSync(DIST, join(bin, "dist"));
  });
  after(() => tb.stop());

  const env = () => ({ ...process.env, PATH: `${bin}:${process.env.PATH}`, HOME: tb.tempDir("home") });

  /** What the completion function offers for each line, as readline would call it (cursor at the end). */
  async function offered(lines: string[]): Promise<string[][]> {
    const script = join(HERE, "fixtures", "bash-complete.sh");
    const out = await must("bash", ["--norc", "--noprofile", script, ...lines], { env: env() });
    return out
      .split("--\n")
      .slice(0, lines.length)
      .map((block) => block.split("\n").filter(Boolean));
  }

  test("commands, options, option values and image names from the store", async () => {
    const port = tb.plain.slice(tb.plain.indexOf(":") + 1);
    const typo = join(tb.tempDir("typo"), "root");
    const [commands, pullFlags, modes, images, afterColon, subcommand, none] = await offered([
      "dist pu",
      "dist pull --pro",
      "dist --root x pull --progress ",
      `dist --root ${root} run 127.0.0.1:${port}/`,
      `dist --root ${root} images rm 127.0.0.1:${port}/multi/busybox:`,
      "dist images t",
      `dist --root ${typo} run 127`,
    ]);
    assert.deepEqual(commands, ["pull", "push"]);
    assert.deepEqual(pullFlags, ["--progress"]);
    assert.deepEqual(modes, ["auto", "json", "plain", "tty"]);
    // bash's word starts after the last ":" (COMP_WORDBREAKS): the candidates are what follows it
    assert.deepEqual(images, [`${port}/multi/busybox:oci`, `${port}/tiny/busybox:oci`]);
    assert.deepEqual(afterColon, ["oci"]);
    assert.deepEqual(subcommand, ["tag"]);
    // a root that holds no store offers nothing, and a TAB does not make one there
    assert.deepEqual(none, []);
    assert.equal(existsSync(typo), false);
  });

  test("TAB in an interactive bash completes the line", async () => {
    const dir = tb.tempDir("tmux");
    const tmux = (...args: string[]) => must("tmux", ["-S", join(dir, "s"), "-f", "/dev/null", ...args]);
    const e = env();
    await tmux(
      "new-session",
      "-d",
      "-x",
      "150",
      "-y",
      "20",
      "-s",
      "t",
      "env",
      `PATH=${e.PATH}`,
      `HOME=${e.HOME}`,
      "PS1=$ ",
      "bash",
      "--norc",
      "--noprofile",
    );
    after(() => run("tmux", ["-S", join(dir, "s"), "kill-server"]));
    const screen = () => tmux("capture-pane", "-p", "-J", "-t", "t"); // -J: wrapped lines joined, trailing spaces kept
    const until = async (pattern: RegExp) => {
      for (let i = 0; i < 100; i++) {
        if (pattern.test(await screen())) return;
        await sleep(100);
      }
      assert.fail(`never saw ${pattern} in:\n${await screen()}`);
    };
    await tmux("send-keys", "-t", "t", "source <(dist completion bash)", "Enter");
    await until(/^\$ $/m);
    // after each TAB a "#": it lands after the space bash adds to a completed word
    await tmux("send-keys", "-t", "t", `dist --root ${root} run ${tb.plain}/ti`, "Tab");
    // the completion runs dist: the "#" goes once it has answered, not into its wait
    await until(/busybox:oci/);
    await tmux("send-keys", "-t", "t", "#");
    await until(new RegExp(`run ${tb.plain.replace(/\./g, "\\.")}/tiny/busybox:oci #`, "m"));
    await tmux("send-keys", "-t", "t", "C-u", "dist --progress j", "Tab");
    await until(/--progress json/);
    await tmux("send-keys", "-t", "t", "#");
    await until(/dist --progress json #/m);
  });
});
