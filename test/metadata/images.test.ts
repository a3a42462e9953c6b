import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { digestOf } from "../../src/digest.ts";
import { tagImage } from "../../src/images/tag.ts";
import { closeAllDatabases } from "../../src/metadata/db.ts";
import { openSqliteImageStore } from "../../src/metadata/metadata.ts";

const root = mkdtempSync(join(tmpdir(), "dist-images-"));
after(() => {
  closeAllDatabases();
  rmSync(root, { recursive: true, force: true });
});

const target = (s: string) => ({
  mediaType: "application/vnd.oci.image.index.v1+json",
  digest: digestOf(s),
  size: s.length,
  annotations: { "org.opencontainers.image.ref.name": s },
});

describe("SqliteImageStore", () => {
  it("creates, gets, lists, updates, puts and deletes", async () => {
    const s = openSqliteImageStore(root, "crud");
    const created = await s.create({ name: "docker.io/library/redis:latest", target: target("a"), labels: { x: "1" } });
    assert.deepEqual(created.target, target("a"));
    assert.equal(created.createdAt.getTime(), created.updatedAt.getTime());
    await assert.rejects(s.create({ name: "docker.io/library/redis:latest", target: target("b"), labels: {} }), {
      code: "AlreadyExists",
    });
    const got = await s.get("docker.io/library/redis:latest");
    assert.deepEqual(got, created);

    await new Promise((r) => setTimeout(r, 5));
    const upd = await s.update({ name: "docker.io/library/redis:latest", target: target("b"), labels: { y: "2" } }, [
      "labels.y",
    ]);
    assert.deepEqual(upd.target, target("a"), "only the named field changes");
    assert.deepEqual(upd.labels, { x: "1", y: "2" });
    assert.equal(upd.createdAt.getTime(), created.createdAt.getTime());
    assert.ok(upd.updatedAt.getTime() > created.updatedAt.getTime());

    const replaced = await s.update({ name: "docker.io/library/redis:latest", target: target("b"), labels: {} });
    assert.deepEqual(replaced.target, target("b"));
    assert.deepEqual(replaced.labels, {});
    await assert.rejects(s.update({ name: "nope", target: target("b"), labels: {} }), { code: "NotFound" });

    await s.put({ name: "a/b:c", target: target("c"), labels: {} });
    const put2 = await s.put({ name: "a/b:c", target: target("d"), labels: {} });
    assert.deepEqual(put2.target, target("d"));
    assert.deepEqual(
      (await s.list()).map((i) => i.name),
      ["a/b:c", "docker.io/library/redis:latest"],
    );
    assert.deepEqual(
      (await s.list({ names: ["a/b:c"] })).map((i) => i.name),
      ["a/b:c"],
    );

    await s.delete("a/b:c");
    await assert.rejects(s.get("a/b:c"), { code: "NotFound" });
    await assert.rejects(s.delete("a/b:c"), { code: "NotFound" });
  });

  it("keeps namespaces apart", async () => {
    const a = openSqliteImageStore(root, "ns-a");
    const b = openSqliteImageStore(root, "ns-b");
    await a.create({ name: "x", target: target("x"), labels: {} });
    await b.create({ name: "x", target: target("y"), labels: {} });
    assert.deepEqual((await a.get("x")).target, target("x"));
    assert.deepEqual((await b.get("x")).target, target("y"));
    await a.delete("x");
    assert.deepEqual(
      (await b.list()).map((i) => i.name),
      ["x"],
    );
    assert.deepEqual(await a.list(), []);
  });

  it("validates targets and names", async () => {
    const s = openSqliteImageStore(root, "valid");
    await assert.rejects(s.create({ name: "", target: target("x"), labels: {} }), { code: "InvalidArgument" });
    await assert.rejects(
      s.create({ name: "n", target: { ...target("x"), digest: "sha256:bad" as `${string}:${string}` }, labels: {} }),
      { code: "InvalidArgument" },
    );
    await assert.rejects(s.create({ name: "n", target: { ...target("x"), size: -1 }, labels: {} }), {
      code: "InvalidArgument",
    });
  });

  it("tags: a new name for the same target; refuses to overwrite without force", async () => {
    const s = openSqliteImageStore(root, "tags");
    await s.create({ name: "src", target: target("s"), labels: { l: "v" } });
    await s.create({ name: "other", target: target("o"), labels: {} });
    const t = await tagImage(s, "src", "dst");
    assert.deepEqual(t.target, target("s"));
    assert.deepEqual(t.labels, { l: "v" });
    await assert.rejects(tagImage(s, "src", "other"), /already exists.*--force/);
    assert.deepEqual((await tagImage(s, "src", "other", { force: true })).target, target("s"));
    await assert.rejects(tagImage(s, "missing", "x"), { code: "NotFound" });
  });
});
