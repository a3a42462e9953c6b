/**
 * The parts of src/run that need neither root nor runc: container ids and
 * records, finding the runtime, and the foreground driver against a fake
 * runtime script that stands in for `runc run`.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { isAlreadyExists, isNotFound } from "../../src/errors.ts";
import {
  type ContainerRecord,
  listRecords,
  readRecord,
  reserveContainer,
  validateContainerId,
  writeRecord,
} from "../../src/run/containers.ts";
import { removeTree } from "../../src/run/mounts.ts";
import {
  cgroupsPathFor,
  defaultRuntimeRoot,
  pruneCgroupParents,
  signalName,
  startForeground,
  Undo,
} from "../../src/run/run.ts";
import { findRuntime, Runc } from "../../src/run/runc.ts";

const tmp = mkdtempSync(join(tmpdir(), "dist-run-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("container ids", () => {
  for (const ok of ["a", "web", "my-app_1.2", "0123456789abcdef", "x".repeat(76)]) {
    test(`accepts ${ok.slice(0, 20)}`, () => assert.equal(validateContainerId(ok), ok));
  }
  for (const bad of ["", "-a", "a-", "a..b", "../x", "a/b", "a b", "a:b", "x".repeat(77)]) {
    test(`refuses ${JSON.stringify(bad.slice(0, 20))}`, () =>
      assert.throws(() => validateContainerId(bad), /invalid container id/));
  }
});

function record(root: string, id: string): ContainerRecord {
  return {
    id,
    namespace: "default",
    image: "docker.io/library/busybox:latest",
    manifest: "sha256:00",
    snapshotter: "native",
    snapshotKey: id,
    bundle: join(root, "containers", id, "bundle"),
    rootfs: "/nonexistent",
    mounted: false,
    runtime: "/bin/false",
    runtimeRoot: join(root, "runc"),
    args: ["sh"],
    detached: false,
    autoRemove: false,
    createdAt: new Date(0).toISOString(),
  };
}

describe("container records", () => {
  const root = join(tmp, "root");
  test("an id is claimed once", () => {
    reserveContainer(root, "c1");
    assert.throws(
      () => reserveContainer(root, "c1"),
      (err) => isAlreadyExists(err) && /container id "c1" is already in use/.test(String(err)),
    );
  });
  test("records round-trip; directories without one are not listed", () => {
    writeRecord(root, record(root, "c1"));
    reserveContainer(root, "c2"); // mid-creation: no record yet
    assert.deepEqual(readRecord(root, "c1"), record(root, "c1"));
    assert.deepEqual(
      listRecords(root).map((r) => r.id),
      ["c1"],
    );
    assert.throws(
      () => readRecord(root, "c3"),
      (err) => isNotFound(err),
    );
    assert.deepEqual(listRecords(join(tmp, "nothing-here")), []);
  });
  test("runc's state root: tmpfs for the system root only", () => {
    assert.equal(defaultRuntimeRoot("/tmp/x"), "/tmp/x/runc");
  });
  test("cgroups: one parent per root, so equal ids in two roots never share one", () => {
    assert.equal(cgroupsPathFor("/var/lib/dist", "default", "web"), "/dist/default/web");
    const a = cgroupsPathFor("/tmp/a", "default", "web");
    assert.match(a, /^\/dist-[0-9a-f]{8}\/default\/web$/);
    assert.notEqual(a, cgroupsPathFor("/tmp/b", "default", "web"));
  });
});

describe("finding the runtime", () => {
  const bin = join(tmp, "bin");
  mkdirSync(bin);
  writeFileSync(join(bin, "runc"), "#!/bin/sh\n", { mode: 0o755 });
  writeFileSync(join(bin, "not-exec"), "", { mode: 0o644 });
  test("on PATH", () => assert.equal(findRuntime(undefined, bin), join(bin, "runc")));
  test("by path", () => assert.equal(findRuntime(join(bin, "runc"), ""), join(bin, "runc")));
  test("missing: the error names the Debian package", () => {
    assert.throws(
      () => findRuntime("no-such-runtime", bin),
      (err) => isNotFound(err) && /Debian package "runc"/.test(String(err)) && /--runtime/.test(String(err)),
    );
    assert.throws(() => findRuntime(join(bin, "not-exec"), ""), /not an executable file/);
    assert.throws(() => findRuntime(join(bin, "absent"), ""), /Debian package "runc"/);
  });
});

describe("pruneCgroupParents", () => {
  test("removes empty parents in every hierarchy, keeps busy ones", () => {
    const base = join(tmp, "cgroup");
    mkdirSync(join(base, "cpu", "dist-x", "default"), { recursive: true });
    mkdirSync(join(base, "memory", "dist-x", "default", "other"), { recursive: true });
    mkdirSync(join(base, "dist-x", "default"), { recursive: true }); // the cgroup v2 layout: base is a hierarchy
    pruneCgroupParents("/dist-x/default/c1", base);
    assert.deepEqual(readdirSync(join(base, "cpu")), []);
    assert.deepEqual(readdirSync(join(base, "memory", "dist-x", "default")), ["other"]);
    assert.deepEqual(readdirSync(base).sort(), ["cpu", "memory"]);
  });
});

describe("signal names", () => {
  for (const [given, want] of [
    ["SIGTERM", "SIGTERM"],
    ["term", "SIGTERM"],
    ["KILL", "SIGKILL"],
    ["9", "9"],
  ]) {
    test(`${given} → ${want}`, () => assert.equal(signalName(given), want));
  }
  for (const bad of ["SIGNOPE", "0", "65", "-1", ""]) {
    test(`refuses ${JSON.stringify(bad)}`, () =>
      assert.throws(() => signalName(bad), { code: "InvalidArgument", message: /invalid signal/ }));
  }
});

describe("Undo", () => {
  test("runs last first and keeps going after a failure", async () => {
    const order: number[] = [];
    const warnings: string[] = [];
    const u = new Undo({ debug() {}, warn: (m) => warnings.push(m) });
    u.push("one", () => order.push(1));
    u.push("two", () => {
      throw new Error("boom");
    });
    u.push("three", async () => order.push(3));
    await u.run();
    assert.deepEqual(order, [3, 1]);
    assert.deepEqual(warnings, ["cleanup: two: boom"]);
  });
});

describe("removeTree", () => {
  test("refuses a tree with a mount inside", async () => {
    await assert.rejects(removeTree("/proc/.."), /is still mounted/);
  });
});

/** A stand-in for runc: logs its arguments, and `run` executes $FAKE_RUN with runc's --log at hand. */
const FAKE = `#!/bin/sh
echo "$*" >> "$FAKE_ARGS"
log=/dev/null
while [ $# -gt 0 ]; do
  case "$1" in
    --log) log=$2; shift 2;;
    --root|--log-format|--bundle) shift 2;;
    run) export LOG="$log"; exec sh -c "$FAKE_RUN";;
    state) echo 'time="x" level=error msg="container does not exist"' >&2; exit 1;;
    kill) exit 0;;
    *) shift;;
  esac
done
`;

describe("the foreground driver (fake runtime)", () => {
  const root = join(tmp, "fg");
  const fake = join(tmp, "fake-runc");
  writeFileSync(fake, FAKE);
  chmodSync(fake, 0o755);
  const argsLog = join(tmp, "fake-args");
  process.env.FAKE_ARGS = argsLog;

  let n = 0;
  async function fg(script: string) {
    const id = `fg${++n}`;
    reserveContainer(root, id);
    const rec = { ...record(root, id), runtime: fake };
    mkdirSync(rec.bundle);
    writeFileSync(join(rec.bundle, "config.json"), JSON.stringify({ process: { terminal: false } }));
    process.env.FAKE_RUN = script;
    return startForeground(root, rec);
  }

  test("the exit status passes through", async () => {
    assert.deepEqual(await fg("exit 3"), { exitCode: 3 });
    assert.deepEqual(await fg("exit 0"), { exitCode: 0 });
  });
  test("killed by a signal: 128+n", async () => {
    assert.deepEqual(await fg("kill -TERM $$"), { exitCode: 143 });
  });
  test("runc's own failure is told apart from the container's exit", async () => {
    const r = await fg(
      `echo '{"level":"error","msg":"runc run failed: unable to start container process: exec: \\\\"/x\\\\": stat /x: no such file or directory"}' > "$LOG"; exit 1`,
    );
    assert.equal(r.exitCode, 127);
    assert.match(r.startError ?? "", /unable to start container process/);
  });
  test("runc gets our state root, its log and the bundle", () => {
    const line = readFileSync(argsLog, "utf8").trim().split("\n").pop() ?? "";
    assert.match(
      line,
      new RegExp(
        `^--root ${root}/runc --log ${root}/containers/fg\\d+/runc.log --log-format json run --bundle ${root}/containers/fg\\d+/bundle fg\\d+$`,
      ),
    );
  });
  test("state of an unknown container is undefined; kill passes the signal", async () => {
    const runc = new Runc(fake, join(root, "runc"));
    assert.equal(await runc.state("nope"), undefined);
    await runc.kill("c", "SIGTERM", { all: true });
    assert.match(readFileSync(argsLog, "utf8"), /kill --all c SIGTERM\n$/);
  });
});
