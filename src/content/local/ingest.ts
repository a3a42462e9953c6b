/**
 * The on-disk state of one ingest, `<content>/ingest/<sha256(ref)>/`:
 * `ref`, `data`, `total`, `expected`, `startedat`, `updatedat` (RFC 3339 times
 * with nanoseconds, as containerd's local store writes them).
 * `ref` is written last, so a directory without it is an ingest whose
 * creation was interrupted; it is treated as corrupt and recreated.
 */

import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Digest, isDigest } from "../../digest.ts";
import { errorMessage } from "../../errors.ts";
import { PreciseDate, parsePreciseDate, preciseNow } from "../../time.ts";
import type { Status } from "../content.ts";

export interface IngestState extends Status {
  dir: string;
}

/** Thrown by readIngest when the state cannot be trusted. */
export class CorruptIngest extends Error {}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** An RFC 3339 time (nanoseconds now, milliseconds in ingests written before). */
function parseTime(s: string | undefined, fallback: PreciseDate): PreciseDate {
  return (s === undefined ? undefined : parsePreciseDate(s)) ?? fallback;
}

/**
 * Reads an ingest directory. ENOENT of the directory propagates (the ingest
 * is gone); anything unreadable or inconsistent is CorruptIngest.
 */
export async function readIngest(dir: string): Promise<IngestState> {
  const dirStat = await stat(dir, { bigint: true });
  const ref = await readText(join(dir, "ref"));
  if (ref === undefined || ref === "") throw new CorruptIngest(`ingest ${dir} has no ref`);
  let data: Awaited<ReturnType<typeof statNs>>;
  try {
    data = await statNs(join(dir, "data"));
  } catch (err) {
    throw new CorruptIngest(`ingest ${dir}: ${errorMessage(err)}`, { cause: err });
  }
  const totalText = (await readText(join(dir, "total")))?.trim();
  let total = 0;
  if (totalText !== undefined && totalText !== "") {
    if (!/^\d+$/.test(totalText)) throw new CorruptIngest(`ingest ${dir}: bad total "${totalText}"`);
    total = Number(totalText);
  }
  const expectedText = (await readText(join(dir, "expected")))?.trim();
  let expected: Digest | undefined;
  if (expectedText !== undefined && expectedText !== "") {
    if (!isDigest(expectedText)) throw new CorruptIngest(`ingest ${dir}: bad expected digest`);
    expected = expectedText as Digest;
  }
  const startedAt = parseTime(await readText(join(dir, "startedat")), new PreciseDate(dirStat.mtimeNs));
  const updated = parseTime(await readText(join(dir, "updatedat")), new PreciseDate(data.mtimeNs));
  // updatedat is written when a writer closes; the data's mtime is later while one writes
  const updatedAt = data.mtimeNs > updated.epochNs ? new PreciseDate(data.mtimeNs) : updated;
  return { dir, ref, offset: Number(data.size), total, expected, startedAt, updatedAt };
}

/** Creates a fresh ingest directory (removing whatever was there). */
export async function createIngest(
  dir: string,
  ref: string,
  total: number,
  expected: Digest | undefined,
): Promise<IngestState> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const now = preciseNow();
  await writeFile(join(dir, "data"), "");
  if (total > 0) await writeFile(join(dir, "total"), String(total));
  if (expected) await writeFile(join(dir, "expected"), expected);
  await writeFile(join(dir, "startedat"), now.toISOString());
  await writeFile(join(dir, "updatedat"), now.toISOString());
  await writeFile(join(dir, "ref"), ref);
  return { dir, ref, offset: 0, total, expected, startedAt: now, updatedAt: now };
}

const statNs = (path: string) => stat(path, { bigint: true });

export async function touchUpdated(dir: string, when: Date = preciseNow()): Promise<void> {
  await writeFile(join(dir, "updatedat"), when.toISOString());
}

export function toStatus(s: IngestState): Status {
  const out: Status = { ref: s.ref, offset: s.offset, total: s.total, startedAt: s.startedAt, updatedAt: s.updatedAt };
  if (s.expected) out.expected = s.expected;
  return out;
}
