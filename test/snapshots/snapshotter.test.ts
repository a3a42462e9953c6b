import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { closeAllDatabases } from "../../src/metadata/db.ts";
import { openSnapshotterAt } from "../../src/metadata/metadata.ts";
import type { NamespacedSnapshotter } from "../../src/metadata/snapshots.ts";
import { mountAll, unmount } from "../../src/snapshots/mount.ts";
import { overlaySupported } from "../../src/snapshots/open.ts";
import type { Mount } from "../../src/snapshots/snapshotter.ts";

const tmp = mkdtempSync(join(tmpdir(), "dist-snap-test-"));
after(() => {
  closeAllDatabases();
  rmSync(tmp, { recursive: true, force: true });
});

const isRoot = process.getuid?.() === 0;
const overlayOk = isRoot && overlaySupported(join(tmp, "probe"));

/** The directory an active snapshot's writes go to, read from its mounts. */
function upper(mounts: Mount[]): string {
  const m = mounts[0];
  if (m.type === "bind") return m.source;
  const u = m.options.find((o) => o.startsWith("upperdir="));
  assert.ok(u, "overlay mount has an upperdir");
  return u.slice("upperdir=".length);
}

for (const driver of ["native", "overlay"] as const) {
  describe(`${driver} snapshotter`, { skip: driver === "overlay" && !overlayOk && "needs root and overlayfs" }, () => {
    let sn: NamespacedSnapshotter;
    test("open", () => {
      sn = openSnapshotterAt(join(tmp, driver), driver);
      assert.equal(sn.name, driver);
    });

    test("prepare, write, commit, then a child sees the parent's files", async () => {
      const m = await sn.prepare("k1");
      assert.equal(m[0].type, "bind");
      writeFileSync(join(upper(m), "a.txt"), "from base");
      await sn.commit("base", "k1", { labels: { x: "1" } });
      const st = await sn.stat("base");
      assert.equal(st.kind, "committed");
      assert.deepEqual(st.labels, { x: "1" });
      await assert.rejects(sn.stat("k1"), { code: "NotFound" });

      const m2 = await sn.prepare("k2", "base");
      if (driver === "native") {
        assert.equal(readFileSync(join(upper(m2), "a.txt"), "utf8"), "from base");
      } else {
        assert.equal(m2[0].type, "overlay");
        assert.ok(m2[0].options.some((o) => o.startsWith("lowerdir=") && o.endsWith("/fs")));
      }
      assert.equal((await sn.stat("k2")).parent, "base");
      assert.equal((await sn.stat("k2")).kind, "active");
    });

    test("rules: parent must be committed, keys unique, views not committable, no removal with children", async () => {
      await assert.rejects(sn.prepare("k3", "k2"), { code: "FailedPrecondition" });
      await assert.rejects(sn.prepare("k3", "missing"), { code: "NotFound" });
      await assert.rejects(sn.prepare("k2", "base"), { code: "AlreadyExists" });
      await assert.rejects(sn.prepare("base"), { code: "AlreadyExists" });
      await sn.view("v1", "base");
      assert.equal((await sn.stat("v1")).kind, "view");
      await assert.rejects(sn.commit("c-from-view", "v1"), { code: "FailedPrecondition" });
      await assert.rejects(sn.commit("base", "k2"), { code: "AlreadyExists" });
      await assert.rejects(sn.commit("x", "base"), { code: "FailedPrecondition" });
      await assert.rejects(sn.remove("base"), { code: "FailedPrecondition" });
      await assert.rejects(sn.mounts("base"), { code: "FailedPrecondition" });
      await assert.rejects(sn.remove("nope"), { code: "NotFound" });
    });

    test("mounts, usage and walk", async () => {
      const m = await sn.mounts("v1");
      assert.ok(m[0].options.includes("ro"));
      const u = await sn.usage("base");
      assert.ok(u.inodes >= 2 && u.size > 0, JSON.stringify(u));
      const names: string[] = [];
      await sn.walk((i) => {
        names.push(`${i.name}:${i.kind}`);
      });
      assert.deepEqual(names.sort(), ["base:committed", "k2:active", "v1:view"]);
    });

    test("a layer's snapshot counts only its own files, not the parent's it shares", async () => {
      const m = await sn.prepare("big-k");
      writeFileSync(join(upper(m), "big"), Buffer.alloc(256 << 10, 1));
      await sn.commit("big", "big-k");
      // what a layer applier asks for: the native driver then hardlinks the parent's files
      const m2 = await sn.prepare("small-k", "big", { labels: {}, applyOnly: true });
      writeFileSync(join(upper(m2), "small"), Buffer.alloc(4096, 2));
      await sn.commit("small", "small-k");
      const parent = await sn.usage("big");
      const child = await sn.usage("small");
      assert.ok(parent.size >= 256 << 10, JSON.stringify(parent));
      assert.ok(child.size > 0 && child.size < 64 << 10, JSON.stringify(child));
      await sn.remove("small");
      await sn.remove("big");
    });

    test("update labels by fieldpath", async () => {
      await sn.update({ name: "base", labels: { y: "2" } }, ["labels.y"]);
      assert.deepEqual((await sn.stat("base")).labels, { x: "1", y: "2" });
      await sn.update({ name: "base", labels: {} }, ["labels.x"]);
      assert.deepEqual((await sn.stat("base")).labels, { y: "2" });
    });

    test("remove children first, then the parent; directories go too", async () => {
      const dirs = () => readdirSync(join(tmp, driver, "snapshots", driver, "snapshots")).sort();
      assert.equal(dirs().length, 3);
      await sn.remove("v1");
      await sn.remove("k2");
      await sn.remove("base");
      assert.deepEqual(dirs(), []);
      await assert.rejects(sn.stat("base"), { code: "NotFound" });
    });

    test("a 0555 directory inside a snapshot does not block removal", async () => {
      const m = await sn.prepare("ro");
      const d = join(upper(m), "locked");
      const { mkdirSync, chmodSync } = await import("node:fs");
      mkdirSync(d);
      writeFileSync(join(d, "f"), "x");
      chmodSync(d, 0o555);
      await sn.remove("ro");
      assert.equal(existsSync(d), false);
    });

    test("mounting an active snapshot shows the parent's files (root)", { skip: !isRoot && "needs root" }, async () => {
      const m = await sn.prepare("m1");
      writeFileSync(join(upper(m), "b.txt"), "bee");
      await sn.commit("c1", "m1");
      const m2 = await sn.prepare("m2", "c1");
      const target = join(tmp, `${driver}-mnt`);
      mountAll(m2, target);
      try {
        assert.equal(readFileSync(join(target, "b.txt"), "utf8"), "bee");
        writeFileSync(join(target, "c.txt"), "sea");
      } finally {
        unmount(target);
      }
      assert.equal(readFileSync(join(upper(m2), "c.txt"), "utf8"), "sea");
      assert.ok(statSync(join(upper(m2))).isDirectory());
      await sn.remove("m2");
      await sn.remove("c1");
    });
  });
}
