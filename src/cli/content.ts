/**
 * The seed's content commands (`ingest`, `active`, `list`, `path`, `get`,
 * `delete`) at the top level, and the same plus `label` and `prune` under
 * `dist content`. One implementation each, registered in both places.
 */
import { closeSync, constants as fsConstants, fstatSync, openSync, read, writeSync } from "node:fs";
import { pipeline } from "node:stream/promises";
import { isatty } from "node:tty";
import { promisify } from "node:util";
import type { Command } from "commander";
import { hasBlobFiles, type Info, type Status, type Store } from "../content/content.ts";
import { validateDigest } from "../digest.ts";
import { DistError, errorMessage, InvalidArgumentError, UnimplementedError } from "../errors.ts";
import { formatAge, formatBytes } from "../format.ts";
import { lseek, SEEK_CUR, setPipeSize } from "../sys/index.ts";
import { collect, forEachItem, parseLabels, reportItemError, UsageError } from "./args.ts";
import { commandSignal, globals, parseDuration, parseSize } from "./globals.ts";
import { withContentStore } from "./open.ts";
import { outputFormat, outputOption, printJson, printTable } from "./table.ts";

type AddCommand = (parent: Command) => Command;

const readAsync = promisify(read);

const ingest: AddCommand = (parent) =>
  parent
    .command("ingest")
    .description("write stdin into the content store under a ref, verifying it on commit")
    .argument("<ref>", "the ingest's ref (a key: the same ref resumes, one writer at a time)")
    .option("--expected-digest <digest>", "the digest the content must have")
    .option("--expected-size <bytes>", "the size the content must have")
    .option("--label <key=value>", "label the committed blob (repeatable)", collect)
    .addHelpText(
      "after",
      `
Concurrent ingests of one ref wait for each other; content that is already in
the store (by --expected-digest) is not read again and the command succeeds.
An interrupted ingest resumes at its offset when run again with the same ref.

Examples:
  dist ingest --expected-digest sha256:2c26…ae7 --expected-size 4 my-ref < file
  curl -sL URL | dist ingest --expected-digest "$D" layer-"$D"`,
    )
    .action(async (ref: string, opts: { expectedDigest?: string; expectedSize?: string; label?: string[] }, cmd) => {
      const g = globals(cmd);
      if (ref === "") throw new InvalidArgumentError("must specify a ref for the ingest");
      const expected = opts.expectedDigest ? validateDigest(opts.expectedDigest) : undefined;
      const size = opts.expectedSize === undefined ? undefined : parseSize(opts.expectedSize);
      const labels = parseLabels(opts.label, false);
      if (isatty(0)) throw new InvalidArgumentError("refusing to ingest from a terminal: pipe the content into stdin");
      const signal = commandSignal(g);
      const { writeBlob } = await import("../content/helpers.ts");
      await withContentStore(g, async (store) => {
        const stdin = stdinChunks(signal);
        try {
          await writeBlob(store, ref, stdin.chunks, { size, expected, labels, signal, reopen: stdin.reopen });
        } catch (err) {
          if (!signal.aborted) throw err;
          throw new DistError(
            "Aborted",
            `ingest of ref ${ref} stopped (${errorMessage(signal.reason)}); run it again with the same ref to resume`,
          );
        } finally {
          stdin.close();
        }
      });
    });

const READ_CHUNK = 1 << 20;

/**
 * Standard input as chunks of up to 1 MiB. A pipe (grown to 1 MiB first) or a
 * file is read with read(2) into 1 MiB buffers, one read ahead of the consumer:
 * about twice as fast as process.stdin's 64 KiB reads. Anything else (a
 * socket) goes through process.stdin. close() must be called at the end.
 */
function stdinChunks(signal: AbortSignal): {
  chunks: AsyncIterable<Uint8Array>;
  /** For a file on stdin: the same chunks from a byte offset (to resume an ingest). */
  reopen?: (offset: number) => Promise<AsyncIterable<Uint8Array>>;
  close(): void;
} {
  const st = fstatSync(0);
  if (!st.isFIFO() && !st.isFile()) {
    const stdin = process.stdin;
    const onAbort = () => stdin.destroy(signal.reason as Error);
    signal.addEventListener("abort", onAbort, { once: true });
    return {
      chunks: stdin,
      close() {
        signal.removeEventListener("abort", onAbort);
        stdin.destroy();
      },
    };
  }
  const fifo = st.isFIFO();
  if (fifo) growPipe(0);
  let pending = false;
  let stopped = false;
  // files are read at explicit positions (so a resume can start anywhere); pipes sequentially
  const base = fifo ? 0 : fileOffset(0);
  let position: number | null = fifo ? null : base;
  const fill = async (): Promise<Buffer | null> => {
    pending = true;
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    let n = 0;
    try {
      while (n < buf.length && !stopped) {
        let got: number;
        try {
          got = (await readAsync(0, buf, n, buf.length - n, position === null ? null : position + n)).bytesRead;
        } catch (err) {
          // a non-blocking pipe (O_NONBLOCK set by whoever shares it): wait and retry
          if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
          await new Promise((r) => setTimeout(r, 5));
          continue;
        }
        if (got === 0) break;
        n += got;
      }
    } finally {
      pending = false;
    }
    if (position !== null) position += n;
    return n === 0 || stopped ? null : buf.subarray(0, n);
  };
  const chunks = async function* () {
    let next = fill();
    for (;;) {
      const buf = await abortable(next, signal);
      if (!buf) return;
      next = fill();
      next.catch(() => {});
      yield buf;
    }
  };
  return {
    chunks: chunks(),
    reopen: fifo
      ? undefined
      : async (offset: number) => {
          position = base + offset;
          return chunks();
        },
    close() {
      stopped = true;
      // A read(2) blocked on an idle pipe would hold a thread-pool thread, and
      // with it the process's exit, until the writer sends more. Write one byte
      // into the pipe ourselves (through /proc) so that read returns.
      if (!fifo || !pending) return;
      try {
        const w = openSync("/proc/self/fd/0", fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
        try {
          writeSync(w, Buffer.alloc(1));
        } finally {
          closeSync(w);
        }
      } catch {
        // a full pipe (EAGAIN) means the read is not blocked anyway
      }
    },
  };
}

/**
 * `p`, or the signal's reason when it aborts first. (Not Promise.race with one
 * long-lived abort promise: that keeps every settled value reachable.)
 */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}

/** The current offset of a file descriptor (where a shell left it), 0 when unknown. */
function fileOffset(fd: number): number {
  try {
    return lseek(fd, 0, SEEK_CUR);
  } catch {
    return 0;
  }
}

/** Grows the pipe on fd to 1 MiB so each read returns up to 1 MiB; best effort. */
function growPipe(fd: number): void {
  try {
    setPipeSize(fd, READ_CHUNK);
  } catch {
    // no libc or not allowed: 64 KiB reads still work
  }
}

const active: AddCommand = (parent) =>
  parent
    .command("active")
    .description("list ingests in progress (REF SIZE AGE)")
    .argument("[prefix...]", "only refs starting with one of these")
    .addOption(outputOption())
    .addHelpText(
      "after",
      `
Examples:
  dist active
  watch -n0.2 dist active
  dist content active --output json`,
    )
    .action(async (prefixes: string[], opts: { output?: string }, cmd) => {
      const format = outputFormat(opts.output);
      const statuses = await withContentStore(globals(cmd), (s) => s.listStatuses({ refPrefixes: prefixes }));
      if (format === "json") return printJson(statuses.map(statusJson));
      const now = Date.now();
      printTable(
        ["REF", "SIZE", "AGE"],
        statuses.map((s) => [s.ref, formatBytes(s.offset), formatAge(now - s.startedAt.getTime())]),
      );
    });

const list: AddCommand = (parent) =>
  parent
    .command("list")
    .alias("ls")
    .description("list blobs in the content store (DIGEST SIZE AGE LABELS)")
    .argument("[prefix...]", "only digests starting with one of these (sha256:ab, or just ab)")
    .option("-q, --quiet", "print digests only")
    .option("--label <key[=value]>", "only blobs with this label (repeatable)", collect)
    .addOption(outputOption())
    .addHelpText(
      "after",
      `
Examples:
  dist list
  dist ls -q | xargs dist delete
  dist content ls --label dist.example/keep --output json`,
    )
    .action(async (prefixes: string[], opts: { quiet?: boolean; label?: string[]; output?: string }, cmd) => {
      const format = outputFormat(opts.output);
      const infos: Info[] = [];
      await withContentStore(globals(cmd), (s) =>
        s.walk((info) => void infos.push(info), { digestPrefixes: prefixes, labels: opts.label }),
      );
      if (format === "json") return printJson(infos.map(infoJson));
      if (opts.quiet) {
        process.stdout.write(infos.map((i) => `${i.digest}\n`).join(""));
        return;
      }
      const now = Date.now();
      printTable(
        ["DIGEST", "SIZE", "AGE", "LABELS"],
        infos.map((i) => [
          i.digest,
          formatBytes(i.size),
          formatAge(now - i.createdAt.getTime()),
          formatLabels(i.labels),
        ]),
      );
    });

const path: AddCommand = (parent) =>
  parent
    .command("path")
    .description("print the file of each blob: `<digest> <path>`, or the path alone with -q/-n")
    .argument("[digest...]", "blob digests")
    .option("-q, --quiet", "print only the path")
    .option("-n, --name-only", "print only the path (as the seed's apply example uses it)")
    .addOption(outputOption())
    .addHelpText(
      "after",
      `
A missing or invalid digest is reported and the others are still printed;
the exit status is then 1.

Examples:
  dist path sha256:010c454d55e53059beaba4044116ea4636f8dd8181e975d893931c7e7204fffa
  dist apply ./rootfs < "$(dist path -n sha256:010c…fffa)"`,
    )
    .action(async (digests: string[], opts: { quiet?: boolean; nameOnly?: boolean; output?: string }, cmd: Command) => {
      const g = globals(cmd);
      const pathOnly = Boolean(opts.quiet || opts.nameOnly);
      if (digests.length === 0) throw new UsageError("path: expected at least one digest");
      const format = outputFormat(opts.output);
      const rows: { digest: string; path: string }[] = [];
      await withContentStore(g, async (store) => {
        if (!hasBlobFiles(store)) {
          throw new UnimplementedError("path needs the embedded store (not --address)");
        }
        await forEachItem(digests, async (d) => {
          const digest = validateDigest(d);
          await store.info(digest);
          const p = store.blobPath(digest);
          rows.push({ digest: d, path: p });
          if (format === "table") process.stdout.write(pathOnly ? `${p}\n` : `${d} ${p}\n`);
        });
      });
      if (format === "json") printJson(rows);
    });

const get: AddCommand = (parent) =>
  parent
    .command("get")
    .description("write a blob's bytes to stdout")
    .argument("<digest>", "the blob's digest")
    .addHelpText(
      "after",
      `
Examples:
  dist get sha256:010c454d55e53059beaba4044116ea4636f8dd8181e975d893931c7e7204fffa | tar -tz
  dist content get "$MANIFEST_DIGEST" | jq .`,
    )
    .action(async (digest: string, _opts: unknown, cmd: Command) => {
      const g = globals(cmd);
      const d = validateDigest(digest);
      const signal = commandSignal(g);
      await withContentStore(g, async (store) => {
        const stream = await store.openRead(d, { signal });
        try {
          await pipeline(stream, process.stdout, { signal });
        } catch (err) {
          // the reader went away (`| head`): not our failure
          if ((err as NodeJS.ErrnoException).code !== "EPIPE") throw err;
        }
      });
    });

// at the top level `dist rm` is shared with containers (src/cli/run.ts sends digests here)
const remove: AddCommand = (parent) =>
  parent
    .command("delete")
    .aliases(parent.parent ? ["del", "remove", "rm"] : ["del", "remove"])
    .description("delete blobs, printing each digest deleted")
    .argument("<digest...>", "blob digests")
    .addHelpText(
      "after",
      `
A missing or invalid digest is reported and the others are still deleted;
the exit status is then 1.

Examples:
  dist delete sha256:010c454d55e53059beaba4044116ea4636f8dd8181e975d893931c7e7204fffa
  dist list -q | xargs dist delete`,
    )
    .action(async (digests: string[], _opts: unknown, cmd: Command) => {
      const { deleteBlobs } = await import("../content/delete.ts");
      await withContentStore(globals(cmd), (store) =>
        deleteBlobs(store, digests, {
          onDeleted: (d) => process.stdout.write(`${d}\n`),
          onError: (_d, err) => reportItemError(err),
        }),
      );
    });

const label: AddCommand = (parent) =>
  parent
    .command("label")
    .description("show or change a blob's labels (in the current namespace); an empty value removes a key")
    .argument("<digest>", "the blob's digest")
    .argument("[label...]", "key=value to set, key= to remove")
    .addHelpText(
      "after",
      `
Prints the resulting labels as key=value,… (nothing when there are none).

Examples:
  dist content label sha256:010c…fffa dist.example/keep=true
  dist content label sha256:010c…fffa dist.example/keep=`,
    )
    .action(async (digest: string, pairs: string[], _opts: unknown, cmd: Command) => {
      const d = validateDigest(digest);
      const changes = parseLabels(pairs, true);
      const info = await withContentStore(globals(cmd), async (store) => {
        const keys = Object.keys(changes);
        if (keys.length === 0) return store.info(d);
        return store.update(
          d,
          changes,
          keys.map((k) => `labels.${k}`),
        );
      });
      const text = Object.entries(info.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(",");
      if (text) process.stdout.write(`${text}\n`);
    });

interface PruningStore extends Store {
  pruneIngests(olderThanMs: number): Promise<Status[]>;
}

const prune: AddCommand = (parent) =>
  parent
    .command("prune")
    .description("remove stale ingests (not written to for a while), printing their refs")
    .option("--older-than <duration>", "how long an ingest must have been idle", "24h")
    .addHelpText(
      "after",
      `
Ingests a writer currently holds are never removed.

Examples:
  dist content prune
  dist content prune --older-than 30m`,
    )
    .action(async (opts: { olderThan: string }, cmd: Command) => {
      const age = parseDuration(opts.olderThan);
      const removed = await withContentStore(globals(cmd), async (store) => {
        if (typeof (store as Partial<PruningStore>).pruneIngests !== "function") {
          throw new UnimplementedError("prune needs the embedded store (not --address)");
        }
        return (store as PruningStore).pruneIngests(age);
      });
      process.stdout.write(removed.map((s) => `${s.ref}\n`).join(""));
    });

export function register(program: Command): void {
  for (const add of [ingest, active, get, remove, list, path]) add(program);
  const content = program
    .command("content")
    .description("the content store: blobs by digest, ingests by ref")
    .addHelpText(
      "after",
      `
Examples:
  dist content ls
  dist content ingest --expected-digest "$D" my-ref < blob
  dist content label "$D" dist.example/keep=true`,
    );
  for (const add of [ingest, active, list, get, path, remove, label, prune]) add(content);
}

// ---- helpers

function formatLabels(labels: Record<string, string>): string {
  const entries = Object.entries(labels);
  return entries.length === 0 ? "-" : entries.map(([k, v]) => `${k}=${v}`).join(",");
}

function statusJson(s: Status): Record<string, unknown> {
  return {
    ref: s.ref,
    offset: s.offset,
    total: s.total,
    expected: s.expected,
    startedAt: s.startedAt.toISOString(),
    updatedAt: s.updatedAt.toISOString(),
  };
}

function infoJson(i: Info): Record<string, unknown> {
  return {
    digest: i.digest,
    size: i.size,
    createdAt: i.createdAt.toISOString(),
    updatedAt: i.updatedAt.toISOString(),
    labels: i.labels,
  };
}
