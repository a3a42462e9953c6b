/**
 * The content commands as a user runs them: bin/dist processes, killed,
 * racing each other and fed bad input.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { digestOf } from "../../src/digest.ts";
import { namespacedContentStore } from "../../src/metadata/metadata.ts";

const DIST = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "dist");

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  out: Buffer;
}

function run(args: string[], opts: { input?: Buffer | string; root?: string; argv0?: string[] } = {}): Promise<Result> {
  const argv = [...(opts.argv0 ?? []), DIST, ...(opts.root ? ["--root", opts.root] : []), ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (c) => out.push(c));
    child.stderr.on("data", (c) => err.push(c));
    child.on("error", reject);
    child.stdin.on("error", () => {}); // a command that exits before reading its input
    child.on("close", (code, signal) =>
      resolve({
        code,
        signal,
        out: Buffer.concat(out),
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      }),
    );
    child.stdin.end(opts.input ?? "");
  });
}

/** Asserts a failure reported as one `dist: ...` line. */
function assertOneLineError(r: Result, pattern: RegExp): void {
  assert.notEqual(r.code, 0, `expected failure, got success; stdout=${r.stdout}`);
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0], /^dist: /);
  assert.match(lines[0], pattern);
}

let tmp: string;
let n = 0;
const newRoot = () => join(tmp, `root${n++}`);
const blobs = (root: string) => {
  const dir = join(root, "content", "blobs", "sha256");
  return existsSync(dir) ? readdirSync(dir) : [];
};
const ingests = (root: string) => {
  const dir = join(root, "content", "ingest");
  return existsSync(dir) ? readdirSync(dir) : [];
};

before(() => {
  tmp = mkdtempSync(join(tmpdir(), "dist-cli-content-"));
  chmodSync(tmp, 0o755); // `nobody` must reach the unwritable root below
});
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("dist ingest / get / list / path / delete", () => {
  it("ingests stdin and serves it back through every read command", async () => {
    const root = newRoot();
    const data = randomBytes(3000);
    const d = digestOf(data);
    const r = await run(["ingest", "--expected-digest", d, "--expected-size", "3000", "my-ref"], { root, input: data });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "");
    const file = join(root, "content", "blobs", "sha256", d.slice(7));
    // the read commands, concurrently (they only read)
    const [got, ls, lsq, json, path, pathN, pathQ] = await Promise.all([
      run(["get", d], { root }),
      run(["list"], { root }),
      run(["ls", "-q"], { root }),
      run(["content", "ls", "--output", "json"], { root }),
      run(["path", d], { root }),
      run(["path", "-n", d], { root }),
      run(["content", "path", "-q", d], { root }),
    ]);
    assert.equal(got.code, 0);
    assert.ok(got.out.equals(data));
    assert.match(ls.stdout, /^DIGEST\s+SIZE\s+AGE\s+LABELS\n/);
    assert.match(ls.stdout, new RegExp(`${d}\\s+2\\.9 KiB\\s+\\S.*\\s+-\\n`));
    assert.equal(lsq.stdout, `${d}\n`);
    const parsed = JSON.parse(json.stdout);
    assert.equal(parsed[0].digest, d);
    assert.equal(parsed[0].size, 3000);
    assert.equal(path.stdout, `${d} ${file}\n`);
    assert.equal(pathN.stdout, `${file}\n`);
    assert.equal(pathQ.stdout, `${file}\n`);
    assert.equal(statSync(file).mode & 0o222, 0);
    const rm = await run(["delete", d], { root });
    assert.equal(rm.stdout, `${d}\n`);
    assert.deepEqual(blobs(root), []);
  });

  it("treats repeated content as done without error", async () => {
    const root = newRoot();
    const d = digestOf("again");
    for (const ref of ["a", "b"]) {
      const r = await run(["ingest", "--expected-digest", d, ref], { root, input: "again" });
      assert.equal(r.code, 0, r.stderr);
    }
    assert.deepEqual(blobs(root), [d.slice(7)]);
  });

  it("refuses an expected size that contradicts the content already stored", async () => {
    const root = newRoot();
    const d = digestOf("sized");
    assert.equal((await run(["ingest", "--expected-digest", d, "a"], { root, input: "sized" })).code, 0);
    const r = await run(["ingest", "--expected-digest", d, "--expected-size", "6", "b"], { root, input: "sized" });
    assertOneLineError(r, new RegExp(`content ${d} is already stored with 5 bytes, not the expected 6`));
    const ok = await run(["ingest", "--expected-digest", d, "--expected-size", "5", "c"], { root, input: "sized" });
    assert.equal(ok.code, 0, ok.stderr);
  });

  it("keeps namespaces apart: a blob ingested in one is listed and read only there", async () => {
    const root = newRoot();
    const d = digestOf("mine");
    await run(["-n", "one", "ingest", "x"], { root, input: "mine" });
    assert.equal((await run(["-n", "one", "ls", "-q"], { root })).stdout, `${d}\n`);
    assert.equal((await run(["-n", "two", "ls", "-q"], { root })).stdout, "");
    assertOneLineError(await run(["-n", "two", "get", d], { root }), /not found in namespace two/);
    assert.equal((await run(["-n", "one", "get", d], { root })).stdout, "mine");
  });

  it("labels, lists labels and prunes through `dist content`", async () => {
    const root = newRoot();
    const d = digestOf("label me");
    await run(["content", "ingest", "--label", "a=1", "lab"], { root, input: "label me" });
    let r = await run(["content", "label", d, "b=2"], { root });
    assert.equal(r.stdout, "a=1,b=2\n");
    r = await run(["content", "label", d, "a="], { root });
    assert.equal(r.stdout, "b=2\n");
    assert.match((await run(["content", "ls"], { root })).stdout, /b=2\n/);
    assert.equal((await run(["content", "ls", "-q", "--label", "b=3"], { root })).stdout, "");
    // an ingest left behind by an interrupted writer, then prune
    const store = namespacedContentStore(root);
    const w = await store.writer({ ref: "stale" });
    await w.write(Buffer.from("partial"));
    await w.close();
    assert.match((await run(["active"], { root })).stdout, /\nstale\s+7\.0 B\s/);
    assert.equal((await run(["content", "prune"], { root })).stdout, "", "a fresh ingest is kept");
    assert.equal((await run(["content", "prune", "--older-than", "0s"], { root })).stdout, "stale\n");
    assert.deepEqual(JSON.parse((await run(["content", "active", "--output", "json"], { root })).stdout), []);
  });

  it("deletes the digests it can, reports the others on one line each, exits 1", async () => {
    const root = newRoot();
    const d = digestOf("keep going");
    await run(["ingest", "x"], { root, input: "keep going" });
    const missing = digestOf("never stored");
    const r = await run(["delete", missing, d], { root });
    assert.equal(r.code, 1);
    assert.equal(r.stdout, `${d}\n`);
    assert.equal(r.stderr, `dist: content ${missing}: not found in namespace default\n`);
  });
});

describe("dist ingest under failure", () => {
  it("resumes an ingest whose writer was SIGKILLed, with the same ref", async () => {
    const root = newRoot();
    const data = randomBytes(3 << 20);
    const d = digestOf(data);
    const args = ["--root", root, "ingest", "--expected-digest", d, "--expected-size", String(data.length), "kill-ref"];
    const child = spawn(DIST, args, { stdio: ["pipe", "ignore", "pipe"] });
    child.stdin.on("error", () => {});
    child.stdin.write(data.subarray(0, 3 << 19)); // 1.5 MiB, then nothing more
    const dataFile = () => {
      const [dir] = ingests(root);
      const f = dir && join(root, "content", "ingest", dir, "data");
      return f && existsSync(f) ? statSync(f).size : 0;
    };
    for (let i = 0; i < 200 && dataFile() < 1 << 20; i++) await sleep(50);
    assert.ok(dataFile() >= 1 << 20, "the writer should have written its first MiB");
    const exited = new Promise((resolve) => child.on("close", resolve));
    child.kill("SIGKILL");
    await exited;
    const active = JSON.parse((await run(["active", "--output", "json"], { root })).stdout);
    assert.equal(active.length, 1);
    assert.equal(active[0].ref, "kill-ref");
    assert.ok(active[0].offset >= 1 << 20);
    assert.deepEqual(blobs(root), []);
    const table = await run(["active"], { root });
    assert.match(table.stdout, /^REF\s+SIZE\s+AGE\nkill-ref\s+\d/);
    // the flock died with the process: the same ref resumes at once
    const r = await run(args.slice(2), { root, input: data });
    assert.equal(r.code, 0, r.stderr);
    assert.ok((await run(["get", d], { root })).out.equals(data));
    assert.deepEqual(ingests(root), []);
  });

  for (const kind of ["socket", "fifo"] as const) {
    it(`stops on SIGINT while waiting for input on a ${kind}, keeping what it wrote for a resume`, async () => {
      const root = newRoot();
      const args = ["--root", root, "ingest", "interrupted"];
      let feed: (b: Buffer) => void;
      let child: ReturnType<typeof spawn>;
      let fifoFd = -1;
      if (kind === "fifo") {
        // a named pipe held open read-write here: the reader never sees EOF
        const fifo = join(tmp, `fifo${n++}`);
        execFileSync("mkfifo", [fifo]);
        fifoFd = openSync(fifo, "r+");
        child = spawn(DIST, args, { stdio: [fifoFd, "ignore", "pipe"] });
        feed = (b) => void writeFile(fifo, b);
      } else {
        child = spawn(DIST, args, { stdio: ["pipe", "ignore", "pipe"] });
        child.stdin!.on("error", () => {});
        feed = (b) => void child.stdin!.write(b);
      }
      const err: Buffer[] = [];
      child.stderr!.on("data", (c) => err.push(c));
      feed(Buffer.alloc(3 << 19, 7)); // 1.5 MiB, and the input stays open
      const dataSize = () => {
        const [dir] = ingests(root);
        const f = dir && join(root, "content", "ingest", dir, "data");
        return f && existsSync(f) ? statSync(f).size : 0;
      };
      for (let i = 0; i < 200 && dataSize() < 1 << 20; i++) await sleep(50);
      const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
      child.kill("SIGINT");
      assert.equal(await exited, 1);
      assert.match(Buffer.concat(err).toString(), /^dist: ingest of ref interrupted stopped \(interrupted by SIGINT\)/);
      if (fifoFd >= 0) closeSync(fifoFd);
      else child.stdin?.destroy();
      const [st] = JSON.parse((await run(["active", "--output", "json"], { root })).stdout);
      assert.equal(st.ref, "interrupted");
      assert.ok(st.offset >= 1 << 20);
    });
  }

  it("resumes from a file on stdin, and honours where the shell left its offset", async () => {
    const root = newRoot();
    const data = randomBytes(5000);
    const file = join(tmp, `file${n++}`);
    writeFileSync(file, Buffer.concat([Buffer.from("HEADER"), data]));
    const d = digestOf(data);
    const store = namespacedContentStore(root);
    const w = await store.writer({ ref: "from-file", expected: d });
    await w.write(data.subarray(0, 1234));
    await w.close();
    const r = await run([], {
      argv0: [
        "sh",
        "-c",
        `{ head -c 6 >/dev/null; ${DIST} --root ${root} ingest --expected-digest ${d} from-file; } < ${file}`,
      ],
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(digestOf(readFileSync(join(root, "content", "blobs", "sha256", d.slice(7)))), d);
    assert.deepEqual(ingests(root), []);
  });

  it("several processes ingesting the same ref and the same content never corrupt it", async () => {
    const root = newRoot();
    const data = randomBytes(1 << 20);
    const d = digestOf(data);
    const runs = [
      ...Array.from({ length: 5 }, () => run(["ingest", "--expected-digest", d, "same-ref"], { root, input: data })),
      ...Array.from({ length: 3 }, (_, i) =>
        run(["ingest", "--expected-digest", d, `ref-${i}`], { root, input: data }),
      ),
      ...Array.from({ length: 2 }, () => run(["ingest", "no-digest-ref"], { root, input: data })),
    ];
    for (const r of await Promise.all(runs)) assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(blobs(root), [d.slice(7)]);
    assert.deepEqual(ingests(root), []);
    assert.ok((await run(["get", d], { root })).out.equals(data));
  });

  it("a verification failure leaves nothing in blobs/ and no ingest", async () => {
    const root = newRoot();
    const claimed = digestOf("what was promised");
    const r = await run(["ingest", "--expected-digest", claimed, "liar"], { root, input: "what arrived" });
    assertOneLineError(r, new RegExp(`got digest ${digestOf("what arrived")}, expected ${claimed}`));
    assert.deepEqual(blobs(root), []);
    assert.deepEqual(ingests(root), []);
    const size = await run(["ingest", "--expected-size", "3", "short"], { root, input: "hello" });
    assertOneLineError(size, /expected 3/);
    assert.deepEqual(blobs(root), []);
    assert.deepEqual(ingests(root), []);
  });

  it("runs the seed's parallel pipeline: xargs -P10, repeated layers, all verified", async () => {
    const root = newRoot();
    const dir = join(tmp, "layers");
    mkdirSync(dir);
    const layers = Array.from({ length: 8 }, (_, i) => randomBytes(20_000 + i * 7_000));
    const lines: string[] = [];
    for (const [i, data] of layers.entries()) writeFileSync(join(dir, `l${i}`), data);
    for (const i of [0, 1, 2, 3, 4, 5, 6, 7, 0, 3, 3, 5]) {
      const d = digestOf(layers[i]);
      lines.push(
        `cat ${join(dir, `l${i}`)} | ${DIST} --root ${root} ingest --expected-digest ${d} --expected-size ${layers[i].length} docker.io/library/redis@${d}`,
      );
    }
    writeFileSync(join(dir, "jobs"), `${lines.join("\n")}\n`);
    const pipeline = await new Promise<Result>((resolve, reject) => {
      const child = spawn("sh", ["-c", `xargs -I{} -P10 -n1 sh -c "{}" < ${join(dir, "jobs")}`], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      const err: Buffer[] = [];
      child.stderr.on("data", (c) => err.push(c));
      child.stdout.resume();
      child.on("error", reject);
      child.on("close", (code, signal) =>
        resolve({ code, signal, stdout: "", stderr: Buffer.concat(err).toString(), out: Buffer.alloc(0) }),
      );
    });
    assert.equal(pipeline.code, 0, pipeline.stderr);
    const want = layers.map((l) => digestOf(l)).sort();
    assert.deepEqual((await run(["list", "-q"], { root })).stdout.trim().split("\n").sort(), want);
    for (const d of want) {
      assert.equal(digestOf(readFileSync(join(root, "content", "blobs", "sha256", d.slice(7)))), d);
    }
    assert.deepEqual(ingests(root), []);
    // the seed's cleanup: dist list -q | xargs dist delete
    const clean = await run([], {
      argv0: ["sh", "-c", `${DIST} --root ${root} list -q | xargs ${DIST} --root ${root} delete`],
    });
    assert.equal(clean.code, 0, clean.stderr);
    assert.deepEqual(blobs(root), []);
  });
});

describe("dist content commands on bad input", { concurrency: true }, () => {
  const d = digestOf("absent");
  const cases: [string, string[], RegExp][] = [
    ["a bad expected digest", ["ingest", "--expected-digest", "sha256:zz", "r"], /invalid digest "sha256:zz"/],
    ["an uppercase digest", ["get", `sha256:${"A".repeat(64)}`], /lowercase hex/],
    ["an unknown algorithm", ["path", `md5:${"a".repeat(32)}`], /unsupported algorithm "md5"/],
    ["a bad expected size", ["ingest", "--expected-size", "lots", "r"], /invalid size "lots"/],
    ["an empty ref", ["ingest", ""], /must specify a ref/],
    ["a missing blob (get)", ["get", d], new RegExp(`${d}: not found`)],
    ["a missing blob (path)", ["path", "-n", d], new RegExp(`${d}: not found`)],
    ["a missing blob (rm)", ["content", "rm", d], new RegExp(`${d}: not found`)],
    ["a missing blob (label)", ["content", "label", d, "a=b"], new RegExp(`${d}: not found`)],
    ["a bad --output", ["active", "--output", "yaml"], /invalid --output "yaml"/],
    ["a malformed namespace", ["--namespace", "bad..name", "ls"], /namespace "bad\.\.name": must be letters/],
  ];
  for (const [what, args, pattern] of cases) {
    it(`reports ${what} on one line with a non-zero exit`, async () => {
      const root = newRoot();
      assertOneLineError(await run(args, { root, input: "data" }), pattern);
      assert.deepEqual(blobs(root), []);
      assert.deepEqual(ingests(root), []);
    });
  }

  it("reports an unwritable root on one line (as a user who cannot write it)", async () => {
    const parent = join(tmp, "readonly");
    mkdirSync(parent, { mode: 0o755 });
    const root = join(parent, "root");
    const asRoot = process.getuid?.() === 0;
    if (!asRoot) chmodSync(parent, 0o555);
    const r = await run(["ingest", "r"], {
      root,
      input: "data",
      argv0: asRoot ? ["runuser", "-u", "nobody", "--"] : [],
    });
    assertOneLineError(r, /cannot create the store .*root: .*permission denied/i);
    assert.equal(existsSync(root), false);
  });
});
