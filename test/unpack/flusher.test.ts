import assert from "node:assert/strict";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { FLUSH_EVERY, Flusher } from "../../src/unpack/flusher.ts";

const tmp = fs.mkdtempSync(join(tmpdir(), "flusher-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The descriptors this process has open on `dir` (from /proc/self/fd). */
function fdsOn(dir: string): number {
  let n = 0;
  for (const fd of fs.readdirSync("/proc/self/fd")) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`) === dir) n++;
    } catch {}
  }
  return n;
}

test("progress() returns at once whatever the offset, flush() settles, close() releases the descriptor once", async () => {
  const dir = fs.realpathSync(tmp);
  const f = new Flusher(dir);
  assert.equal(fdsOn(dir), 1);
  fs.writeFileSync(join(dir, "a"), Buffer.alloc(1 << 20, 1));
  f.progress(FLUSH_EVERY - 1);
  f.progress(FLUSH_EVERY);
  // one background flush at a time: these return at once
  f.progress(2 * FLUSH_EVERY);
  f.progress(3 * FLUSH_EVERY);
  await f.flush();
  await f.close();
  await f.close();
  assert.equal(fdsOn(dir), 0);
  // after close, progress starts nothing (the descriptor is gone)
  f.progress(10 * FLUSH_EVERY);
});

test("a flusher on a missing directory throws at once", () => {
  assert.throws(() => new Flusher(join(tmp, "missing")), /ENOENT/);
});
