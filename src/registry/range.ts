/**
 * The `Range` header of a blob GET (RFC 9110): one range of bytes, as every
 * registry client sends when it resumes. Several ranges, other units and
 * ranges that start past the end are refused with 416 and the blob's size
 * (`Content-Range: bytes * /size`), so a client learns what it can ask for.
 */
import { RegistryError } from "./errors.ts";

export interface ByteRange {
  /** First byte. */
  start: number;
  /** Last byte, inclusive. */
  end: number;
}

function invalid(why: string, size: number): RegistryError {
  return new RegistryError(416, "RANGE_INVALID", `${why} (the blob has ${size} bytes)`, {
    headers: { "content-range": `bytes */${size}` },
  });
}

/** The range asked for, or undefined for the whole blob. An end past the blob's end is clipped to it. */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (header === undefined) return undefined;
  const h = header.trim();
  const m = /^bytes=(.*)$/i.exec(h);
  if (!m) throw invalid(`unsupported range "${h.slice(0, 100)}": only bytes ranges are served`, size);
  if (m[1].includes(",")) throw invalid("multiple ranges are not served: ask for one range", size);
  const r = /^\s*(\d*)\s*-\s*(\d*)\s*$/.exec(m[1]);
  if (!r || (r[1] === "" && r[2] === "")) throw invalid(`malformed range "${h.slice(0, 100)}"`, size);
  const first = r[1] === "" ? undefined : Number(r[1]);
  const last = r[2] === "" ? undefined : Number(r[2]);
  if ((first !== undefined && !Number.isSafeInteger(first)) || (last !== undefined && !Number.isSafeInteger(last))) {
    throw invalid(`range "${h.slice(0, 100)}" out of bounds`, size);
  }
  if (first === undefined) {
    // a suffix: the last N bytes
    const n = last as number;
    if (n === 0 || size === 0) throw invalid("empty suffix range", size);
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  if (last !== undefined && last < first) throw invalid(`range "${h.slice(0, 100)}" ends before it starts`, size);
  if (first >= size) throw invalid(`range "${h.slice(0, 100)}" starts past the end`, size);
  return { start: first, end: Math.min(last ?? size - 1, size - 1) };
}
