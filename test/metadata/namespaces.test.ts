import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { digestOf } from "../../src/digest.ts";
import { closeAllDatabases } from "../../src/metadata/db.ts";
import { Metadata } from "../../src/metadata/metadata.ts";
import { applyLabelMask } from "../../src/metadata/namespaces.ts";

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

  it("refuses to delete a namespace holding leases, then images", async () => {
    const md = fresh();
    md.namespaces.create({ name: "busy", labels: {} });
    await md.images("busy").create({
      name: "x",
      target: { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: digestOf("m"), size: 1 },
      labels: {},
    });
    md.leases("busy").create("l1");
    assert.throws(() => md.namespaces.delete("busy"), {
      code: "FailedPrecondition",
      message: "namespace busy must be empty, but it still has 1 leases",
    });
    md.leases("busy").delete("l1");
    assert.throws(() => md.namespaces.delete("busy"), { message: /still has 1 images$/ });
    await md.images("busy").delete("x");
    md.namespaces.delete("busy");
    assert.deepEqual(md.namespaces.list(), []);
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
