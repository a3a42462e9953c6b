import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import * as zlib from "node:zlib";
import type { Compression } from "../../src/archive/compression.ts";
import { gzipBackend, InflateJob } from "../../src/archive/inflater.ts";
import { fullHeaderGzip } from "./helpers.ts";

/** Feeds `input` in uneven pieces and collects what comes out. */
async function run(
  c: Compression,
  input: Buffer,
  what?: string,
  piece = 300_001,
): Promise<{ out: Buffer; diffID: string; size: number }> {
  const job = new InflateJob(c, what);
  const feed = (async () => {
    for (let o = 0; o < input.length; o += piece) await job.write(input.subarray(o, o + piece));
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

test("gzip: members one after another, full headers, bytes split anywhere, zero padding ignored", async () => {
  const a = data.subarray(0, 1 << 20);
  const b = data.subarray(1 << 20, 3 << 20);
  const input = Buffer.concat([fullHeaderGzip(a), zlib.gzipSync(b), Buffer.alloc(1000)]);
  const want = Buffer.concat([a, b]);
  for (const piece of [7, 65_537, 1 << 22]) {
    const r = await run("gzip", input, "layer P", piece);
    assert.equal(r.size, want.length, `pieces of ${piece}`);
    assert.ok(r.out.equals(want), `pieces of ${piece}`);
  }
});

test("gzip: a wrong CRC or length, a corrupt block or junk after the end is a DataLoss error naming the source", async () => {
  const crc = zlib.gzipSync(data.subarray(0, 1 << 20));
  crc[crc.length - 8] ^= 1;
  const length = zlib.gzipSync(data.subarray(0, 1 << 20));
  length[length.length - 1] ^= 1;
  const block = zlib.gzipSync(data);
  block.fill(0xff, 5000, 5100);
  const junk = Buffer.concat([zlib.gzipSync(data.subarray(0, 1000)), Buffer.from("junk after the end")]);
  for (const bad of [crc, length, block, junk]) {
    await assert.rejects(run("gzip", bad, "layer C"), (e: Error) => {
      assert.equal((e as { code?: string }).code, "DataLoss");
      assert.match(e.message, /^layer C: corrupt gzip data: /);
      return true;
    });
  }
});

test("gzip goes through ISA-L where libisal2 is installed (scripts/test-deps.sh installs it)", async () => {
  assert.equal(await gzipBackend(), process.env.DIST_GZIP ?? "isa-l");
});

test("every test here also passes with DIST_GZIP=zlib", { skip: process.env.DIST_GZIP !== undefined }, () => {
  const r = spawnSync(process.execPath, ["--test", fileURLToPath(import.meta.url)], {
    // without the runner's own variable: the child reports as a plain run
    env: { ...process.env, DIST_GZIP: "zlib", NODE_TEST_CONTEXT: undefined },
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /ℹ pass [1-9]/);
  assert.match(r.stdout, /ℹ fail 0/);
});
