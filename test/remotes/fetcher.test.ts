// The registry fetcher's blob stream against a scripted server: a body cut mid-way
// is resumed with Range from where it stopped, whether the server honours Range or
// not; a stalled body is retried and then fails after the stall timeout.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { Descriptor } from "../../src/descriptor.ts";
import { digestOf } from "../../src/digest.ts";
import { isErrorCode } from "../../src/errors.ts";
import { createResolver, type RegistryOptions } from "../../src/remotes/docker/index.ts";
import { type Fake, fakeServer } from "./fake-registry.ts";

const blob = randomBytes(300_000);
const desc: Descriptor = {
  mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
  digest: digestOf(blob),
  size: blob.length,
};

let reg: Fake;
let tmp: string;
before(async () => {
  reg = await fakeServer();
  tmp = mkdtempSync(join(tmpdir(), "dist-fetcher-"));
});
after(async () => {
  await reg.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function fetcher(extra: RegistryOptions = {}) {
  const r = createResolver({
    plainHttp: true,
    retries: 2,
    backoffBaseMs: 1,
    dockerConfigPath: join(tmp, "none.json"),
    ...extra,
  });
  return { r, f: await r.fetcher(`${reg.addr}/app:v1`) };
}

async function readAll(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** The start of a `Range: bytes=N-` header; undefined without one. */
function rangeStart(range: string | string[] | undefined): number | undefined {
  const m = /^bytes=(\d+)-$/.exec(String(range ?? ""));
  return m ? Number(m[1]) : undefined;
}

/** Sends the blob from `from` as a 206 with its Content-Range. */
function partial(res: ServerResponse, from: number, contentRangeFrom = from): void {
  res.writeHead(206, {
    "content-length": String(blob.length - from),
    "content-range": `bytes ${contentRangeFrom}-${blob.length - 1}/${blob.length}`,
  });
  res.end(blob.subarray(from));
}

/** A 200 announcing the whole blob that sends `upTo` bytes from `from`, then drops the connection. */
function cutAt(res: ServerResponse, from: number, upTo: number, status = from > 0 ? 206 : 200): void {
  const headers: Record<string, string> = { "content-length": String(blob.length - from) };
  if (status === 206) headers["content-range"] = `bytes ${from}-${blob.length - 1}/${blob.length}`;
  res.writeHead(status, headers);
  res.write(blob.subarray(from, upTo), () => setTimeout(() => res.socket?.destroy(), 20));
}

describe("fetcher: a mirror that dies mid-blob", () => {
  it("resumes from the next host with a Range request", async () => {
    const mirror = await fakeServer();
    const hosts = join(tmp, "hosts");
    mkdirSync(join(hosts, reg.addr), { recursive: true });
    writeFileSync(
      join(hosts, reg.addr, "hosts.toml"),
      `server = "http://${reg.addr}"\n[host."http://${mirror.addr}"]\n  capabilities = ["pull", "resolve"]\n`,
    );
    mirror.handle((_req, res) => {
      cutAt(res, 0, 100_000);
      // and it is gone: its port refuses the resume
      setTimeout(() => void mirror.close(), 10);
    });
    reg.handle((req, res) => partial(res, rangeStart(req.headers.range) ?? 0));
    const { r, f } = await fetcher({ hostsDir: hosts });
    try {
      assert.deepEqual(await readAll(await f.fetch(desc)), blob);
      const from = rangeStart(reg.requests.at(-1)?.headers.range);
      assert.ok(from !== undefined && from > 0, `the server was asked from byte ${from}`);
    } finally {
      await r.close();
      rmSync(hosts, { recursive: true, force: true });
    }
  });
});

describe("fetcher: Range resume", () => {
  it("resumes a body cut mid-way with a Range request from the byte it reached", async () => {
    reg.handle((req, res) => {
      const from = rangeStart(req.headers.range);
      if (from === undefined) cutAt(res, 0, 100_000);
      else partial(res, from);
    });
    const warnings: string[] = [];
    const { r, f } = await fetcher({ onWarning: (m) => warnings.push(m) });
    try {
      // verified whole (the digest covers the bytes before and after the cut)
      assert.deepEqual(await readAll(await f.fetch(desc)), blob);
      assert.equal(reg.requests.length, 2);
      assert.equal(reg.requests[0].headers.range, undefined);
      const from = rangeStart(reg.requests[1].headers.range);
      assert.ok(from !== undefined && from > 0 && from <= 100_000, `resumed from ${from}`);
      assert.ok(
        warnings.some((w) => w.includes(`at byte ${from}; resuming`)),
        `the warning names the byte: ${warnings.join(" | ")}`,
      );
    } finally {
      await r.close();
    }
  });

  it("resumes a resumed fetch (from an offset) at that offset plus what arrived", async () => {
    reg.handle((req, res) => {
      const from = rangeStart(req.headers.range) ?? 0;
      if (reg.requests.length === 1) cutAt(res, from, from + 50_000);
      else partial(res, from);
    });
    const { r, f } = await fetcher();
    try {
      assert.deepEqual(await readAll(await f.fetch(desc, { offset: 120_000 })), blob.subarray(120_000));
      assert.equal(rangeStart(reg.requests[0].headers.range), 120_000);
      const from = rangeStart(reg.requests[1].headers.range);
      assert.ok(from !== undefined && from > 120_000 && from <= 170_000, `resumed from ${from}`);
    } finally {
      await r.close();
    }
  });

  it("copes with a registry that answers the resume's Range with 200 and the whole blob", async () => {
    reg.handle((_req, res) => {
      if (reg.requests.length === 1) {
        cutAt(res, 0, 100_000);
        return;
      }
      // ignores Range: the whole blob again
      res.writeHead(200, { "content-length": String(blob.length) });
      res.end(blob);
    });
    const { r, f } = await fetcher();
    try {
      assert.deepEqual(await readAll(await f.fetch(desc)), blob);
      assert.equal(reg.requests.length, 2);
      assert.ok((rangeStart(reg.requests[1].headers.range) ?? 0) > 0, "the resume asked for a range");
    } finally {
      await r.close();
    }
  });

  it("refuses a resume answered with another range than asked (DataLoss)", async () => {
    reg.handle((req, res) => {
      const from = rangeStart(req.headers.range);
      if (from === undefined) cutAt(res, 0, 100_000);
      else partial(res, from, 0);
    });
    const { r, f } = await fetcher();
    try {
      await assert.rejects(readAll(await f.fetch(desc)), (err: Error) => {
        assert.ok(isErrorCode(err, "DataLoss"), err.message);
        assert.match(err.message, /asked for bytes \d+- and got Content-Range "bytes 0-299999\/300000"/);
        return true;
      });
    } finally {
      await r.close();
    }
  });

  it("gives up when every attempt is cut, naming the byte reached and the retries", async () => {
    reg.handle((req, res) => {
      const from = rangeStart(req.headers.range) ?? 0;
      cutAt(res, from, from + 30_000);
    });
    const { r, f } = await fetcher({ retries: 2 });
    try {
      await assert.rejects(readAll(await f.fetch(desc)), (err: Error) => {
        assert.ok(isErrorCode(err, "Unavailable"), err.message);
        assert.match(err.message, /connection lost .* at byte \d+ of 300000 after 2 retries from 127\.0\.0\.1:\d+/);
        return true;
      });
      assert.equal(reg.requests.length, 3);
    } finally {
      await r.close();
    }
  });
});

describe("fetcher: stalls", () => {
  it("a stalled body is resumed from where it stopped once the stall timeout passes", async () => {
    reg.handle((req, res) => {
      const from = rangeStart(req.headers.range);
      if (from !== undefined) {
        partial(res, from);
        return;
      }
      res.writeHead(200, { "content-length": String(blob.length) });
      res.write(blob.subarray(0, 1000));
      // then nothing
    });
    const warnings: string[] = [];
    const { r, f } = await fetcher({ stallTimeoutMs: 150, onWarning: (m) => warnings.push(m) });
    try {
      assert.deepEqual(await readAll(await f.fetch(desc)), blob);
      assert.equal(reg.requests[1].headers.range, "bytes=1000-");
      assert.ok(
        warnings.some((w) => /no data for 0\.15s \(stall timeout\) at byte 1000; resuming/.test(w)),
        warnings.join(" | "),
      );
    } finally {
      await r.close();
    }
  });

  it("a body that never starts fails after the stall timeout with a clear error", async () => {
    reg.handle((_req, res) => {
      res.writeHead(200, { "content-length": String(blob.length) });
      res.flushHeaders();
      // headers, then nothing
    });
    const { r, f } = await fetcher({ stallTimeoutMs: 100, retries: 1 });
    try {
      await assert.rejects(readAll(await f.fetch(desc)), (err: Error) => {
        assert.ok(isErrorCode(err, "Unavailable"), err.message);
        assert.match(err.message, /no data for 0.1s \(stall timeout\) at byte 0 of 300000 after 1 retries/);
        assert.ok(err.message.includes(desc.digest));
        return true;
      });
      assert.equal(reg.requests[1].headers.range, undefined, "nothing arrived: the retry starts over");
    } finally {
      await r.close();
    }
  });

  it("a consumer slower than the stall timeout is not a stall", async () => {
    reg.handle((_req, res) => {
      res.writeHead(200, { "content-length": String(blob.length) });
      res.end(blob);
    });
    const { r, f } = await fetcher({ stallTimeoutMs: 100, retries: 0 });
    try {
      const chunks: Buffer[] = [];
      let paused = false;
      for await (const c of await f.fetch(desc)) {
        chunks.push(c as Buffer);
        if (!paused) {
          paused = true;
          await sleep(400);
        }
      }
      assert.deepEqual(Buffer.concat(chunks), blob);
      assert.equal(reg.requests.length, 1);
    } finally {
      await r.close();
    }
  });
});
