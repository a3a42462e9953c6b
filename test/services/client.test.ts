/**
 * The client adapters (content Store, ImageStore, Snapshotter) against an
 * in-process dist daemon: the same behaviour and error kinds as the embedded
 * stores, through the socket.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { status } from "@grpc/grpc-js";
import pino from "pino";
import type { Digest } from "../../src/digest.ts";
import { AlreadyExistsError, DistError, NotFoundError } from "../../src/errors.ts";
import {
  type Connection,
  connect,
  RemoteContentStore,
  RemoteImageStore,
  RemoteSnapshotter,
} from "../../src/services/client/index.ts";
import { type Daemon, startDaemon } from "../../src/services/daemon.ts";
import { fromGrpcError, toGrpcStatus } from "../../src/services/errors.ts";

const sha = (s: string | Buffer) => `sha256:${createHash("sha256").update(s).digest("hex")}` as Digest;

let tmp: string;
let d: Daemon;
let conn: Connection;
let content: RemoteContentStore;

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), "dist-client-"));
  // these tests write blobs nothing references and read them back: a collection scheduled by
  // another test's delete would take them between the calls (containerd's would too)
  d = await startDaemon({
    root: join(tmp, "root"),
    address: join(tmp, "d.sock"),
    log: pino({ level: "silent" }),
    gcDelayMs: false,
  });
  conn = connect(d.address, { namespace: "client-test" });
  content = new RemoteContentStore(conn);
});

after(async () => {
  await conn?.close();
  await d?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

async function put(data: string, labels?: Record<string, string>): Promise<Digest> {
  const w = await content.writer({ ref: `put-${sha(data)}`, total: data.length, expected: sha(data) });
  await w.write(Buffer.from(data));
  assert.equal(w.digest(), sha(data));
  await w.commit(data.length, sha(data), labels ? { labels } : undefined);
  return sha(data);
}

test("error kinds map one to one onto gRPC codes and back", () => {
  for (const code of [
    "NotFound",
    "AlreadyExists",
    "FailedPrecondition",
    "InvalidArgument",
    "OutOfRange",
    "Unavailable",
  ]) {
    const st = toGrpcStatus(new DistError(code as never, "m"));
    const back = fromGrpcError({ code: st.code, details: "m" });
    assert.equal((back as DistError).code, code);
  }
  assert.equal(toGrpcStatus(new NotFoundError("x")).code, status.NOT_FOUND);
  assert.ok(fromGrpcError({ code: status.ALREADY_EXISTS, details: "x" }) instanceof AlreadyExistsError);
});

test("content: write, info, read ranges, readAt, labels, walk filters, delete", async () => {
  const a = await put("alpha content", { "dist.test/kind": "a" });
  const b = await put("beta content");
  const info = await content.info(a);
  assert.equal(info.size, 13);
  assert.equal(info.labels["dist.test/kind"], "a");
  const chunks: Buffer[] = [];
  for await (const c of await content.openRead(a, { offset: 6, length: 3 })) chunks.push(c as Buffer);
  assert.equal(Buffer.concat(chunks).toString(), "con");
  const buf = Buffer.alloc(4);
  assert.equal(await content.readAt(b, buf, 5), 4);
  assert.equal(buf.toString(), "cont");
  assert.equal(await content.readAt(b, buf, 12), 0);
  await assert.rejects(content.openRead(a, { offset: 100 }), { code: "OutOfRange" });

  await content.update(b, { "dist.test/kind": "b", other: "x" }, ["labels.dist.test/kind", "labels.other"]);
  const seen: string[] = [];
  await content.walk((i) => void seen.push(i.digest), { labels: ["dist.test/kind=b"] });
  assert.deepEqual(seen, [b]);
  seen.length = 0;
  await content.walk((i) => void seen.push(i.digest), { digestPrefixes: [a.slice(0, 12)] });
  assert.deepEqual(seen, [a]);
  seen.length = 0;
  await content.walk((i) => void seen.push(i.digest), { digestPrefixes: [b.slice(7, 15)] });
  assert.deepEqual(seen, [b], "a bare hex prefix");
  const none: Buffer[] = [];
  for await (const c of await content.openRead(a, { offset: 2, length: 0 })) none.push(c as Buffer);
  assert.equal(Buffer.concat(none).length, 0);
  await content.update(b, {}, ["labels.other"]);
  assert.equal((await content.info(b)).labels.other, undefined);

  await content.delete(a);
  await assert.rejects(content.info(a), NotFoundError);
  await assert.rejects(content.delete(a), { code: "NotFound" });
  await assert.rejects(content.info("sha256:zz" as Digest), { code: "InvalidArgument" });
});

test("content: ingests are listed, resumed, restarted and aborted", async () => {
  const w = await content.writer({ ref: "layer-resume", total: 10 });
  await w.write(Buffer.from("01234"));
  await w.close();
  const [st] = await content.listStatuses({ refPrefixes: ["layer-"] });
  assert.equal(st.ref, "layer-resume");
  assert.equal(st.offset, 5);
  assert.equal((await content.status("layer-resume")).total, 10);

  const again = await content.writer({ ref: "layer-resume", total: 10 });
  assert.equal(again.status().offset, 5);
  await again.truncate(0);
  await again.write(Buffer.from("abcdefghij"));
  await again.commit(10, sha("abcdefghij"));
  assert.equal((await content.info(sha("abcdefghij"))).size, 10);

  const x = await content.writer({ ref: "to-abort" });
  await x.write(Buffer.from("zz"));
  await x.close();
  await content.abort("to-abort");
  await assert.rejects(content.status("to-abort"), { code: "NotFound" });
  await assert.rejects(content.abort("to-abort"), { code: "NotFound" });
});

test("images: create, get, list, update, put, delete; labels reach the tree's children", async () => {
  const images = new RemoteImageStore(conn);
  const config = await put('{"rootfs":{"type":"layers","diff_ids":[]}}');
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: config, size: 43 },
    layers: [],
  });
  const m = await put(manifest);
  const target = { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: m, size: manifest.length };
  const created = await images.create({ name: "example.com/a:1", target, labels: { k: "v" } });
  assert.equal(created.target.digest, m);
  assert.equal((await content.info(m)).labels["containerd.io/gc.ref.content.config"], config);
  await assert.rejects(images.create({ name: "example.com/a:1", target, labels: {} }), { code: "AlreadyExists" });
  assert.equal((await images.get("example.com/a:1")).labels.k, "v");
  await images.put({ name: "example.com/b:1", target, labels: {} });
  assert.deepEqual(
    (await images.list()).map((i) => i.name),
    ["example.com/a:1", "example.com/b:1"],
  );
  assert.deepEqual(
    (await images.list({ names: ["example.com/b:1"] })).map((i) => i.name),
    ["example.com/b:1"],
  );
  const upd = await images.update({ name: "example.com/a:1", target, labels: { k: "w" } }, ["labels.k"]);
  assert.equal(upd.labels.k, "w");
  await images.delete("example.com/a:1");
  await assert.rejects(images.get("example.com/a:1"), { code: "NotFound" });
  await assert.rejects(images.delete("example.com/a:1"), { code: "NotFound" });
  // namespaces are separate
  const other = new RemoteImageStore(connect(d.address, { namespace: "elsewhere" }));
  assert.deepEqual(await other.list(), []);
});

test("snapshots (native): prepare, commit, stat, view, usage, walk, remove", async () => {
  const sn = new RemoteSnapshotter(conn, "native");
  const mounts = await sn.prepare("work", undefined, { labels: { l: "1" } });
  assert.equal(mounts[0].type, "bind");
  assert.deepEqual(await sn.mounts("work"), mounts);
  await sn.commit("base", "work");
  await assert.rejects(sn.stat("work"), { code: "NotFound" });
  const info = await sn.stat("base");
  assert.equal(info.kind, "committed");
  await sn.view("look", "base");
  assert.equal((await sn.stat("look")).kind, "view");
  assert.equal((await sn.stat("look")).parent, "base");
  await assert.rejects(sn.prepare("look", "base"), { code: "AlreadyExists" });
  await assert.rejects(sn.remove("base"), { code: "FailedPrecondition" });
  const u = await sn.usage("base");
  assert.ok(u.inodes >= 1);
  const names: string[] = [];
  await sn.walk((i) => void names.push(i.name));
  assert.deepEqual(names.sort(), ["base", "look"]);
  const upd = await sn.update({ name: "base", labels: { x: "y" } }, ["labels.x"]);
  assert.equal(upd.labels.x, "y");
  await sn.remove("look");
  await sn.remove("base");
  await assert.rejects(sn.stat("base"), { code: "NotFound" });
});

test("a dead socket fails with Unavailable within the connect timeout", async () => {
  const c = connect(join(tmp, "nobody-here.sock"), { connectTimeout: 300 });
  await assert.rejects(new RemoteImageStore(c).list(), (err: Error & { code?: string }) => {
    assert.equal(err.code, "Unavailable");
    assert.match(err.message, /cannot connect to the daemon at .*nobody-here\.sock/);
    return true;
  });
  await c.close();
});
