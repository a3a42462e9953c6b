import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { closeAllDatabases } from "../../src/metadata/db.ts";
import { Metadata } from "../../src/metadata/metadata.ts";

const tmp = mkdtempSync(join(tmpdir(), "dist-leases-"));
after(() => {
  closeAllDatabases();
  rmSync(tmp, { recursive: true, force: true });
});

describe("lease manager", () => {
  const md = new Metadata(tmp);

  it("creates, lists and deletes leases per namespace", () => {
    const a = md.leases("a");
    const l = a.create("l1", { owner: "test" });
    assert.equal(l.id, "l1");
    assert.deepEqual(l.labels, { owner: "test" });
    assert.throws(() => a.create("l1"), { code: "AlreadyExists" });
    assert.deepEqual(
      a.list().map((x) => [x.id, x.labels]),
      [["l1", { owner: "test" }]],
    );
    assert.deepEqual(md.leases("b").list(), [], "another namespace never sees it");
    assert.throws(() => md.leases("b").delete("l1"), { code: "NotFound" });
    a.delete("l1");
    assert.deepEqual(a.list(), []);
    assert.throws(() => a.delete("l1"), { code: "NotFound", message: "lease l1: not found" });
  });

  it("checks lease ids", () => {
    assert.throws(() => md.leases("a").create(""), { code: "InvalidArgument" });
    assert.throws(() => md.leases("a").create("a\nb"), { code: "InvalidArgument" });
    assert.equal(md.leases("a").create("/mnt/path with spaces").id, "/mnt/path with spaces");
  });

  it("holds resources of the kinds containerd accepts, gone with their lease", () => {
    const leases = md.leases("r");
    leases.create("hold");
    leases.addResource("hold", { type: "content", id: "sha256:aa" });
    leases.addResource("hold", { type: "snapshots/overlayfs", id: "k" });
    leases.addResource("hold", { type: "content", id: "sha256:aa" });
    assert.deepEqual(leases.listResources("hold"), [
      { id: "sha256:aa", type: "content" },
      { id: "k", type: "snapshots/overlayfs" },
    ]);
    assert.throws(() => leases.addResource("hold", { type: "images", id: "x" }), { code: "InvalidArgument" });
    assert.throws(() => leases.addResource("hold", { type: "content", id: "" }), { code: "InvalidArgument" });
    assert.throws(() => leases.addResource("missing", { type: "content", id: "x" }), { code: "NotFound" });
    leases.deleteResource("hold", { type: "content", id: "sha256:aa" });
    assert.deepEqual(leases.listResources("hold"), [{ id: "k", type: "snapshots/overlayfs" }]);
    leases.delete("hold");
    leases.create("hold");
    assert.deepEqual(leases.listResources("hold"), [], "a lease's resources go with it");
  });
});
