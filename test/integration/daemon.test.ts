/**
 * dist daemon under bad input and at its edges: malformed requests, writes at
 * a wrong offset, a client that disconnects mid-write (the ingest stays
 * resumable, also across a daemon restart), two clients on one ref, unknown
 * namespaces, a socket path that is live, stale, not a socket or not
 * writable, a root another daemon holds. The daemon must answer with the
 * right gRPC code and stay up.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import pino from "pino";
import { writeBlob } from "../../src/content/helpers.ts";
import type { Digest } from "../../src/digest.ts";
import { closeConnections, connect, RemoteContentStore } from "../../src/services/client/index.ts";
import { type Daemon, startDaemon } from "../../src/services/daemon.ts";
import { clientConstructor, SERVICES } from "../../src/services/proto.ts";
import { DIST, startDaemonProcess } from "../services/fixture.ts";
import { run } from "./fixtures/exec.ts";

const sha256 = (b: string | Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}` as Digest;

let tmp: string;
let d: Daemon;

// biome-ignore lint/suspicious/noExplicitAny: raw generic clients
type Raw = any;

function raw(sock: string, service: Parameters<typeof clientConstructor>[0]): Raw {
  const Ctor = clientConstructor(service);
  return new Ctor(`unix:${sock}`, grpc.credentials.createInsecure());
}

function md(ns = "default"): grpc.Metadata {
  const m = new grpc.Metadata();
  m.set("containerd-namespace", ns);
  return m;
}

function unary(
  client: Raw,
  method: string,
  req: unknown,
  ns = "default",
): Promise<{ err?: grpc.ServiceError; res?: Raw }> {
  return new Promise((resolve) => {
    client[method](req, md(ns), (err: grpc.ServiceError | null, res: Raw) => resolve(err ? { err } : { res }));
  });
}

/** A Write stream with one response per request. */
function writeStream(sock: string, ns = "default") {
  const c = raw(sock, "content");
  const call = c.Write(md(ns));
  const responses: Raw[] = [];
  const waiters: ((v: Raw) => void)[] = [];
  let error: grpc.ServiceError | undefined;
  call.on("data", (m: Raw) => {
    const w = waiters.shift();
    if (w) w(m);
    else responses.push(m);
  });
  call.on("error", (e: grpc.ServiceError) => {
    error = e;
    for (const w of waiters.splice(0)) w({ error: e });
  });
  return {
    call,
    async send(req: Raw): Promise<Raw> {
      if (error) return { error };
      call.write(req);
      if (responses.length) return responses.shift();
      return new Promise((r) => waiters.push(r));
    },
  };
}

async function alive(sock: string) {
  const r = await unary(raw(sock, "version"), "Version", {});
  assert.ok(r.res?.version.startsWith("dist"), "the daemon still answers");
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), "dist-daemon-"));
  d = await startDaemon({ root: join(tmp, "root"), address: join(tmp, "d.sock"), log: pino({ level: "silent" }) });
});

after(async () => {
  await closeConnections();
  await d?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe("malformed requests", () => {
  test("invalid digests, reads past the end, writes without a ref", async () => {
    const c = raw(d.address, "content");
    let r = await unary(c, "Info", { digest: "sha256:nothex" });
    assert.equal(r.err?.code, grpc.status.INVALID_ARGUMENT);
    assert.match(r.err!.details, /invalid digest "sha256:nothex"/);
    r = await unary(c, "Info", { digest: sha256("absent") });
    assert.equal(r.err?.code, grpc.status.NOT_FOUND);

    const w = writeStream(d.address);
    const res = await w.send({ action: "WRITE", data: Buffer.from("x") });
    assert.equal(res.error?.code, grpc.status.INVALID_ARGUMENT);
    assert.match(res.error.details, /first message must have a reference/);

    const store = new RemoteContentStore(connect(d.address));
    const wr = await store.writer({ ref: "small" });
    await wr.write(Buffer.from("0123456789"));
    await wr.commit(10, sha256("0123456789"));
    const read = raw(d.address, "content").Read({ digest: sha256("0123456789"), offset: 11, size: 0 }, md());
    const code = await new Promise((resolve) => {
      read.on("data", () => {});
      read.on("error", (e: grpc.ServiceError) => resolve(e.code));
      read.on("end", () => resolve("end"));
    });
    assert.equal(code, grpc.status.OUT_OF_RANGE);

    const img = raw(d.address, "images");
    r = await unary(img, "Create", { image: { name: "x" } });
    assert.equal(r.err?.code, grpc.status.INVALID_ARGUMENT);
    r = await unary(img, "Create", { image: { name: "", target: { media_type: "a", digest: sha256("a"), size: 1 } } });
    assert.equal(r.err?.code, grpc.status.INVALID_ARGUMENT);
    await alive(d.address);
  });

  test("bytes that are not a protobuf message", async () => {
    const Ctor = grpc.makeGenericClientConstructor(
      {
        Info: {
          path: `/${SERVICES.content}/Info`,
          requestStream: false,
          responseStream: false,
          requestSerialize: () => Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]),
          responseDeserialize: (b: Buffer) => b,
          requestDeserialize: (b: Buffer) => b,
          responseSerialize: (b: Buffer) => b,
        },
      },
      "Garbage",
    );
    const c: Raw = new Ctor(`unix:${d.address}`, grpc.credentials.createInsecure());
    const r = await unary(c, "Info", {});
    assert.ok(r.err, "garbage is refused");
    assert.notEqual(r.err.code, grpc.status.OK);
    await alive(d.address);
  });

  test("unknown and invalid namespaces", async () => {
    const img = raw(d.address, "images");
    let r = await unary(img, "List", { filters: [] }, "never-used");
    assert.deepEqual(r.res?.images, []);
    r = await unary(img, "Get", { name: "docker.io/library/busybox:latest" }, "never-used");
    assert.equal(r.err?.code, grpc.status.NOT_FOUND);
    r = await unary(raw(d.address, "namespaces"), "Get", { name: "never-used" });
    assert.equal(r.err?.code, grpc.status.NOT_FOUND);
    r = await unary(img, "List", { filters: [] }, "-bad name-");
    assert.equal(r.err?.code, grpc.status.INVALID_ARGUMENT);
    assert.match(r.err!.details, /namespace "-bad name-"/);
    const ns = raw(d.address, "namespaces");
    r = await unary(ns, "Delete", { name: "never-used" });
    assert.equal(r.err?.code, grpc.status.NOT_FOUND);
    const target = { media_type: "application/vnd.oci.image.index.v1+json", digest: sha256("i"), size: 1 };
    r = await unary(img, "Create", { image: { name: "busy", target } }, "busy-ns");
    assert.equal(r.err, undefined);
    r = await unary(ns, "Delete", { name: "busy-ns" });
    assert.equal(r.err?.code, grpc.status.FAILED_PRECONDITION);
    assert.match(r.err!.details, /namespace busy-ns must be empty, but it still has 1 images/);
    await unary(img, "Delete", { name: "busy" }, "busy-ns");
    r = await unary(ns, "Delete", { name: "busy-ns" });
    assert.equal(r.err, undefined);
    await alive(d.address);
  });

  test("a request without a namespace is refused as containerd refuses it; the namespaces service needs none", async () => {
    const none = (client: Raw, method: string, req: unknown) =>
      new Promise<{ err?: grpc.ServiceError; res?: Raw }>((resolve) => {
        client[method](req, new grpc.Metadata(), (err: grpc.ServiceError | null, res: Raw) =>
          resolve(err ? { err } : { res }),
        );
      });
    for (const [service, method, req] of [
      ["content", "Info", { digest: sha256("x") }],
      ["images", "List", { filters: [] }],
      ["leases", "List", { filters: [] }],
      ["snapshots", "Stat", { snapshotter: "native", key: "k" }],
    ] as const) {
      const r = await none(raw(d.address, service), method, req);
      assert.equal(r.err?.code, grpc.status.FAILED_PRECONDITION, `${service}.${method}`);
      assert.match(r.err!.details, /namespace is required/);
    }
    assert.equal((await none(raw(d.address, "namespaces"), "List", {})).err, undefined);
    await alive(d.address);
  });

  test("a repeated containerd-namespace header takes the first (newest) value, as containerd does", async () => {
    const m = new grpc.Metadata();
    m.add("containerd-namespace", "newest");
    m.add("containerd-namespace", "older");
    const leases = raw(d.address, "leases");
    const created = await new Promise<grpc.ServiceError | null>((resolve) =>
      leases.Create({ id: "twice", labels: {} }, m, (err: grpc.ServiceError | null) => resolve(err)),
    );
    assert.equal(created, null);
    assert.deepEqual(
      (await unary(leases, "List", { filters: [] }, "newest")).res?.leases.map((l: Raw) => l.id),
      ["twice"],
    );
    assert.deepEqual((await unary(leases, "List", { filters: [] }, "older")).res?.leases, []);
  });

  test("a write under a lease that does not exist is NotFound, and nothing is made", async () => {
    const m = md("leased");
    m.set("containerd-lease", "no-such-lease");
    const c = raw(d.address, "content");
    const call = c.Write(m);
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      call.on("error", resolve);
      call.write({ action: "STAT", ref: "under-lease" });
    });
    assert.equal(err.code, grpc.status.NOT_FOUND);
    assert.match(err.details, /lease no-such-lease does not exist/);
    assert.deepEqual((await unary(c, "ListStatuses", { filters: [] }, "leased")).res?.statuses, []);
    const sn = raw(d.address, "snapshots");
    const prep = await new Promise<grpc.ServiceError | null>((resolve) =>
      sn.Prepare({ snapshotter: "native", key: "k", parent: "" }, m, (e: grpc.ServiceError | null) => resolve(e)),
    );
    assert.equal(prep?.code, grpc.status.NOT_FOUND);
    const list: Raw[] = [];
    await new Promise<void>((resolve, reject) => {
      const s = sn.List({ snapshotter: "native", filters: [] }, md("leased"));
      s.on("data", (x: Raw) => list.push(...x.info));
      s.on("end", resolve);
      s.on("error", reject);
    });
    assert.deepEqual(list, []);
  });

  test("an unknown snapshotter and an unsupported diff", async () => {
    let r = await unary(raw(d.address, "snapshots"), "Stat", { snapshotter: "zfs", key: "k" });
    assert.equal(r.err?.code, grpc.status.INVALID_ARGUMENT);
    assert.match(r.err!.details, /snapshotter "zfs" is not loaded/);
    r = await unary(raw(d.address, "diff"), "Diff", { left: [], right: [] });
    assert.equal(r.err?.code, grpc.status.UNIMPLEMENTED);
    r = await unary(raw(d.address, "diff"), "Apply", {
      diff: { media_type: "application/vnd.oci.image.layer.v1.tar+gzip", digest: sha256("0123456789"), size: 10 },
      mounts: [{ type: "bind", source: "/etc", options: ["rw", "rbind"] }],
    });
    assert.equal(r.err?.code, grpc.status.PERMISSION_DENIED, "apply outside the daemon root is refused");
  });
});

describe("the Write protocol", () => {
  test("a write at a wrong offset is OutOfRange and the ingest is kept", async () => {
    const w = writeStream(d.address);
    let res = await w.send({ action: "STAT", ref: "offsets" });
    assert.equal(Number(res.offset), 0);
    res = await w.send({ action: "WRITE", offset: 0, data: Buffer.from("abc") });
    assert.equal(Number(res.offset), 3);
    res = await w.send({ action: "WRITE", offset: 10, data: Buffer.from("zzz") });
    assert.equal(res.error?.code, grpc.status.OUT_OF_RANGE);
    assert.match(res.error.details, /write @10 must occur at current offset 3/);
    const st = await unary(raw(d.address, "content"), "Status", { ref: "offsets" });
    assert.equal(Number(st.res?.status.offset), 3);
    await alive(d.address);
  });

  test("offset 0 on a started ingest restarts it", async () => {
    const w = writeStream(d.address);
    await w.send({ action: "STAT", ref: "restart" });
    await w.send({ action: "WRITE", offset: 0, data: Buffer.from("garbage") });
    const res = await w.send({
      action: "COMMIT",
      offset: 0,
      data: Buffer.from("good"),
      total: 4,
      expected: sha256("good"),
    });
    assert.equal(res.error, undefined);
    assert.equal(res.digest, sha256("good"));
    w.call.end();
  });

  test("a client that disconnects mid-write leaves a resumable ingest", async () => {
    const data = Buffer.alloc(3 << 20, 7);
    const dg = sha256(data);
    const w = writeStream(d.address);
    await w.send({ action: "STAT", ref: "disconnect", total: data.length, expected: dg });
    const res = await w.send({ action: "WRITE", offset: 0, data: data.subarray(0, 1 << 20) });
    assert.equal(Number(res.offset), 1 << 20);
    w.call.cancel();
    const store = new RemoteContentStore(connect(d.address));
    const elsewhere = new RemoteContentStore(connect(d.address, { namespace: "elsewhere" }));
    await assert.rejects(store.info(dg), { code: "NotFound" }, "nothing half-written is visible");
    assert.deepEqual(await elsewhere.listStatuses(), [], "nor is the ingest in another namespace");
    // the daemon releases the ref once it sees the cancellation
    const wr = await store.writer({ ref: "disconnect", total: data.length, expected: dg });
    assert.equal(wr.status().offset, 1 << 20, "resumes where the first client stopped");
    await wr.write(data.subarray(1 << 20));
    await wr.commit(data.length, dg);
    assert.equal((await store.info(dg)).size, data.length);
    const back = Buffer.alloc(16);
    assert.equal(await store.readAt(dg, back, (2 << 20) + 5), 16);
    assert.deepEqual(back, Buffer.alloc(16, 7));
  });

  test("two clients on one ref: the second waits while the first closes; a ref held on is Unavailable", async () => {
    const store = new RemoteContentStore(connect(d.address));
    const a = await store.writer({ ref: "shared-ref" });
    await a.write(Buffer.from("first-"));
    const held = writeStream(d.address);
    const started = Date.now();
    const res = await held.send({ action: "STAT", ref: "shared-ref" });
    assert.equal(res.error?.code, grpc.status.UNAVAILABLE, "a ref its writer keeps is busy");
    assert.ok(Date.now() - started >= 1500, "after waiting for it, as containerd's store does");
    // a writer that is closing: the next one gets the ref once it is released
    const w = writeStream(d.address);
    setTimeout(() => void a.close(), 200);
    const st = await w.send({ action: "STAT", ref: "shared-ref" });
    assert.equal(st.error, undefined);
    assert.equal(Number(st.offset), 6, "the second writer resumes after the first");
    w.call.end();
    const b = await store.writer({ ref: "shared-ref" });
    await b.write(Buffer.from("second"));
    await b.commit(12, sha256("first-second"));
    assert.equal((await store.info(sha256("first-second"))).size, 12);
  });

  test("writing content that exists is AlreadyExists, and the client treats it as done", async () => {
    const store = new RemoteContentStore(connect(d.address));
    // a gc.root: the daemon's collections after other tests' deletes keep it
    await writeBlob(store, "dup-first", Readable.from([Buffer.from("dup")]), {
      expected: sha256("dup"),
      labels: { "containerd.io/gc.root": "test" },
    });
    const w = writeStream(d.address);
    const res = await w.send({ action: "STAT", ref: "dup", expected: sha256("dup") });
    assert.equal(res.error?.code, grpc.status.ALREADY_EXISTS);
    await assert.rejects(store.writer({ ref: "dup", expected: sha256("dup") }), { code: "AlreadyExists" });
  });

  test("a commit with the wrong digest or size fails with FailedPrecondition and stores nothing", async () => {
    const store = new RemoteContentStore(connect(d.address));
    const wr = await store.writer({ ref: "wrong-digest" });
    await wr.write(Buffer.from("payload"));
    await assert.rejects(wr.commit(7, sha256("something else")), (err: Error & { code?: string }) => {
      assert.equal(err.code, "FailedPrecondition", "containerd's code");
      assert.match(err.message, /got digest sha256:\w+, expected sha256:/);
      return true;
    });
    await assert.rejects(store.info(sha256("payload")), { code: "NotFound" });
    // as containerd, the ingest stays (a client may resume it); a wrong size is refused the same way
    assert.equal((await store.status("wrong-digest")).offset, 7);
    const again = await store.writer({ ref: "wrong-digest" });
    await assert.rejects(again.commit(8), (err: Error & { code?: string }) => {
      assert.equal(err.code, "FailedPrecondition");
      assert.match(err.message, /got 7 bytes, expected 8/);
      return true;
    });
    await store.abort("wrong-digest");
    await assert.rejects(store.status("wrong-digest"), { code: "NotFound" });
    await alive(d.address);
  });
});

describe("start-up and shutdown", () => {
  test("a second daemon on the same root is refused", async () => {
    await assert.rejects(
      startDaemon({ root: d.root, address: join(tmp, "other.sock"), log: pino({ level: "silent" }) }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, "FailedPrecondition");
        assert.match(err.message, /another dist daemon \(pid \d+\) is already serving the root/);
        return true;
      },
    );
    assert.ok(!existsSync(join(tmp, "other.sock")));
  });

  test("a live socket is refused, a stale one replaced, a file refused", async () => {
    await assert.rejects(
      startDaemon({ root: join(tmp, "root2"), address: d.address, log: pino({ level: "silent" }) }),
      /another server is already answering on it/,
    );
    await alive(d.address);
    const stale = join(tmp, "stale.sock");
    execFileSync("python3", ["-c", `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(stale)})`]);
    assert.ok(existsSync(stale));
    const d2 = await startDaemon({ root: join(tmp, "root3"), address: stale, log: pino({ level: "silent" }) });
    await alive(stale);
    await d2.stop();
    assert.ok(!existsSync(stale), "the socket is removed at stop");
    const file = join(tmp, "plain-file");
    writeFileSync(file, "not a socket");
    await assert.rejects(
      startDaemon({ root: join(tmp, "root4"), address: file, log: pino({ level: "silent" }) }),
      /exists and is not a socket/,
    );
  });

  test("a socket directory that is not writable", {
    skip: process.getuid?.() !== 0 && "needs root (runuser)",
  }, async () => {
    chmodSync(tmp, 0o711);
    const root = join(tmp, "nobody-root");
    mkdirSync(root);
    chownSync(root, 65534, 65534);
    const dir = join(tmp, "root-only");
    mkdirSync(dir, { mode: 0o755 });
    const r = await run(
      "runuser",
      ["-u", "nobody", "--", DIST, "--root", root, "daemon", "--address", join(dir, "d.sock")],
      {
        timeoutMs: 60_000,
      },
    );
    assert.equal(r.code, 1, r.stderr.toString());
    assert.match(
      r.stderr.toString(),
      /dist: cannot create the socket .*d\.sock: directory .*root-only is not writable/,
    );
  });

  test("a non-root daemon serves its own private root and socket", {
    skip: process.getuid?.() !== 0 && "needs root (runuser)",
  }, async () => {
    chmodSync(tmp, 0o711);
    const home = join(tmp, "nobody-home");
    mkdirSync(home);
    chownSync(home, 65534, 65534);
    const sock = join(home, "run", "dist.sock");
    const child = spawn(
      "runuser",
      ["-u", "nobody", "--", DIST, "--root", join(home, "root"), "daemon", "--address", sock],
      {
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    let err = "";
    child.stderr?.on("data", (b: Buffer) => {
      err += b.toString();
    });
    const exited = new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    try {
      for (let i = 0; !existsSync(sock); i++) {
        assert.ok(i < 300 && child.exitCode === null, `the daemon did not start: ${err}`);
        await sleep(100);
      }
      assert.equal(statSync(sock).uid, 65534);
      assert.equal(statSync(sock).mode & 0o777, 0o600, "nobody's alone: its primary group may be shared");
      const r = await run("ctr", ["--address", sock, "content", "ingest", "as-nobody"], { input: "nobody's bytes" });
      assert.equal(r.code, 0, r.stderr.toString());
      const ls = await run("ctr", ["--address", sock, "content", "ls", "-q"]);
      assert.match(ls.stdout.toString(), new RegExp(sha256("nobody's bytes")));
      assert.equal(statSync(join(home, "root", "content")).uid, 65534, "the store belongs to the daemon's user");
      assert.equal(statSync(join(home, "root")).mode & 0o777, 0o700, "and is private to it");
      // no overlay for a non-root daemon: dist picks the snapshotter the daemon has
      const sn = await run(DIST, ["--address", sock, "snapshots", "ls"]);
      assert.equal(sn.code, 0, sn.stderr.toString());
      assert.match(sn.stdout.toString(), /KEY/);
    } finally {
      child.kill("SIGTERM"); // runuser passes it on to the daemon
      await exited;
      assert.match(err, /"msg":"stopped"/);
      assert.ok(!existsSync(sock), "the socket is removed");
    }
  });

  test("SIGTERM mid-write: clean exit, socket removed, the ingest resumes after a restart", async () => {
    const root = join(tmp, "sigterm-root");
    const sock = join(tmp, "sigterm.sock");
    let p = await startDaemonProcess(root, sock);
    const data = Buffer.alloc(2 << 20, 3);
    const dg = sha256(data);
    const w = writeStream(sock);
    await w.send({ action: "STAT", ref: "sigterm", total: data.length, expected: dg });
    const res = await w.send({ action: "WRITE", offset: 0, data: data.subarray(0, 1 << 20) });
    assert.equal(Number(res.offset), 1 << 20);
    assert.equal(await p.stop("SIGTERM"), 0, p.logs());
    assert.ok(!existsSync(sock));
    assert.match(p.logs(), /"msg":"stopped"/);
    p = await startDaemonProcess(root, sock);
    try {
      const conn = connect(sock);
      const store = new RemoteContentStore(conn);
      const wr = await store.writer({ ref: "sigterm", total: data.length, expected: dg });
      assert.equal(wr.status().offset, 1 << 20);
      await wr.write(data.subarray(1 << 20));
      await wr.commit(data.length, dg);
      assert.equal((await store.info(dg)).size, data.length);
      await conn.close();
    } finally {
      assert.equal(await p.stop("SIGINT"), 0);
    }
  });
});
