/**
 * Load on `dist daemon`: 8 concurrent clients, each ingesting its own blob
 * through the socket (bidi Write, 1 MiB messages) and reading it back
 * (streamed Read), verifying the digest. Compared with 8 concurrent embedded
 * `dist ingest` processes on one root (the baseline: same store, no socket)
 * and with 8 concurrent `ctr content ingest` + `ctr content get` through the
 * same daemon. BENCH_DAEMON_SIZE (default 64M) is the size of each blob.
 *
 * Run directly (`$NODE bench/suites/daemon.ts load SOCK FILE...`) this module
 * is the load driver: it prints one JSON line (bytes, seconds, MiB/s, errors)
 * and exits non-zero on any error. The suite's teardown prints the summary of
 * every load run: throughput and the error count, which must be 0.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { appendFileSync, createReadStream, existsSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type BenchSuite, randomFile } from "../suite.ts";

const CLIENTS = 8;

let daemon: ChildProcess | undefined;

async function load(sock: string, files: string[], out: string): Promise<void> {
  const { connect, RemoteContentStore } = await import("../../src/services/client/index.ts");
  const started = process.hrtime.bigint();
  let bytesIn = 0;
  let bytesOut = 0;
  const errors: string[] = [];
  await Promise.all(
    files.map(async (file, i) => {
      const conn = connect(sock, { namespace: "bench" });
      const store = new RemoteContentStore(conn);
      try {
        const hash = createHash("sha256");
        for await (const c of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(c as Buffer);
        const digest = `sha256:${hash.digest("hex")}` as const;
        await store.delete(digest).catch(() => undefined);
        const w = await store.writer({ ref: `bench-${i}`, expected: digest });
        for await (const c of createReadStream(file, { highWaterMark: 1 << 20 })) {
          await w.write(c as Buffer);
          bytesIn += (c as Buffer).length;
        }
        await w.commit(undefined, digest);
        const back = createHash("sha256");
        for await (const c of await store.openRead(digest)) {
          back.update(c as Buffer);
          bytesOut += (c as Buffer).length;
        }
        const got = `sha256:${back.digest("hex")}`;
        if (got !== digest) errors.push(`client ${i}: read back ${got}, wrote ${digest}`);
      } catch (err) {
        errors.push(`client ${i}: ${(err as Error).message}`);
      } finally {
        await conn.close();
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const line = {
    clients: files.length,
    bytesIn,
    bytesOut,
    seconds,
    mibPerSecond: (bytesIn + bytesOut) / (1 << 20) / seconds,
    errors,
  };
  appendFileSync(out, `${JSON.stringify(line)}\n`);
  if (errors.length > 0) {
    process.stderr.write(`daemon load: ${errors.length} errors:\n${errors.join("\n")}\n`);
    process.exitCode = 1;
  }
}

const suite: BenchSuite = {
  name: "daemon",
  description: `${CLIENTS} concurrent clients ingesting and reading through dist daemon's socket`,
  repetitions: 3,
  async setup(ctx) {
    const size = process.env.BENCH_DAEMON_SIZE ?? "64M";
    const files: string[] = [];
    const digests: string[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const f = join(ctx.tmp, `data${i}`);
      digests.push(randomFile(ctx, f, size));
      files.push(f);
    }
    ctx.vars.NODE = process.execPath;
    ctx.vars.SOCK = join(ctx.tmp, "d.sock");
    ctx.vars.FILES = files.join(" ");
    ctx.vars.DIGESTS = digests.join(" ");
    ctx.vars.LOADLOG = join(ctx.tmp, "load.jsonl");
    ctx.vars.DAEMONLOG = join(ctx.tmp, "daemon.log");
    daemon = spawn(
      ctx.vars.DIST,
      ["--root", join(ctx.tmp, "daemon-root"), "daemon", "--address", ctx.vars.SOCK, "--log-level", "warn"],
      { stdio: ["ignore", "ignore", openSync(ctx.vars.DAEMONLOG, "w")] },
    );
    for (let i = 0; !existsSync(ctx.vars.SOCK); i++) {
      if (i > 300 || daemon.exitCode !== null) throw new Error("dist daemon did not start");
      await sleep(100);
    }
  },
  cases: () => [
    {
      name: `${CLIENTS} × embedded dist ingest on one root (no daemon)`,
      before: 'rm -rf "$TMP/embedded-root" && sync',
      command:
        'set -e; p=""; i=0; for f in $FILES; do "$DIST" --root "$TMP/embedded-root" ingest "bench-$i" < "$f" & p="$p $!"; i=$((i+1)); done; ' +
        'for x in $p; do wait "$x"; done',
      baseline: true,
    },
    {
      name: `${CLIENTS} clients: ingest + read back through dist daemon (grpc-js)`,
      before: "sync",
      command: '"$NODE" "$TOP/bench/suites/daemon.ts" load "$SOCK" "$LOADLOG" $FILES',
    },
    {
      name: `${CLIENTS} × ctr content ingest + get through dist daemon`,
      before: 'ctr -a "$SOCK" -n bench content rm $DIGESTS >/dev/null 2>&1; sync',
      // every background job is waited for by pid, so one failure fails the case
      command:
        'set -e; p=""; i=0; for f in $FILES; do ctr -a "$SOCK" -n bench content ingest "ctr-$i" < "$f" & p="$p $!"; i=$((i+1)); done; ' +
        'for x in $p; do wait "$x"; done; p=""; ' +
        'for d in $DIGESTS; do (ctr -a "$SOCK" -n bench content get "$d" | sha256sum | grep -q "$(echo "$d" | cut -d: -f2)") & p="$p $!"; done; ' +
        'for x in $p; do wait "$x"; done',
    },
  ],
  async teardown(ctx) {
    if (daemon && daemon.exitCode === null) {
      const exited = new Promise((r) => daemon?.once("exit", r));
      daemon.kill("SIGTERM");
      await exited;
    }
    const problems = existsSync(ctx.vars.DAEMONLOG ?? "") ? readFileSync(ctx.vars.DAEMONLOG, "utf8").trim() : "";
    if (problems) process.stdout.write(`daemon warnings and errors:\n${problems.split("\n").slice(-20).join("\n")}\n`);
    const log = ctx.vars.LOADLOG;
    if (log && existsSync(log)) {
      const runs = readFileSync(log, "utf8")
        .trim()
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l));
      const errors = runs.reduce((n: number, r: { errors: string[] }) => n + r.errors.length, 0);
      const rates = runs.map((r: { mibPerSecond: number }) => r.mibPerSecond.toFixed(0)).join(", ");
      process.stdout.write(
        `daemon load: ${runs.length} runs of ${CLIENTS} clients, ingest + read back ${rates} MiB/s (in + out), errors: ${errors}\n`,
      );
    }
  },
};

export default suite;

if (import.meta.main && process.argv[2] === "load") {
  const [sock, out, ...files] = process.argv.slice(3);
  await load(sock, files, out);
}
