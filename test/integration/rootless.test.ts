/**
 * `dist run` without root, with runc --rootless in a user namespace: as a
 * user this test creates with subordinate ids (the user → 0, its ranges → 1…),
 * and as nobody, who has none (only root exists in the container). Exit
 * codes, stdout and stderr, signals, a terminal, detached containers and their
 * removal (files the container made as a subordinate id included), and the
 * errors that say what is missing.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { must, requireTools, run, which } from "./fixtures/exec.ts";
import { DIST, type Testbed, testbed } from "./harness.ts";

const skip = process.getuid?.() !== 0 || !which("runc") ? "needs root (to make a user) and runc" : false;

/** The end of the highest subordinate range on this machine: ours starts above every other. */
function freeSubordinateStart(): number {
  let end = 300_000;
  for (const f of ["/etc/subuid", "/etc/subgid"]) {
    let text = "";
    try {
      text = readFileSync(f, "utf8");
    } catch {}
    for (const line of text.split("\n")) {
      const [, start, count] = line.split(":").map(Number);
      if (start > 0 && count > 0) end = Math.max(end, start + count);
    }
  }
  return Math.ceil(end / 65536) * 65536;
}

describe("rootless dist run", { skip }, () => {
  let tb: Testbed;
  let image: string;
  const user = `dist-rl-${process.pid}`;
  let uid: number;
  let gid: number;
  let root: string;
  let home: string;
  let start: number;

  before(async () => {
    requireTools(["tmux", "newuidmap", "setpriv"]);
    tb = await testbed();
    image = `${tb.plain}/tiny/busybox:oci`;
    start = freeSubordinateStart();
    await must("useradd", ["-r", "-M", "-s", "/usr/sbin/nologin", user]);
    await must("usermod", [
      "--add-subuids",
      `${start}-${start + 65535}`,
      "--add-subgids",
      `${start}-${start + 65535}`,
      user,
    ]);
    uid = Number((await must("id", ["-u", user])).trim());
    gid = Number((await must("id", ["-g", user])).trim());
    root = await tb.rootFor(user);
    home = tb.tempDir("home");
    const pulled = await tb.dist(["pull", "--plain-http", image], { user, root });
    assert.equal(pulled.code, 0, pulled.stderr);
  });
  after(async () => {
    // userdel takes the subordinate ranges away too
    await run("userdel", [user]);
    await tb.stop();
  });

  const dist = (args: string[], who = user, r = root) => tb.dist(args, { user: who, root: r });

  /** dist as the user in this very process (setpriv execs it: the pid a signal goes to is dist's). */
  function asUser(args: string[]): string[] {
    return [
      "setpriv",
      `--reuid=${uid}`,
      `--regid=${gid}`,
      "--clear-groups",
      "env",
      `HOME=${home}`,
      DIST,
      "--root",
      root,
      ...args,
    ];
  }

  /**
   * Nothing of a container left: no record, no runc state, no active snapshot (as root sees
   * the user's store; a snapshotter root opens first would make directories the user cannot use).
   */
  async function assertNothingLeft(snapshotters = ["native"]): Promise<void> {
    for (const d of ["containers", "runc"]) {
      const dir = join(root, d);
      assert.deepEqual(existsSync(dir) ? readdirSync(dir) : [], [], `${d} left`);
    }
    for (const sn of snapshotters) {
      const ls = await tb.dist(["snapshots", "--snapshotter", sn, "ls", "--output", "json"], { root });
      assert.equal(ls.code, 0, ls.stderr);
      const active = (JSON.parse(ls.stdout) as { name: string; kind: string }[]).filter((i) => i.kind !== "committed");
      assert.deepEqual(active, [], `active snapshots left in ${sn}`);
    }
  }

  test("the user is root in the container, its subordinate ids the other users; exit status, stdout and stderr as for root", async () => {
    const r = await dist([
      "run",
      "--rm",
      image,
      "sh",
      "-c",
      "id -u; cat /proc/self/uid_map; echo to-stderr >&2; exit 3",
    ]);
    assert.equal(r.code, 3, r.stderr);
    const [id, ...map] = r.stdout.trim().split("\n");
    assert.equal(id, "0");
    assert.deepEqual(
      map.map((l) => l.trim().split(/\s+/).map(Number)),
      [
        [0, uid, 1],
        [1, start, 65536],
      ],
    );
    assert.equal(r.stderr, "to-stderr\n");
    const nobody = await dist([
      "run",
      "--rm",
      "--user",
      "nobody",
      image,
      "sh",
      "-c",
      "id -u; mkdir /tmp/d; touch /tmp/d/f",
    ]);
    assert.equal(nobody.code, 0, nobody.stderr);
    assert.equal(nobody.stdout, "65534\n");
    await assertNothingLeft();
  });

  test("detached: ps, kill and rm as the user outside the namespace, the container's own files removed too", async () => {
    const id = "rl-bg";
    const started = await dist([
      "run",
      "-d",
      "--id",
      id,
      "--user",
      "nobody",
      image,
      "sh",
      "-c",
      "mkdir /tmp/d; touch /tmp/d/f; exec sleep 600",
    ]);
    assert.equal(started.code, 0, started.stderr);
    assert.equal(started.stdout, `${id}\n`);
    // the store stays private to the user as a root's is to root: what the namespace made is the user's
    const modes: [string, number][] = [
      [root, 0o700],
      [join(root, "containers"), 0o700],
      [join(root, "containers", id), 0o700],
      [join(root, "containers", id, "bundle", "config.json"), 0o600],
    ];
    for (const [p, mode] of modes) {
      const st = statSync(p);
      assert.deepEqual([st.mode & 0o777, st.uid], [mode, uid], p);
    }
    for (let i = 0; i < 50; i++) {
      if ((await dist(["ps", "--output", "json"])).stdout.includes('"running"')) break;
      await sleep(100);
    }
    const ps = JSON.parse((await dist(["ps", "--output", "json"])).stdout) as { id: string; status: string }[];
    assert.deepEqual(
      ps.map((c) => [c.id, c.status]),
      [[id, "running"]],
    );
    const kill = await dist(["kill", "-s", "KILL", id]);
    assert.equal(kill.code, 0, kill.stderr);
    const rm = await dist(["rm", "-f", id]);
    assert.equal(rm.code, 0, rm.stderr);
    await assertNothingLeft();
  });

  test("SIGTERM to dist reaches the container, whose exit status comes back", async () => {
    const argv = asUser([
      "run",
      "--rm",
      image,
      "sh",
      "-c",
      'trap "echo got TERM; exit 7" TERM; echo ready; sleep 600 & wait',
    ]);
    const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (b: Buffer) => {
      out += b;
    });
    child.stderr.on("data", (b: Buffer) => {
      err += b;
    });
    for (let i = 0; i < 300 && !out.includes("ready"); i++) await sleep(100);
    assert.match(out, /ready/, err);
    child.kill("SIGTERM");
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    assert.equal(code, 7, err);
    assert.match(out, /got TERM/);
    await assertNothingLeft();
  });

  test("a terminal: -t gives the container one, in a real terminal (tmux)", async () => {
    const sock = join(tb.tempDir("tmux"), "s");
    const tmux = (...a: string[]) => must("tmux", ["-S", sock, "-f", "/dev/null", ...a]);
    const cmd = [...asUser(["run", "--rm", "-t", image, "sh", "-c", "tty; [ -t 0 ] && echo stdin-tty; exit 5"])]
      .map((a) => `'${a.replace(/'/g, "'\\''")}'`)
      .join(" ");
    await tmux("new-session", "-d", "-x", "100", "-y", "20", "-s", "t", "sh", "-c", `${cmd}; echo EXIT=$?; sleep 600`);
    after(() => run("tmux", ["-S", sock, "kill-server"]));
    let screen = "";
    for (let i = 0; i < 300 && !/EXIT=\d+/.test(screen); i++) {
      await sleep(100);
      screen = await tmux("capture-pane", "-p", "-t", "t");
    }
    assert.match(screen, /^\/dev\/pts\/\d+\s*$/m, screen);
    assert.match(screen, /^stdin-tty\s*$/m, screen);
    assert.match(screen, /^EXIT=5\s*$/m, screen);
  });

  test("overlayfs mounted inside the namespace (userxattr): the same tree as native, whiteouts and owners included", async () => {
    const edge = `${tb.plain}/edge/whiteouts:oci`;
    const pulled = await dist(["pull", "--plain-http", edge]);
    assert.equal(pulled.code, 0, pulled.stderr);
    const list = "find / -xdev -path /proc -prune -o -print | sort; echo --; ls -ln /data/perms | awk '{print $3, $9}'";
    const native = await dist(["run", "--rm", edge, "sh", "-c", list]);
    assert.equal(native.code, 0, native.stderr);
    const overlay = await dist(["run", "--rm", "--snapshotter", "overlay", edge, "sh", "-c", `${list}; mount`]);
    assert.equal(overlay.code, 0, overlay.stderr);
    assert.match(overlay.stdout, /^overlay on \/ type overlay \(.*userxattr/m);
    const tree = (out: string) => out.slice(0, out.indexOf("\n--\n"));
    assert.ok(tree(native.stdout).split("\n").length > 300);
    assert.equal(tree(overlay.stdout), tree(native.stdout));
    // unpacked inside the namespace: the owners it has ids for (1000, nobody) are kept, 100000 becomes root
    assert.match(overlay.stdout, /^1000 owned-1000$/m);
    assert.match(overlay.stdout, /^65534 owned-nobody$/m);
    assert.match(overlay.stdout, /^0 owned-100000$/m);
    // detached, then removed by the user outside, where overlay cannot even be mounted
    const id = "rl-overlay";
    const started = await dist([
      "run",
      "-d",
      "--id",
      id,
      "--snapshotter",
      "overlay",
      "--user",
      "nobody",
      edge,
      "sh",
      "-c",
      "mkdir /tmp/d; touch /tmp/d/f; exec sleep 600",
    ]);
    assert.equal(started.code, 0, started.stderr);
    const rm = await dist(["rm", "-f", id]);
    assert.equal(rm.code, 0, rm.stderr);
    await assertNothingLeft(["native", "overlay"]);
  });

  test("without subordinate ids (nobody): only root exists in the container, another user is a clear error", async () => {
    const nobodyRoot = await tb.rootFor("nobody");
    const pulled = await dist(["pull", "--plain-http", image], "nobody", nobodyRoot);
    assert.equal(pulled.code, 0, pulled.stderr);
    const r = await dist(
      ["--debug", "run", "--rm", image, "sh", "-c", "id -u; cat /proc/self/uid_map; exit 4"],
      "nobody",
      nobodyRoot,
    );
    assert.equal(r.code, 4, r.stderr);
    assert.deepEqual(
      r.stdout
        .trim()
        .split("\n")
        .map((l) => l.trim().split(/\s+/).join(" ")),
      ["0", "0 65534 1"],
    );
    assert.match(r.stderr, /rootless: nobody is the only user of the container \(no \/etc\/subuid range for nobody\)/);
    // fetched, not unpacked: unpacked in the namespace, where only root has an id: its owners are all root
    const edge = `${tb.plain}/edge/whiteouts:oci`;
    const fetched = await dist(["fetch", "--plain-http", edge], "nobody", nobodyRoot);
    assert.equal(fetched.code, 0, fetched.stderr);
    const owners = await dist(
      ["run", "--rm", edge, "sh", "-c", "ls -ln /data/perms | awk 'NR > 1 {print $3}' | sort -u"],
      "nobody",
      nobodyRoot,
    );
    assert.equal(owners.code, 0, owners.stderr);
    assert.equal(owners.stdout, "0\n");
    const other = await dist(["run", "--rm", "--user", "nobody", image, "id"], "nobody", nobodyRoot);
    assert.equal(other.code, 1);
    assert.match(
      other.stderr,
      /^dist: the container's user 65534 does not exist in this rootless run \(only id 0 \(root\) is mapped\): add ranges for nobody to \/etc\/subuid and \/etc\/subgid/,
    );
  });
});
