import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { digestOf } from "../../src/digest.ts";
import { newImageName, storedName } from "../../src/images/names.ts";
import { closeAllDatabases } from "../../src/metadata/db.ts";
import { openSqliteImageStore } from "../../src/metadata/metadata.ts";

const root = mkdtempSync(join(tmpdir(), "dist-names-"));
after(() => {
  closeAllDatabases();
  rmSync(root, { recursive: true, force: true });
});

const target = { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: digestOf("m"), size: 1 };

describe("image names", () => {
  const store = openSqliteImageStore(root, "names");

  it("finds a record under the name typed, else under its normalised form", async () => {
    await store.create({ name: "docker.io/library/redis:latest", target, labels: {} });
    await store.create({ name: "redis-as-typed", target, labels: {} });
    assert.equal(await storedName(store, "redis"), "docker.io/library/redis:latest");
    assert.equal(await storedName(store, "docker.io/library/redis:latest"), "docker.io/library/redis:latest");
    assert.equal(await storedName(store, "redis-as-typed"), "redis-as-typed");
  });

  it("names what was typed when neither is there", async () => {
    await assert.rejects(storedName(store, "busybox"), { code: "NotFound", message: /"busybox"/ });
    await assert.rejects(storedName(store, "Not A Reference"), { code: "NotFound", message: /"Not A Reference"/ });
  });

  it("normalises new names that are references, keeps others", () => {
    assert.equal(newImageName("redis:7"), "docker.io/library/redis:7");
    assert.equal(newImageName("Not A Reference"), "Not A Reference");
  });
});
