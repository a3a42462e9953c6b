import assert from "node:assert/strict";
import { test } from "node:test";
import { epochNsOf, nowNs, PreciseDate, parsePreciseDate, precise, preciseNow } from "../src/time.ts";

test("a PreciseDate is a Date that keeps its nanoseconds", () => {
  const t = new PreciseDate(1_767_225_600_123_456_789n);
  assert.ok(t instanceof Date);
  assert.equal(t.getTime(), 1_767_225_600_123);
  assert.equal(t.nanos, 123_456_789);
  assert.equal(t.toISOString(), "2026-01-01T00:00:00.123456789Z");
  assert.equal(JSON.stringify({ t }), '{"t":"2026-01-01T00:00:00.123456789Z"}');
  assert.equal(epochNsOf(t), 1_767_225_600_123_456_789n);
  assert.equal(epochNsOf(new Date(1_767_225_600_123)), 1_767_225_600_123_000_000n);
  assert.equal(precise(t), t);
  assert.equal(precise(new Date(5)).epochNs, 5_000_000n);
});

test("times before the epoch floor to the millisecond below", () => {
  const t = new PreciseDate(-1n);
  assert.equal(t.getTime(), -1);
  assert.equal(t.nanos, 999_999_999);
  assert.equal(t.toISOString(), "1969-12-31T23:59:59.999999999Z");
});

test("RFC 3339 with nine, three or no fractional digits parses; anything else does not", () => {
  assert.equal(parsePreciseDate("2026-01-01T00:00:00.123456789Z")?.epochNs, 1_767_225_600_123_456_789n);
  assert.equal(parsePreciseDate("2026-01-01T00:00:00.5Z")?.epochNs, 1_767_225_600_500_000_000n);
  assert.equal(parsePreciseDate("2026-01-01T01:00:00+01:00")?.epochNs, 1_767_225_600_000_000_000n);
  assert.equal(parsePreciseDate(new PreciseDate(42n).toISOString())?.epochNs, 42n);
  for (const bad of ["", "yesterday", "2026-01-01", "2026-01-01T00:00:00.1234567890Z"]) {
    assert.equal(parsePreciseDate(bad), undefined, bad);
  }
});

test("the clock reads the wall clock below the millisecond", () => {
  const before = BigInt(Date.now()) * 1_000_000n;
  const a = nowNs();
  const b = preciseNow().epochNs;
  const after = BigInt(Date.now() + 1) * 1_000_000n;
  assert.ok(before <= a && a <= b && b <= after, `${before} ${a} ${b} ${after}`);
});
