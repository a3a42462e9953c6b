/**
 * What commands share in reading their arguments: repeatable flags, usage
 * errors (exit status 2), `key=value` labels, and commands that take several
 * names or digests, where one that fails is reported and the others still done.
 */
import { errorMessage, InvalidArgumentError } from "../errors.ts";

/** A command line that cannot be right: `dist: <message>` and exit status 2 (main.ts). */
export class UsageError extends InvalidArgumentError {}

/** The same check, its InvalidArgument failure a usage error (for library validators of what the user typed). */
export function asUsage<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (err instanceof InvalidArgumentError && !(err instanceof UsageError)) {
      throw new UsageError(err.message, { cause: err });
    }
    throw err;
  }
}

/** The parser of a repeatable flag: `--label a --label b` → ["a", "b"]. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** `key=value` pairs; with allowEmpty, `key=` (an empty value, which removes the key where labels change). */
export function parseLabels(pairs: string[] = [], allowEmpty = true): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const i = pair.indexOf("=");
    if (i <= 0 || (!allowEmpty && i === pair.length - 1)) {
      throw new UsageError(`invalid label "${pair}": expected key=value`);
    }
    out[pair.slice(0, i)] = pair.slice(i + 1);
  }
  return out;
}

/** Reports one failed item of a multi-item command on one line and makes the exit status 1. */
export function reportItemError(err: unknown): void {
  process.stderr.write(`dist: ${errorMessage(err).replace(/\s*\n\s*/g, " ")}\n`);
  process.exitCode = 1;
}

/** Runs fn on each item in order; a failure is reported (reportItemError) and the next item still runs. */
export async function forEachItem<T>(items: readonly T[], fn: (item: T) => unknown): Promise<void> {
  for (const item of items) {
    try {
      await fn(item);
    } catch (err) {
      reportItemError(err);
    }
  }
}
