import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { OffThreadDigester } from "../../src/archive/hasher.ts";

describe("OffThreadDigester", () => {
  test("interleaved digests of many chunks each match node:crypto", async () => {
    const inputs = [randomBytes(5 << 20), randomBytes(12345), Buffer.alloc(0), randomBytes((3 << 20) + 7)];
    const ds = inputs.map(() => new OffThreadDigester());
    // feed them round-robin, in odd-sized chunks, reusing one scratch buffer as callers may
    const scratch = Buffer.alloc(700_001);
    const offs = inputs.map(() => 0);
    for (let more = true; more; ) {
      more = false;
      for (let i = 0; i < inputs.length; i++) {
        const n = Math.min(scratch.length, inputs[i].length - offs[i]);
        if (n <= 0) continue;
        more = true;
        inputs[i].copy(scratch, 0, offs[i], offs[i] + n);
        await ds[i].update(scratch.subarray(0, n));
        scratch.fill(0);
        offs[i] += n;
      }
    }
    const got = await Promise.all(ds.map((d) => d.digest()));
    assert.deepEqual(
      got,
      inputs.map((b) => `sha256:${createHash("sha256").update(b).digest("hex")}`),
    );
    await assert.rejects(ds[0].digest(), /called twice/);
  });

  test("sha512 and a dropped digest", async () => {
    const dropped = new OffThreadDigester();
    await dropped.update(Buffer.from("abandoned"));
    dropped.dispose();
    const d = new OffThreadDigester("sha512");
    await d.update(Buffer.from("abc"));
    assert.equal(await d.digest(), `sha512:${createHash("sha512").update("abc").digest("hex")}`);
  });
});
