import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { digestOf } from "../../src/digest.ts";
import { closeAllDatabases } from "../../src/metadata/db.ts";
import { applyLabelMask } from "../../src/metadata/labels.ts";
import { Metadata } from "../../src/metadata/metadata.ts";

const tmp = mkdtempSync(join(tmpdir(), "dist-namespaces-"));
after(() => {
  closeAllDatabases();
  rmSync(tmp, { recursive: true, force: true });
});

let n = 0;
const fresh = () => new Metadata(join(tmp, `root${n++}`));

describe("namespace store", () => {
  it("creates, gets, lists, updates labels and deletes", () => {
    const { namespaces } = fresh();
    assert.deepEqual(namespaces.create({ name: "b", labels: { team: "dist" } }), {
      name: "b",
      labels: { team: "dist" },
    });
    assert.throws(() => namespaces.create({ name: "b", labels: {} }), { code: "AlreadyExists" });
    namespaces.create({ name: "a", labels: {} });
    assert.deepEqual(
      namespaces.list().map((x) => x.name),
      ["a", "b"],
    );
    assert.deepEqual(namespaces.update({ name: "b", labels: { owner: "me" } }, ["labels.owner"]).labels, {
      team: "dist",
      owner: "me",
    });
    assert.deepEqual(namespaces.get("b").labels, { team: "dist", owner: "me" });
    namespaces.delete("b");
    assert.throws(() => namespaces.get("b"), { code: "NotFound" });
    assert.throws(() => namespaces.delete("b"), { code: "NotFound" });
  });

  it("ensure records a namespace once and keeps its labels", () => {
    const { namespaces } = fresh();
    namespaces.ensure("used");
    assert.deepEqual(namespaces.get("used"), { name: "used", labels: {} });
    namespaces.update({ name: "used", labels: { k: "v" } }, []);
    namespaces.ensure("used");
    assert.deepEqual(namespaces.get("used").labels, { k: "v" });
  });

  it("refuses to delete a namespace while it holds anything, naming what", async () => {
    const md = fresh();
    md.namespaces.create({ name: "busy", labels: {} });
    await md.images("busy").create({
      name: "x",
      target: { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: digestOf("m"), size: 1 },
      labels: {},
    });
    md.leases("busy").create("l1");
    const content = md.content("busy");
    const w = await content.writer({ ref: "blob" });
    await w.write(Buffer.from("b"));
    await w.commit(1, digestOf("b"));
    await (await content.writer({ ref: "half" })).close();
    const sn = md.snapshotter("busy", "native");
    await sn.prepare("k");
    assert.throws(() => md.namespaces.delete("busy"), {
      code: "FailedPrecondition",
      message: "namespace busy must be empty, but it still has 1 leases, 1 images, 1 blobs, 1 ingests, 1 snapshots",
    });
    md.leases("busy").delete("l1");
    await md.images("busy").delete("x");
    await content.delete(digestOf("b"));
    await content.abort("half");
    assert.throws(() => md.namespaces.delete("busy"), { message: /still has 1 snapshots$/ });
    await sn.remove("k");
    md.namespaces.delete("busy");
    assert.deepEqual(md.namespaces.list(), []);
  });

  it("is created by a write into it, and its name is checked", async () => {
    const md = fresh();
    await md.images("made-by-write").create({
      name: "x",
      target: { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: digestOf("m"), size: 1 },
      labels: {},
    });
    assert.deepEqual(
      md.namespaces.list().map((n) => n.name),
      ["made-by-write"],
    );
    for (const bad of ["", "a b", "-a", "a..b", "x".repeat(77), "a/b"]) {
      assert.throws(() => md.content(bad), { code: "InvalidArgument" }, bad);
      assert.throws(() => md.namespaces.create({ name: bad, labels: {} }), { code: "InvalidArgument" }, bad);
    }
  });
});

describe("applyLabelMask", () => {
  const cur = { a: "1", b: "2" };
  it("replaces all without paths or with labels", () => {
    assert.deepEqual(applyLabelMask(cur, { c: "3" }, [], "x"), { c: "3" });
    assert.deepEqual(applyLabelMask(cur, { c: "3" }, ["labels"], "x"), { c: "3" });
  });
  it("sets and removes single keys", () => {
    assert.deepEqual(applyLabelMask(cur, { a: "9", b: "" }, ["labels.a", "labels.b"], "x"), { a: "9" });
  });
  it("refuses other fields", () => {
    assert.throws(() => applyLabelMask(cur, {}, ["name"], "namespace n"), {
      code: "InvalidArgument",
      message: 'namespace n: cannot update field "name"',
    });
  });
});
