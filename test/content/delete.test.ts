import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { deleteBlobs } from "../../src/content/delete.ts";
import { digestOf } from "../../src/digest.ts";
import { closeAllDatabases } from "../../src/metadata/db.ts";
import { namespacedContentStore } from "../../src/metadata/metadata.ts";

const tmp = mkdtempSync(join(tmpdir(), "dist-delete-"));
after(() => {
  closeAllDatabases();
  rmSync(tmp, { recursive: true, force: true });
});

describe("deleteBlobs", () => {
  it("deletes what it can and reports each failure, in order", async () => {
    const store = namespacedContentStore(tmp);
    const a = digestOf("a");
    const b = digestOf("b");
    for (const s of ["a", "b"]) {
      const w = await store.writer({ ref: `ref-${s}` });
      await w.write(Buffer.from(s));
      await w.commit(1, digestOf(s));
    }
    const events: string[] = [];
    await deleteBlobs(store, [a, "sha256:nope", digestOf("missing"), b], {
      onDeleted: (d) => events.push(`deleted ${d}`),
      onError: (d, err) => events.push(`${d}: ${(err as { code?: string }).code}`),
    });
    assert.deepEqual(events, [
      `deleted ${a}`,
      "sha256:nope: InvalidArgument",
      `${digestOf("missing")}: NotFound`,
      `deleted ${b}`,
    ]);
    await assert.rejects(store.info(a), { code: "NotFound" });
    await assert.rejects(store.info(b), { code: "NotFound" });
  });
});
