import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { test } from "node:test";
import * as zlib from "node:zlib";
import type { Compression } from "../../src/archive/compression.ts";
import { InflateJob } from "../../src/archive/inflater.ts";

/** Feeds `input` in uneven pieces and collects what comes out. */
async function run(
  c: Compression,
  input: Buffer,
  what?: string,
): Promise<{ out: Buffer; diffID: string; size: number }> {
  const job = new InflateJob(c, what);
  const feed = (async () => {
    for (let o = 0; o < input.length; o += 300_001) await job.write(input.subarray(o, o + 300_001));
    job.end();
  })();
  feed.catch((e) => job.abort(e));
  const parts: Buffer[] = [];
  for await (const chunk of job.chunks()) parts.push(Buffer.from(chunk)); // views are reused: copy
  await feed;
  return { out: Buffer.concat(parts), ...job.result() };
}

const data = Buffer.concat([randomBytes(3 << 20), Buffer.alloc(5 << 20, 7)]);
const sha = `sha256:${createHash("sha256").update(data).digest("hex")}`;

test("gzip, zstd and plain bytes come out whole with their sha256, two jobs at once", async () => {
  const [g, z, n] = await Promise.all([
    run("gzip", zlib.gzipSync(data)),
    run("zstd", zlib.zstdCompressSync(data)),
    run("none", data),
  ]);
  for (const r of [g, z, n]) {
    assert.equal(r.size, data.length);
    assert.equal(r.diffID, sha);
    assert.ok(r.out.equals(data));
  }
});

test("a truncated gzip stream is a DataLoss error naming the source", async () => {
  const gz = zlib.gzipSync(data);
  await assert.rejects(run("gzip", gz.subarray(0, gz.length >> 1), "layer X"), (e: Error) => {
    assert.equal((e as { code?: string }).code, "DataLoss");
    assert.match(e.message, /layer X: gzip stream is truncated/);
    return true;
  });
});

test("an aborted job ends its reader with the reason, and a new job still works", async () => {
  const job = new InflateJob("gzip");
  await job.write(zlib.gzipSync(data).subarray(0, 1 << 20));
  const it = job.chunks();
  await it.next();
  job.abort(new Error("stop"));
  await assert.rejects(it.next(), /stop/);
  const r = await run("none", data.subarray(0, 1000));
  assert.equal(r.size, 1000);
});
