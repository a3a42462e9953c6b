import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { backoffDelay, isRetryableStatus, parseRetryAfter, sleep } from "../../src/remotes/docker/retry.ts";

describe("retry decisions", () => {
  it("retries only transient statuses", () => {
    for (const s of [408, 429, 500, 502, 503, 504]) assert.equal(isRetryableStatus(s), true, String(s));
    for (const s of [200, 201, 400, 401, 403, 404, 405, 416, 501]) assert.equal(isRetryableStatus(s), false, String(s));
  });
  it("backs off exponentially with jitter inside [exp/2, exp], capped", () => {
    const lo = () => 0;
    const hi = () => 0.999999;
    assert.equal(backoffDelay(0, { baseMs: 100, random: lo }), 50);
    assert.equal(backoffDelay(0, { baseMs: 100, random: hi }), 100);
    assert.equal(backoffDelay(3, { baseMs: 100, random: lo }), 400);
    assert.equal(backoffDelay(3, { baseMs: 100, random: hi }), 800);
    assert.equal(backoffDelay(20, { baseMs: 100, maxMs: 5000, random: hi }), 5000);
    assert.equal(backoffDelay(1000, { baseMs: 100, maxMs: 5000, random: lo }), 2500);
    for (let i = 0; i < 50; i++) {
      const d = backoffDelay(2);
      assert.ok(d >= 500 && d <= 1000, String(d));
    }
  });
  it("reads Retry-After as seconds or an HTTP date, capped and never negative", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    assert.equal(parseRetryAfter("3", now), 3000);
    assert.equal(parseRetryAfter(["7"], now), 7000);
    assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:00:05 GMT", now), 5000);
    assert.equal(parseRetryAfter("Wed, 31 Dec 2025 23:00:00 GMT", now), 0);
    assert.equal(parseRetryAfter("100000", now), 60_000);
    assert.equal(parseRetryAfter("100", now, 10_000), 10_000);
    assert.equal(parseRetryAfter(undefined, now), undefined);
    assert.equal(parseRetryAfter("soon", now), undefined);
    assert.equal(parseRetryAfter("", now), undefined);
  });
  it("sleep rejects with the abort reason", async () => {
    const ctrl = new AbortController();
    const p = sleep(10_000, ctrl.signal);
    ctrl.abort(new Error("stop"));
    await assert.rejects(p, /stop/);
    await sleep(1);
  });
});
