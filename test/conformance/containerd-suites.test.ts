/**
 * containerd 1.6's own test suites (content/testsuite, snapshots/testsuite) through
 * containerd's own proxy clients, first against a private real containerd (the control:
 * a failure there means the harness is broken, not the daemon), then against `dist
 * daemon` with each of its snapshotters. One node test per suite case, each expecting
 * what the control gives: every case passes, except Rename, which containerd's suite
 * skips itself ("still fails on some kernels with overlay").
 *
 * The Go program is in suites/ and built once by build.ts; the suites mount snapshots,
 * so this needs root, as containerd does.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { startContainerd } from "../integration/fixtures/containerd.ts";
import { startDaemonProcess } from "../services/fixture.ts";
import { buildSuites, type SuitesBinaries } from "./build.ts";
import { type Outcome, runSuites, type SuitesRun } from "./run.ts";

/** ContentSuite, then ContentCrossNSSharedSuite (containerd's default policy is "shared"). */
const CONTENT_CASES = [
  "Writer",
  "UpdateStatus",
  "CommitExists",
  "Resume",
  "ResumeTruncate",
  "ResumeDiscard",
  "ResumeCopy",
  "ResumeCopySeeker",
  "ResumeCopyReaderAt",
  "SmallBlob",
  "Labels",
  "CommitErrorState",
  "CrossNamespaceAppend",
  "CrossNamespaceShare",
];

/** SnapshotterSuite, with its own spelling of the case names. */
const SNAPSHOT_CASES = [
  "Basic",
  "StatActive",
  "StatComitted",
  "TransitivityTest",
  "PreareViewFailingtest",
  "Update",
  "Remove",
  "Walk",
  "LayerFileupdate",
  "RemoveDirectoryInLowerLayer",
  "Chown",
  "DirectoryPermissionOnCommit",
  "RemoveIntermediateSnapshot",
  "DeletedFilesInChildSnapshot",
  "MoveFileFromLowerLayer",
  "Rename",
  "ViewReadonly",
  "StatInWalk",
  "CloseTwice",
  "RootPermission",
  "128LayersMount",
];

const UPSTREAM_SKIPPED = new Set(["Rename"]);

/** containerd's names, which the proxy client sends and dist's daemon answers to. */
const SNAPSHOTTERS = ["overlayfs", "native"];

const expected = new Map<string, Outcome>([
  ...CONTENT_CASES.map((c): [string, Outcome] => [`TestContent/${c}`, "pass"]),
  ...SNAPSHOTTERS.flatMap((s) =>
    SNAPSHOT_CASES.map((c): [string, Outcome] => [
      `TestSnapshotter/${s}/${c}`,
      UPSTREAM_SKIPPED.has(c) ? "skip" : "pass",
    ]),
  ),
]);

let binaries: Promise<SuitesBinaries> | undefined;
const suites = () => {
  binaries ??= buildSuites();
  return binaries;
};

/** The node tests of one target: one per case, and one that no case went missing or came extra. */
function cases(results: () => SuitesRun): void {
  const check = (name: string) => {
    const r = results();
    const got = r.cases.get(name);
    assert.ok(got, `${name} did not finish (exit ${r.code}):\n${r.tail}`);
    const want = expected.get(name);
    assert.equal(got.outcome, want, `${name}: ${got.outcome}, expected ${want}\n${got.output}`);
  };
  describe("content", () => {
    for (const c of CONTENT_CASES) test(c, () => check(`TestContent/${c}`));
  });
  for (const s of SNAPSHOTTERS) {
    describe(`snapshots ${s}`, () => {
      for (const c of SNAPSHOT_CASES) test(c, () => check(`TestSnapshotter/${s}/${c}`));
    });
  }
  test("the suites ran exactly these cases", () => {
    const leaves = [...results().cases.keys()].filter((k) => /^TestContent\/|^TestSnapshotter\/[^/]+\//.test(k));
    assert.deepEqual(leaves.sort(), [...expected.keys()].sort());
  });
}

const needsRoot = { skip: process.getuid?.() !== 0 && "the suites mount snapshots and containerd needs root" };

/** A daemon under test: started in a fresh directory, stopped before the directory goes. */
interface Daemon {
  sock: string;
  stop(): Promise<unknown>;
}

/**
 * The runs of every target start together when the first target's tests begin (the suites
 * mostly wait: mounts, sleeps between lock retries), and each target's tests wait for its own.
 */
const starters: (() => void)[] = [];
const startAll = () => {
  for (const s of starters) s();
};

/** The suites against one daemon, run before its cases are checked; `more` adds tests of its own. */
function against<D extends Daemon>(
  title: string,
  start: (dir: string) => Promise<D>,
  more?: (daemon: () => D | undefined) => void,
): void {
  let dir: string | undefined;
  let daemon: D | undefined;
  let running: Promise<SuitesRun> | undefined;
  starters.push(() => {
    running ??= (async () => {
      const bin = await suites();
      dir = mkdtempSync(join(tmpdir(), "dist-conformance-"));
      daemon = await start(dir);
      return runSuites(bin, { address: daemon.sock, snapshotters: SNAPSHOTTERS, tmpDir: dir });
    })();
    running.catch(() => {}); // awaited by this target's before(); not unhandled meanwhile
  });

  describe(title, needsRoot, () => {
    let results: SuitesRun;

    before(async () => {
      startAll();
      results = await running!;
    });

    after(async () => {
      await running?.catch(() => {});
      await daemon?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    cases(() => results);
    more?.(() => daemon);
  });
}

against("containerd 1.6 (control)", (dir) => startContainerd(dir));

against(
  "dist daemon",
  (dir) => startDaemonProcess(join(dir, "root"), join(dir, "dist.sock")),
  (daemon) => {
    test("the daemon is still up after the suites", () => {
      const d = daemon();
      assert.equal(d?.proc.exitCode, null, `dist daemon exited:\n${d?.logs().split("\n").slice(-10).join("\n")}`);
    });
  },
);
