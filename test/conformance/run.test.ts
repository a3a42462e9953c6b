/** Reading the suites' test2json events into per-case results. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseEvents } from "./run.ts";

const events = (list: object[]) => list.map((e) => JSON.stringify(e)).join("\n");

test("each finished test gets its outcome and its own lines, without the directory dump", () => {
  const r = parseEvents(
    events([
      { Action: "run", Test: "TestContent" },
      { Action: "output", Test: "TestContent", Output: "=== RUN   TestContent\n" },
      { Action: "run", Test: "TestContent/Writer" },
      { Action: "output", Test: "TestContent/Writer", Output: "=== RUN   TestContent/Writer\n" },
      { Action: "output", Test: "TestContent/Writer", Output: "    testsuite.go:225: Check info failed\n" },
      { Action: "output", Test: "TestContent/Writer", Output: "    helpers.go:66: drwx------       4096 /tmp/x\n" },
      { Action: "output", Test: "TestContent/Writer", Output: "--- FAIL: TestContent/Writer (0.01s)\n" },
      { Action: "fail", Test: "TestContent/Writer" },
      { Action: "run", Test: "TestSnapshotter/native/Rename" },
      {
        Action: "output",
        Test: "TestSnapshotter/native/Rename",
        Output: "    issues.go:118: rename test still fails\n",
      },
      { Action: "skip", Test: "TestSnapshotter/native/Rename" },
      { Action: "run", Test: "TestSnapshotter/native/Basic" },
      { Action: "pause", Test: "TestSnapshotter/native/Basic" },
      { Action: "cont", Test: "TestSnapshotter/native/Basic" },
      { Action: "pass", Test: "TestSnapshotter/native/Basic" },
      { Action: "run", Test: "TestSnapshotter/native/Walk" },
      { Action: "output", Output: "panic: test timed out after 4m0s\n" },
      { Action: "fail" },
    ]),
  );
  assert.deepEqual(Object.fromEntries(r.cases), {
    "TestContent/Writer": { outcome: "fail", output: "    testsuite.go:225: Check info failed" },
    "TestSnapshotter/native/Rename": { outcome: "skip", output: "    issues.go:118: rename test still fails" },
    "TestSnapshotter/native/Basic": { outcome: "pass", output: "" },
  });
  assert.equal(r.tail, "panic: test timed out after 4m0s");
});

test("lines that are not events are ignored", () => {
  const r = parseEvents(`not json\n${events([{ Action: "pass", Test: "TestContent/SmallBlob" }])}\n`);
  assert.deepEqual([...r.cases.keys()], ["TestContent/SmallBlob"]);
});
