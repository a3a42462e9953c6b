/**
 * `dist run` / `dist bundle` / ps / kill / rm against the real registry and runc:
 * busybox images pulled with `dist pull`, plus an image crafted here with umoci
 * (Entrypoint echo, Cmd hello, Env, WorkingDir, User nobody, ports, a volume,
 * labels, a stop signal) and one without any command, pushed to scratch/.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { openSnapshotterAt } from "../../src/metadata/metadata.ts";
import { cgroupsPathFor } from "../../src/run/run.ts";
import { checkSchema } from "../oci/schema.ts";
import { must, run, which } from "./fixtures/exec.ts";
import { DIST, type Testbed, testbed } from "./harness.ts";

const skip = process.getuid?.() !== 0 || !which("runc") ? "needs root and runc" : false;

describe("dist run with runc", { skip }, () => {
  let tb: Testbed;
  let root: string;
  let busybox: string;
  let app: string;
  let nocmd: string;
  let appLayout: string;
  let chainID: string;

  const dist = (args: string[], env?: Record<string, string>) => tb.dist(args, { root, env });

  /** Nothing of a container left: no record, no runc state, no mount, only the image's committed snapshot. */
  async function assertNothingLeft(): Promise<void> {
    const containers = join(root, "containers");
    assert.deepEqual(existsSync(containers) ? readdirSync(containers) : [], [], "container directories left");
    const runcRoot = join(root, "runc");
    assert.deepEqual(existsSync(runcRoot) ? readdirSync(runcRoot) : [], [], "runc state left");
    const cgroupParent = cgroupsPathFor(root, "default", "x").split("/")[1];
    for (const h of readdirSync("/sys/fs/cgroup")) {
      assert.ok(!existsSync(join("/sys/fs/cgroup", h, cgroupParent)), `cgroup ${h}/${cgroupParent} left`);
    }
    const mounts = readFileSync("/proc/self/mountinfo", "utf8");
    assert.ok(!mounts.includes(root), "a mount under the root is left");
    for (const sn of ["overlay", "native"] as const) {
      const keys: string[] = [];
      await openSnapshotterAt(root, sn).walk((s) => {
        if (s.kind !== "committed") keys.push(s.name);
      });
      assert.deepEqual(keys, [], `active snapshots left in ${sn}`);
    }
  }

  before(async () => {
    tb = await testbed();
    root = tb.newRoot();
    busybox = `${tb.plain}/tiny/busybox:oci`;
    // the crafted images: from busybox, with umoci config, pushed to scratch/
    appLayout = await tb.skopeoPull(busybox);
    const img = `${appLayout}:t`;
    await must("umoci", [
      "config",
      "--image",
      img,
      "--tag",
      "app",
      "--config.entrypoint",
      "/bin/echo",
      "--config.cmd",
      "hello",
      "--config.env",
      "GREETING=hi",
      "--config.env",
      "PATH=/bin:/usr/bin",
      "--config.workingdir",
      "/tmp",
      "--config.user",
      "nobody",
      "--config.exposedports",
      "8080/tcp",
      "--config.volume",
      "/data",
      "--config.label",
      "org.example.role=test",
      "--config.stopsignal",
      "SIGQUIT",
    ]);
    await must("umoci", ["config", "--image", img, "--tag", "nocmd", "--clear", "config.cmd"]);
    app = `${tb.plain}/scratch/run-app:latest`;
    nocmd = `${tb.plain}/scratch/run-nocmd:latest`;
    await tb.skopeoCopy(`oci:${appLayout}:app`, `docker://${app}`);
    await tb.skopeoCopy(`oci:${appLayout}:nocmd`, `docker://${nocmd}`);
    for (const ref of [busybox, app, nocmd]) {
      const r = await dist(["pull", "--plain-http", "--print-chainid", ref]);
      assert.equal(r.code, 0, r.stderr);
      if (ref === busybox) chainID = /image chain ID: (sha256:[0-9a-f]{64})/.exec(r.stdout)?.[1] ?? "";
    }
  });
  after(() => tb?.stop());

  test("the image's own command: Entrypoint + Cmd, Env, WorkingDir, User", async () => {
    const r = await dist(["run", "--rm", app]);
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, "hello\n", ""]);
    const d = await dist([
      "run",
      "--rm",
      "--entrypoint",
      "/bin/sh",
      app,
      "-c",
      'echo "$GREETING|$PATH|$(pwd)|$(id -u):$(id -g)|$HOME"',
    ]);
    assert.deepEqual([d.code, d.stdout, d.stderr], [0, "hi|/bin:/usr/bin|/tmp|65534:65534|/\n", ""]);
  });

  test("arguments replace Cmd and keep the Entrypoint; --entrypoint replaces it", async () => {
    const r = await dist(["run", "--rm", app, "bye", "-n", "now"]);
    assert.deepEqual([r.code, r.stdout], [0, "bye -n now\n"]);
    const e = await dist(["run", "--rm", "--entrypoint", "/bin/id", app, "-u"]);
    assert.deepEqual([e.code, e.stdout], [0, "65534\n"]);
  });

  test("overridden environment, working directory and user (by name, uid and name:group)", async () => {
    const r = await dist(
      [
        "run",
        "--rm",
        "-e",
        "GREETING=yo",
        "-e",
        "EXTRA=1",
        "-e",
        "FROM_HOST",
        "--cwd",
        "/etc",
        "--user",
        "root",
        "--entrypoint",
        "/bin/sh",
        app,
        "-c",
        'echo "$GREETING $EXTRA $FROM_HOST $(pwd) $(id -u)"',
      ],
      { FROM_HOST: "h" },
    );
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, "yo 1 h /etc 0\n", ""]);
    const u = await dist(["run", "--rm", "-u", "nobody:root", busybox, "id"]);
    assert.equal(u.stdout, "uid=65534(nobody) gid=0(root) groups=0(root)\n");
    const n = await dist(["run", "--rm", "-u", "1234", busybox, "id", "-u"]);
    assert.equal(n.stdout, "1234\n");
  });

  test("the busybox image's own Cmd (/bin/sh) reads stdin with -i; -t gives a terminal", async () => {
    const r = await tb.dist(["run", "--rm", "-i", busybox], { root, input: "echo from-stdin; exit 4\n" });
    assert.deepEqual([r.code, r.stdout], [4, "from-stdin\n"]);
    const noStdin = await tb.dist(["run", "--rm", busybox], { root, input: "echo leaked\n" });
    assert.deepEqual([noStdin.code, noStdin.stdout], [0, ""]);
    // script(1) gives dist a pseudo-terminal of its own
    const cmd = `${DIST} --root ${root} run --rm -t ${busybox} sh -c 'tty; echo $TERM; exit 5'`;
    const t = await run("script", ["-qec", cmd, "/dev/null"], { timeoutMs: 60_000 });
    assert.equal(t.code, 5, t.stderr.toString());
    assert.match(t.stdout.toString(), /\/dev\/pts\/\d+\r?\nxterm\r?\n/);
  });

  test("exit codes pass through; stdout and stderr stay apart", async () => {
    const r = await dist(["run", "--rm", busybox, "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert.deepEqual([r.code, r.stdout, r.stderr], [3, "out\n", "err\n"]);
    const missing = await dist(["run", "--rm", busybox, "/bin/nope"]);
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /\/bin\/nope/);
    await assertNothingLeft();
  });

  test("SIGTERM to dist reaches the container; a third SIGINT or a KILL from dist kill gives 137", async () => {
    const child = spawn(
      DIST,
      [
        "--root",
        root,
        "run",
        "--rm",
        "--id",
        "sig",
        busybox,
        "sh",
        "-c",
        'trap "echo term; exit 42" TERM; echo ready; while :; do sleep 0.1; done',
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    const exited = new Promise<number | null>((res) => child.on("exit", (c) => res(c)));
    await new Promise<void>((res) =>
      child.stdout.on("data", (b: Buffer) => {
        out += b.toString();
        if (out.includes("ready")) res();
      }),
    );
    child.kill("SIGTERM");
    assert.equal(await exited, 42);
    assert.equal(out, "ready\nterm\n");

    // process 1 without a handler ignores SIGINT: the third one kills it
    const c3 = spawn(DIST, ["--root", root, "run", "--rm", busybox, "sh", "-c", "echo ready; sleep 100"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited3 = new Promise<number | null>((res) => c3.on("exit", (c) => res(c)));
    let err3 = "";
    c3.stderr.on("data", (b: Buffer) => {
      err3 += b.toString();
    });
    await new Promise<void>((res) => c3.stdout.once("data", () => res()));
    for (let i = 0; i < 3; i++) {
      c3.kill("SIGINT");
      await new Promise((r) => setTimeout(r, 300));
    }
    assert.equal(await exited3, 137);
    assert.match(err3, /third interrupt: killing container/);

    const c2 = spawn(DIST, ["--root", root, "run", "--id", "sig2", busybox, "sh", "-c", "echo ready; sleep 100"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const exited2 = new Promise<number | null>((res) => c2.on("exit", (c) => res(c)));
    await new Promise<void>((res) => c2.stdout.once("data", () => res()));
    const k = await dist(["kill", "-s", "KILL", "sig2"]);
    assert.equal(k.code, 0, k.stderr);
    assert.equal(await exited2, 137);
    // without --rm the stopped container stays until dist rm
    const ps = await dist(["ps", "--output", "json"]);
    assert.deepEqual(
      (JSON.parse(ps.stdout) as { id: string; status: string }[]).map((c) => [c.id, c.status]),
      [["sig2", "stopped"]],
    );
    assert.equal((await dist(["rm", "sig2"])).code, 0);
    await assertNothingLeft();
  });

  test("--rm leaves no snapshot behind, with overlay and with native", async () => {
    for (const sn of ["overlay", "native"]) {
      const r = await dist([
        "run",
        "--rm",
        "--snapshotter",
        sn,
        busybox,
        "sh",
        "-c",
        "echo x > /written; cat /written",
      ]);
      assert.deepEqual([r.code, r.stdout], [0, "x\n"], r.stderr);
    }
    await assertNothingLeft();
    // and each container started from the image, not from what the last one wrote
    const r = await dist(["run", "--rm", busybox, "ls", "/written"]);
    assert.notEqual(r.code, 0);
  });

  test("detached: ps, kill, rm", async () => {
    const d = await dist([
      "run",
      "-d",
      "--id",
      "bg",
      busybox,
      "sh",
      "-c",
      'trap "echo stopping; exit 0" TERM; echo started; while :; do sleep 0.1; done',
    ]);
    assert.deepEqual([d.code, d.stdout], [0, "bg\n"], d.stderr);
    const ps = await dist(["ps"]);
    assert.match(ps.stdout, /^CONTAINER\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PID\n/);
    assert.match(ps.stdout, /\nbg\s+.*tiny\/busybox:oci.*running\s+\d+\n/);
    const busy = await dist(["rm", "bg"]);
    assert.equal(busy.code, 1);
    assert.match(busy.stderr, /container bg is running/);
    assert.equal((await dist(["kill", "bg"])).code, 0);
    let status = "";
    for (let i = 0; i < 50 && status !== "stopped"; i++) {
      status = (JSON.parse((await dist(["ps", "--output", "json"])).stdout) as { status: string }[])[0]?.status;
    }
    assert.equal(status, "stopped");
    assert.equal(readFileSync(join(root, "containers", "bg", "output.log"), "utf8"), "started\nstopping\n");
    assert.equal((await dist(["rm", "bg"])).code, 0);
    await assertNothingLeft();
    // rm -f of a running one
    assert.equal((await dist(["run", "-d", "--id", "bg2", busybox, "sleep", "100"])).code, 0);
    const f = await dist(["rm", "-f", "bg2"]);
    assert.equal(f.code, 0, f.stderr);
    await assertNothingLeft();
  });

  test("bad input: clear errors and nothing left behind", async () => {
    const cases: [string, string[], RegExp, Record<string, string>?][] = [
      ["no command", ["run", "--rm", nocmd], /has no command/],
      [
        "unknown user",
        ["run", "--rm", "-u", "ghost", busybox, "true"],
        /user "ghost" not found in the image's \/etc\/passwd/,
      ],
      ["unknown group", ["run", "--rm", "-u", "nobody:ghosts", busybox, "true"], /group "ghosts" not found/],
      ["missing runtime", ["run", "--rm", "--runtime", "/nonexistent/runc", busybox, "true"], /Debian package "runc"/],
      [
        "runtime not on PATH",
        ["run", "--rm", "--runtime", "no-such-runc", busybox, "true"],
        /not found on PATH: install the Debian package "runc"/,
      ],
      ["bad id", ["run", "--rm", "--id", "../x", busybox, "true"], /invalid container id/],
      ["not pulled", ["run", "--rm", `${tb.plain}/tiny/never:pulled`, "true"], /not found: pull it first/],
      ["bad env", ["run", "--rm", "-e", "=v", busybox, "true"], /KEY=VALUE/],
    ];
    // without root the run is rootless (rootless.test.ts): in nobody's own store, where nothing was pulled
    const nonRoot = await tb.dist(["run", "--rm", busybox, "true"], { user: "nobody" });
    assert.equal(nonRoot.code, 1);
    assert.match(nonRoot.stderr, /not found: pull it first/);
    for (const [name, args, re, env] of cases) {
      const r = await dist(args, env);
      assert.notEqual(r.code, 0, name);
      assert.match(r.stderr, re, name);
      assert.equal(r.stdout, "", name);
      await assertNothingLeft();
    }
  });

  test("a snapshot in use and an id already taken are refused, the existing ones kept", async () => {
    const p = await dist(["snapshots", "prepare", "busy", chainID]);
    assert.equal(p.code, 0, p.stderr);
    const r = await dist(["run", "--rm", "--id", "busy", busybox, "true"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /snapshot "busy" already exists .* in use by another container/);
    assert.ok(!existsSync(join(root, "containers", "busy")));
    assert.equal((await dist(["snapshots", "rm", "busy"])).code, 0);

    assert.equal((await dist(["run", "-d", "--id", "taken", busybox, "sleep", "100"])).code, 0);
    const t = await dist(["run", "--rm", "--id", "taken", busybox, "true"]);
    assert.equal(t.code, 1);
    assert.match(t.stderr, /container id "taken" is already in use/);
    assert.match((await dist(["ps"])).stdout, /\ntaken\s+.*running/);
    assert.equal((await dist(["rm", "-f", "taken"])).code, 0);
    await assertNothingLeft();
  });

  test("rm cleans up after a creation that was killed (a directory without a record)", async () => {
    const rootfs = join(root, "containers", "half", "bundle", "rootfs");
    mkdirSync(rootfs, { recursive: true });
    const p = await dist([
      "snapshots",
      "prepare",
      "half",
      chainID,
      "--label",
      "dist.container=half",
      "--target",
      rootfs,
    ]);
    assert.equal(p.code, 0, p.stderr);
    await must("sh", ["-c", p.stdout]);
    assert.ok(readFileSync("/proc/self/mountinfo", "utf8").includes(rootfs));
    const r = await dist(["rm", "half"]);
    assert.deepEqual([r.code, r.stdout], [0, "half\n"], r.stderr);
    await assertNothingLeft();
  });

  test("bundle without root: a copy of a native snapshot, nothing mounted", async () => {
    // a root and a bundle directory of nobody's own, where nobody can reach them (the harness's are root-only)
    const base = mkdtempSync(join(tmpdir(), "dist-run-nobody-"));
    after(() => rmSync(base, { recursive: true, force: true }));
    chmodSync(base, 0o755);
    const nroot = join(base, "root");
    mkdirSync(nroot, { mode: 0o700 });
    chownSync(nroot, 65534, 65534);
    const work = join(base, "work");
    mkdirSync(work, { mode: 0o700 });
    chownSync(work, 65534, 65534);
    const asNobody = (args: string[]) => tb.dist(args, { user: "nobody", root: nroot, env: { HOME: nroot } });
    const p = await asNobody(["pull", "--plain-http", busybox]);
    assert.equal(p.code, 0, p.stderr);
    const dir = join(work, "b");
    const b = await asNobody(["bundle", "-u", "nobody", busybox, dir, "--", "id", "-u"]);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(JSON.parse(readFileSync(join(dir, "dist-bundle.json"), "utf8")).mounted, false);
    assert.ok(existsSync(join(dir, "rootfs", "bin", "busybox")));
    const spec = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    assert.deepEqual([spec.process.args, spec.process.user.uid], [["id", "-u"], 65534]);
    assert.equal((await asNobody(["bundle", "--remove", dir])).code, 0);
    assert.ok(!existsSync(dir));
  });

  test("bundle: config.json valid by the runtime-spec schema, same process as umoci's, runnable by runc", async () => {
    const dir = join(tb.tempDir("bundle"), "b");
    const b = await dist(["bundle", app, dir]);
    assert.equal(b.code, 0, b.stderr);
    const ours = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    assert.deepEqual(checkSchema(ours), []);

    const umociDir = join(tb.tempDir("umoci"), "b");
    await tb.umociUnpack(`${appLayout}:app`, umociDir);
    const theirs = JSON.parse(readFileSync(join(umociDir, "config.json"), "utf8"));
    assert.deepEqual(checkSchema(theirs), [], "the checker accepts umoci's config too");
    assert.deepEqual(ours.process.args, theirs.process.args);
    assert.equal(ours.process.cwd, theirs.process.cwd);
    assert.deepEqual(
      [ours.process.user.uid, ours.process.user.gid],
      [theirs.process.user.uid, theirs.process.user.gid],
    );
    // umoci adds TERM=xterm because its bundles default to a terminal
    const env = (e: string[]) => e.filter((x) => !x.startsWith("TERM=")).sort();
    assert.deepEqual(env(ours.process.env), env(theirs.process.env));
    for (const k of [
      "org.opencontainers.image.exposedPorts",
      "org.opencontainers.image.stopSignal",
      "org.example.role",
    ]) {
      assert.equal(ours.annotations[k], theirs.annotations[k], k);
    }
    assert.deepEqual(
      ours.mounts
        .filter((m: { destination: string }) => m.destination === "/data")
        .map((m: { type: string }) => m.type),
      ["tmpfs"],
    );

    const r = await must("runc", ["--root", tb.tempDir("runc"), "run", "--bundle", dir, "bundle-test"]);
    assert.equal(r, "hello\n");
    const rm = await dist(["bundle", "--remove", dir]);
    assert.equal(rm.code, 0, rm.stderr);
    assert.ok(!existsSync(dir));
    await assertNothingLeft();
  });
});
