/**
 * Times in nanoseconds, as containerd keeps them (Go's time.Time, protobuf's
 * Timestamp). A PreciseDate is a Date (every Date method and comparison works,
 * at millisecond precision) that also carries the exact nanoseconds since the
 * epoch (`epochNs`), which the store, SQLite and the gRPC Timestamps keep end to
 * end. Its ISO form has nine fractional digits (Go's RFC3339Nano, zero-padded).
 *
 * @example
 * ```ts
 * const t = preciseNow();
 * t.epochNs;        // 1767225600123456789n
 * t.toISOString();  // "2026-01-01T00:00:00.123456789Z"
 * t.getTime();      // 1767225600123
 * ```
 */
import { realtimeNs } from "./sys/index.ts";

const NS_PER_MS = 1_000_000n;

/** A Date that keeps nanoseconds: `epochNs` is exact, `toISOString()` has nine fractional digits. */
export class PreciseDate extends Date {
  /** Nanoseconds since the epoch. */
  readonly epochNs: bigint;

  constructor(epochNs: bigint) {
    // floor division, also before 1970
    const ms = epochNs >= 0n ? epochNs / NS_PER_MS : -((-epochNs + NS_PER_MS - 1n) / NS_PER_MS);
    super(Number(ms));
    this.epochNs = epochNs;
  }

  /** The nanoseconds of the second (0-999999999). */
  get nanos(): number {
    const r = this.epochNs % 1_000_000_000n;
    return Number(r < 0n ? r + 1_000_000_000n : r);
  }

  override toISOString(): string {
    const iso = super.toISOString();
    return `${iso.slice(0, 19)}.${String(this.nanos).padStart(9, "0")}Z`;
  }

  override toJSON(): string {
    return this.toISOString();
  }
}

/** The wall clock (CLOCK_REALTIME) to the nanosecond. */
export function preciseNow(): PreciseDate {
  return new PreciseDate(nowNs());
}

let clock: (() => bigint) | undefined;

/** The wall clock in nanoseconds since the epoch (microseconds where libc cannot be reached). */
export function nowNs(): bigint {
  if (!clock) {
    try {
      realtimeNs();
      clock = realtimeNs;
    } catch {
      clock = () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n;
    }
  }
  return clock();
}

/** A Date's nanoseconds since the epoch: exact for a PreciseDate, whole milliseconds otherwise. */
export function epochNsOf(d: Date): bigint {
  return d instanceof PreciseDate ? d.epochNs : BigInt(d.getTime()) * NS_PER_MS;
}

/** A Date as a PreciseDate (the same instant; exact when it already is one). */
export function precise(d: Date): PreciseDate {
  return d instanceof PreciseDate ? d : new PreciseDate(epochNsOf(d));
}

/** Parses an RFC 3339 time with up to nine fractional digits; undefined when it is not one. */
export function parsePreciseDate(s: string): PreciseDate | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(s.trim());
  if (!m) return undefined;
  const seconds = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(seconds)) return undefined;
  const fraction = BigInt((m[2] ?? "").padEnd(9, "0") || "0");
  return new PreciseDate(BigInt(seconds) * NS_PER_MS + fraction);
}
