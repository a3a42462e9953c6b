/**
 * The real ctr (containerd 1.6) against `dist daemon`: content, images,
 * namespaces, leases, snapshots, version, and a client-side `images pull`
 * that fetches and unpacks through our services.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type DaemonProcess, startDaemonProcess } from "../services/fixture.ts";
import { type Containerd, startContainerd } from "./fixtures/containerd.ts";
import { run } from "./fixtures/exec.ts";
import { type Testbed, testbed } from "./harness.ts";

let tb: Testbed;
let d: DaemonProcess;
let tmp: string;

async function ctr(args: string[], opts: { ns?: string; input?: string | Buffer } = {}) {
  const r = await run("ctr", ["--address", d.sock, "--namespace", opts.ns ?? "default", ...args], {
    input: opts.input,
    timeoutMs: 120_000,
  });
  return { code: r.code, stdout: r.stdout.toString(), stderr: r.stderr.toString(), bytes: r.stdout };
}

async function ctrOk(args: string[], opts: { ns?: string; input?: string | Buffer } = {}) {
  const r = await ctr(args, opts);
  assert.equal(
    r.code,
    0,
    `ctr ${args.join(" ")} failed: ${r.stderr}\ndaemon log tail:\n${d.logs().split("\n").slice(-8).join("\n")}`,
  );
  return r;
}

const sha256 = (b: string | Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

before(async () => {
  tb = await testbed();
  tmp = mkdtempSync(join(tmpdir(), "dist-ctr-"));
  // ctr content ingest writes without a lease: a collection scheduled by an earlier delete could take
  // such a blob between two ctr calls (containerd's would too); collections here are the sync ones only
  d = await startDaemonProcess(join(tmp, "root"), join(tmp, "run", "dist.sock"), ["--gc-delay", "off"]);
});

after(async () => {
  const code = await d?.stop();
  assert.equal(code, 0, `daemon exit code ${code}:\n${d?.logs().split("\n").slice(-10).join("\n")}`);
  assert.ok(!existsSync(d.sock), "the socket is removed at shutdown");
  rmSync(tmp, { recursive: true, force: true });
  await tb?.stop();
});

describe("ctr against dist daemon", () => {
  test("without --group the socket is its owner's alone (0600) in a 0711 directory", () => {
    assert.equal(statSync(d.sock).mode & 0o777, 0o600);
    assert.equal(statSync(join(tmp, "run")).mode & 0o777, 0o711);
  });

  test("ctr version shows the dist server and a uuid", async () => {
    const r = await ctrOk(["version"]);
    assert.match(r.stdout, /Server:\s+Version:\s+dist /);
    assert.match(r.stdout, /UUID: [0-9a-f-]{36}/);
  });

  test("content ingest, ls, get, label, active, rm", async () => {
    const data = "hello from ctr\n";
    const dg = sha256(data);
    await ctrOk(["content", "ingest", "--expected-size", String(data.length), "--expected-digest", dg, "ctr-ref-1"], {
      input: data,
    });
    const ls = await ctrOk(["content", "ls"]);
    assert.match(ls.stdout, new RegExp(`${dg}\\s+${data.length}B`));
    const get = await ctrOk(["content", "get", dg]);
    assert.equal(get.stdout, data);
    const lab = await ctrOk(["content", "label", dg, "dist.test/a=1", "dist.test/b=two"]);
    assert.match(lab.stdout, /dist.test\/a=1/);
    // ctr prints labels in Go map order: both must be there, in either order
    const labelled = (await ctrOk(["content", "ls"])).stdout;
    assert.match(labelled, /(dist.test\/a=1,dist.test\/b=two|dist.test\/b=two,dist.test\/a=1)/);
    await ctrOk(["content", "label", dg, "dist.test/a="]);
    const after1 = (await ctrOk(["content", "ls"])).stdout;
    assert.doesNotMatch(after1, /dist.test\/a=1/);
    assert.match(after1, /dist.test\/b=two/);
    // a filter ctr passes through
    const q = await ctrOk(["content", "ls", "-q", `digest==${dg}`]);
    assert.equal(q.stdout.trim(), dg);

    // an ingest that ends early stays active (resumable), then ctr content active lists it
    const partial = await ctr(["content", "ingest", "--expected-size", "100", "ctr-partial"], { input: "short" });
    assert.notEqual(partial.code, 0, "a short ingest fails its commit");
    const active = await ctrOk(["content", "active"]);
    assert.match(active.stdout, /ctr-partial\s+5B/);

    await ctrOk(["content", "rm", dg]);
    assert.doesNotMatch((await ctrOk(["content", "ls"])).stdout, new RegExp(dg));
    const gone = await ctr(["content", "get", dg]);
    assert.notEqual(gone.code, 0);
    assert.match(gone.stderr, /not found/);
  });

  test("ctr content get of a 40 MiB blob (over a thousand Read calls, each cancelled by ctr)", async () => {
    const data = Buffer.alloc(40 << 20);
    for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i, i);
    await ctrOk(["content", "ingest", "big-blob"], { input: data });
    const got = await ctrOk(["content", "get", sha256(data)]);
    assert.equal(got.bytes.length, data.length);
    assert.equal(sha256(got.bytes), sha256(data));
    await ctrOk(["content", "rm", sha256(data)]);
  });

  test("content ingest of a wrong digest is refused and nothing is stored", async () => {
    const r = await ctr(["content", "ingest", "--expected-digest", sha256("other"), "ctr-bad"], { input: "data" });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /digest/);
    assert.doesNotMatch((await ctrOk(["content", "ls"])).stdout, new RegExp(sha256("data")));
  });

  test("namespaces create and ls; unknown namespace name is refused", async () => {
    await ctrOk(["namespaces", "create", "ctr-ns", "team=dist"]);
    const ls = await ctrOk(["namespaces", "ls"]);
    assert.match(ls.stdout, /ctr-ns\s+team=dist/);
    const dup = await ctr(["namespaces", "create", "ctr-ns"]);
    assert.notEqual(dup.code, 0);
    assert.match(dup.stderr, /already exists/);
    const bad = await ctr(["content", "ls"], { ns: "bad..name" });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /namespace/);
  });

  test("leases create, ls, rm", async () => {
    const c = await ctrOk(["leases", "create", "--id", "ctr-lease", "owner=test"]);
    assert.match(c.stdout, /ctr-lease/);
    const ls = await ctrOk(["leases", "ls"]);
    assert.match(ls.stdout, /ctr-lease\s+.*owner=test/);
    await ctrOk(["leases", "rm", "ctr-lease"]);
    assert.doesNotMatch((await ctrOk(["leases", "ls"])).stdout, /ctr-lease/);
    const again = await ctr(["leases", "rm", "ctr-lease"]);
    assert.notEqual(again.code, 0);
  });

  test("content fetch, then images ls, check, label, rm", async () => {
    const ref = `${tb.plain}/tiny/busybox:oci`;
    const img = tb.images["tiny/busybox:oci"];
    await ctrOk(["content", "fetch", "--plain-http", ref], { ns: "fetched" });
    const ls = await ctrOk(["images", "ls"], { ns: "fetched" });
    assert.match(ls.stdout, new RegExp(`${ref.replace(/[.]/g, "\\.")}\\s+\\S+\\s+${img.digest}`));
    const check = await ctrOk(["images", "check"], { ns: "fetched" });
    assert.match(check.stdout, /complete \(\d+\/\d+\)/);
    await ctrOk(["images", "label", ref, "dist.test/pinned=yes"], { ns: "fetched" });
    assert.match((await ctrOk(["images", "ls"], { ns: "fetched" })).stdout, /dist.test\/pinned=yes/);
    await ctrOk(["images", "rm", ref], { ns: "fetched" });
    assert.doesNotMatch((await ctrOk(["images", "ls", "-q"], { ns: "fetched" })).stdout, /busybox/);
    // another namespace never saw it
    assert.doesNotMatch((await ctrOk(["images", "ls", "-q"])).stdout, /busybox/);
  });

  test("images pull --plain-http unpacks through our content, leases, snapshots and diff", async () => {
    const ref = `${tb.plain}/tiny/busybox:oci`;
    const r = await ctrOk(["images", "pull", "--plain-http", "--snapshotter", "native", ref], { ns: "pulled" });
    assert.match(r.stdout, /unpacking linux\/\S+ sha256:[0-9a-f]{64}\.\.\.\s*\ndone/);
    const snaps = await ctrOk(["snapshots", "--snapshotter", "native", "ls"], { ns: "pulled" });
    assert.match(snaps.stdout, /sha256:[0-9a-f]{64}\s+(sha256:[0-9a-f]{64}\s+)?Committed/);
    const check = await ctrOk(["images", "check", "--snapshotter", "native"], { ns: "pulled" });
    assert.match(check.stdout, /complete.*true/);
    const log = d.logs();
    for (const m of [
      "leases.Create",
      "content.Write",
      "images.Create",
      "snapshots.Prepare",
      "diff.Apply",
      "snapshots.Commit",
    ]) {
      assert.ok(log.includes(`"method":"${m}"`), `ctr pull called ${m}`);
    }
  });
});

describe("namespaces are kept apart: ctr -n a never sees what ctr -n b made", () => {
  const A = { ns: "iso-a" };
  const B = { ns: "iso-b" };

  test("content: a blob of a is not in b until b ingests it (sharing a's bytes); b's removal leaves a's", async () => {
    const data = "namespaced content\n";
    const dg = sha256(data);
    await ctrOk(["content", "ingest", "--expected-digest", dg, "iso-ref"], { ...A, input: data });
    // nothing references it: a gc.root keeps it from the collections the daemon runs after deletes
    await ctrOk(["content", "label", dg, "containerd.io/gc.root=test"], A);
    assert.match((await ctrOk(["content", "ls", "-q"], A)).stdout, new RegExp(dg));
    assert.doesNotMatch((await ctrOk(["content", "ls", "-q"], B)).stdout, new RegExp(dg));
    const get = await ctr(["content", "get", dg], B);
    assert.notEqual(get.code, 0);
    assert.match(get.stderr, /not found/);
    const rm = await ctr(["content", "rm", dg], B);
    assert.match(rm.stdout + rm.stderr, /not found|^$/);
    assert.match((await ctrOk(["content", "ls", "-q"], A)).stdout, new RegExp(dg), "b's rm did not touch a's");
    // b ingests the same bytes: its writer starts at their size (shared), the commit records them in b
    // (through dist: ctr resumes by seeking its stdin, which a pipe cannot, with containerd as well)
    const viaDist = await tb.dist(["--address", d.sock, "--namespace", B.ns, "ingest", "--expected-digest", dg, "x"], {
      root: null,
      input: data,
    });
    assert.equal(viaDist.code, 0, viaDist.stderr);
    assert.match((await ctrOk(["content", "ls", "-q"], B)).stdout, new RegExp(dg));
    await ctrOk(["content", "rm", dg], B);
    assert.doesNotMatch((await ctrOk(["content", "ls", "-q"], B)).stdout, new RegExp(dg));
    assert.equal((await ctrOk(["content", "get", dg], A)).stdout, data, "a still reads its blob");
  });

  test("ingests: an unfinished ingest of a is active only in a; the same ref in b is b's own", async () => {
    const partial = await ctr(["content", "ingest", "--expected-size", "100", "iso-partial"], { ...A, input: "12345" });
    assert.notEqual(partial.code, 0);
    assert.match((await ctrOk(["content", "active"], A)).stdout, /iso-partial\s+5B/);
    assert.doesNotMatch((await ctrOk(["content", "active"], B)).stdout, /iso-partial/);
    const other = await ctr(["content", "ingest", "--expected-size", "100", "iso-partial"], { ...B, input: "12" });
    assert.notEqual(other.code, 0);
    assert.match((await ctrOk(["content", "active"], B)).stdout, /iso-partial\s+2B/);
    assert.match((await ctrOk(["content", "active"], A)).stdout, /iso-partial\s+5B/, "a's ingest untouched");
  });

  test("leases: a's lease is not listed in b, and b cannot remove it", async () => {
    await ctrOk(["leases", "create", "--id", "iso-lease"], A);
    assert.match((await ctrOk(["leases", "ls", "-q"], A)).stdout, /iso-lease/);
    assert.doesNotMatch((await ctrOk(["leases", "ls", "-q"], B)).stdout, /iso-lease/);
    const rm = await ctr(["leases", "rm", "iso-lease"], B);
    assert.notEqual(rm.code, 0);
    assert.match(rm.stderr, /not found/);
    await ctrOk(["leases", "rm", "iso-lease"], A);
  });

  test("images: fetched in a, absent from b", async () => {
    const ref = `${tb.plain}/tiny/busybox:oci`;
    await ctrOk(["content", "fetch", "--plain-http", ref], A);
    assert.match((await ctrOk(["images", "ls", "-q"], A)).stdout, /busybox/);
    assert.doesNotMatch((await ctrOk(["images", "ls", "-q"], B)).stdout, /busybox/);
    const check = await ctr(["images", "check"], B);
    assert.doesNotMatch(check.stdout, /busybox/);
  });

  test("snapshots: keys, parents and walks are per namespace", async () => {
    const sn = (args: string[]) => ["snapshots", "--snapshotter", "native", ...args];
    await ctrOk(sn(["prepare", "iso-key"]), A);
    await ctrOk(sn(["commit", "iso-base", "iso-key"]), A);
    await ctrOk(sn(["prepare", "iso-child", "iso-base"]), A);
    assert.match((await ctrOk(sn(["ls"]), A)).stdout, /iso-child\s+iso-base\s+Active/);
    assert.doesNotMatch((await ctrOk(sn(["ls"]), B)).stdout, /iso-/);
    const parent = await ctr(sn(["prepare", "b-child", "iso-base"]), B);
    assert.notEqual(parent.code, 0, "a parent of a does not exist in b");
    assert.match(parent.stderr, /parent snapshot "iso-base" does not exist/);
    const info = await ctr(sn(["info", "iso-base"]), B);
    assert.notEqual(info.code, 0);
    // the same key in b is b's own snapshot
    await ctrOk(sn(["prepare", "iso-child"]), B);
    assert.match((await ctrOk(sn(["ls"]), B)).stdout, /iso-child\s+Active/);
    await ctrOk(sn(["rm", "iso-child"]), B);
    assert.match((await ctrOk(sn(["ls"]), A)).stdout, /iso-child\s+iso-base\s+Active/, "b's rm left a's key");
    await ctrOk(sn(["rm", "iso-child"]), A);
    await ctrOk(sn(["rm", "iso-base"]), A);
  });

  test("the embedded CLI and the daemon read each other's writes, namespace by namespace", async () => {
    const embedded = async (args: string[], ns: string, input?: string) => {
      const r = await tb.dist(["--namespace", ns, ...args], { root: d.root, input });
      assert.equal(r.code, 0, `dist ${args.join(" ")}: ${r.stderr}`);
      return r.stdout;
    };
    const data = "written by the embedded CLI\n";
    await embedded(["ingest", "--expected-digest", sha256(data), "cli-ref"], "cli-ns", data);
    assert.match((await ctrOk(["content", "ls", "-q"], { ns: "cli-ns" })).stdout, new RegExp(sha256(data)));
    assert.doesNotMatch((await ctrOk(["content", "ls", "-q"], { ns: "other" })).stdout, new RegExp(sha256(data)));
    const back = "written through the daemon\n";
    await ctrOk(["content", "ingest", "--expected-digest", sha256(back), "ctr-ref"], { ns: "cli-ns", input: back });
    assert.match(await embedded(["content", "ls", "-q"], "cli-ns"), new RegExp(sha256(back)));
    assert.doesNotMatch(await embedded(["content", "ls", "-q"], "default"), new RegExp(sha256(back)));
    await embedded(["snapshots", "--snapshotter", "native", "prepare", "cli-key"], "cli-ns");
    assert.match((await ctrOk(["snapshots", "--snapshotter", "native", "ls"], { ns: "cli-ns" })).stdout, /cli-key/);
    assert.match((await ctrOk(["namespaces", "ls", "-q"])).stdout, /cli-ns/);
    await ctrOk(["snapshots", "--snapshotter", "native", "rm", "cli-key"], { ns: "cli-ns" });
    assert.doesNotMatch(await embedded(["snapshots", "--snapshotter", "native", "ls"], "cli-ns"), /cli-key/);
  });
});

async function dist(args: string[], address: string, ns = "default") {
  const r = await tb.dist(["--address", address, "--namespace", ns, ...args], { root: null });
  assert.equal(r.code, 0, `dist ${args.join(" ")} failed: ${r.stderr}`);
  return r;
}

describe("ctr pull and mount with the overlayfs snapshotter", {
  skip: process.getuid?.() !== 0 && "overlay needs root",
}, () => {
  test("whiteouts land as overlay whiteouts in the upperdir; ctr images mount shows the merged tree", async () => {
    const ref = `${tb.plain}/edge/whiteouts:oci`;
    await ctrOk(["images", "pull", "--plain-http", ref], { ns: "overlay" });
    const target = mkdtempSync(join(tmpdir(), "dist-ctr-mnt-"));
    try {
      await ctrOk(["images", "mount", ref, target], { ns: "overlay" });
      try {
        assert.ok(!existsSync(join(target, "data", "remove-me.txt")), "the whiteout removed the file");
        assert.match(readFileSync(join(target, "data", "keep.txt"), "utf8"), /overwritten in layer B/);
        assert.ok(existsSync(join(target, "bin", "busybox")), "the base layer is there");
      } finally {
        await ctrOk(["images", "unmount", "--rm", target], { ns: "overlay" });
      }
    } finally {
      rmSync(target, { recursive: true, force: true });
    }
  });
});

describe("dist --address against dist daemon", () => {
  test("pull through the daemon; ctr sees the image complete and unpacked", async () => {
    const ref = `${tb.plain}/tiny/busybox:latest`;
    await dist(["pull", "--plain-http", ref], d.sock, "dist-client");
    const ls = await dist(["images", "ls"], d.sock, "dist-client");
    assert.match(ls.stdout, new RegExp(ref.replace(/[.]/g, "\\.")));
    const check = await ctrOk(["images", "check"], { ns: "dist-client" });
    assert.match(check.stdout, /complete \(2\/2\).*true/);
    // blobs are shared between namespaces; the manifest carries its GC labels
    const blobs = await dist(["content", "ls"], d.sock, "dist-client");
    const manifest = tb.images["tiny/busybox:latest"].digest;
    assert.match(blobs.stdout, new RegExp(`${manifest}\\s.*containerd.io/gc.ref.content.config=`));
  });
});

describe("dist --address against a real containerd", {
  skip: process.getuid?.() !== 0 && "containerd needs root",
}, () => {
  let containerd: Containerd;
  const cctr = async (args: string[]) => {
    const r = await containerd.ctr(args);
    assert.equal(r.code, 0, `ctr ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    containerd = await startContainerd(mkdtempSync(join(tmpdir(), "dist-containerd-")));
  });

  after(async () => {
    await containerd?.stop();
  });

  test("list, fetch and pull; what dist wrote survives containerd's garbage collection", async () => {
    const empty = await dist(["images", "ls"], containerd.sock);
    assert.equal(empty.stdout.trim().split("\n").length, 1, "only the header");
    const fetched = `${tb.plain}/tiny/busybox:oci`;
    await dist(["fetch", "--plain-http", fetched], containerd.sock);
    assert.match(await cctr(["images", "ls", "-q"]), new RegExp(fetched.replace(/[.]/g, "\\.")));
    const pulled = `${tb.plain}/tiny/busybox:latest`;
    const p = await dist(["pull", "--plain-http", pulled], containerd.sock);
    assert.match(p.stdout + p.stderr, /unpacking/);
    // a lease created and removed with --sync runs containerd's GC before it returns
    await cctr(["leases", "create", "--id", "gc-trigger"]);
    await cctr(["leases", "rm", "--sync", "gc-trigger"]);
    assert.doesNotMatch(await cctr(["leases", "ls", "-q"]), /dist-/, "dist released its lease");
    const check = await cctr(["images", "check"]);
    assert.match(check, new RegExp(`${pulled.replace(/[.]/g, "\\.")}\\s+\\S+\\s+\\S+\\s+complete \\(2/2\\).*true`));
    assert.match(await cctr(["snapshots", "ls"]), /sha256:[0-9a-f]{64}\s+Committed/);
    const blobs = await dist(["content", "ls", "-q"], containerd.sock);
    assert.equal(blobs.stdout.trim().split("\n").length, 3, blobs.stdout);
  });
});
