/**
 * Deep images (busybox and 126 / 499 layers of one small file each, built by
 * fixtures/unusual.ts) on both snapshotters: pulled and checked against umoci and their
 * config, mounted past the one page of options mount(2) takes (overlay), prepared with
 * the printed mount commands, run with runc, and bundled by copy and by mount.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { which } from "./fixtures/exec.ts";
import { readJson } from "./fixtures/layout.ts";
import { type Testbed, testbed, UNUSUAL } from "./harness.ts";
import { compare, type Pulled, pullImage, scan, umociScan, viewOf } from "./trees.ts";

const isRoot = process.getuid?.() === 0;
const DEPTHS = [
  { ref: UNUSUAL.deep127, tag: "deep-127", layers: 127 },
  { ref: UNUSUAL.deep500, tag: "deep-500", layers: 500 },
] as const;

/** ChainID of diffIDs (image-spec: sha256 of "parent diffID"), written here as an oracle. */
function chainOf(diffIDs: string[]): string {
  return diffIDs.reduce((chain, d) => `sha256:${createHash("sha256").update(`${chain} ${d}`).digest("hex")}`);
}

let tb: Testbed;
before(async () => {
  tb = await testbed();
});
after(async () => {
  await tb?.stop();
});

function mountsUnder(dir: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4])
    .filter((m) => m?.startsWith(`${dir}/`));
}

for (const snapshotter of ["overlay", "native"] as const) {
  describe(`deep images with the ${snapshotter} snapshotter`, { skip: !isRoot && "mounts need root" }, () => {
    const pulled = new Map<number, Pulled>();
    let root: string;
    const dist = (args: string[]) => tb.dist(args, { root });

    before(async () => {
      root = tb.newRoot();
      for (const d of DEPTHS) pulled.set(d.layers, await pullImage(tb, d.ref, snapshotter, root));
    });

    for (const d of DEPTHS) {
      test(`${d.ref}: the chain of the config's ${d.layers} diff_ids, one file per layer, the topmost on top`, async () => {
        const info = tb.images[d.ref];
        assert.equal(info.layers?.length, d.layers);
        const config = readJson(tb.layout, info.config?.digest ?? "");
        const p = pulled.get(d.layers) as Pulled;
        assert.equal(p.chainID, chainOf(config.rootfs.diff_ids));
        const v = await viewOf(tb, p, snapshotter);
        try {
          assert.equal(readdirSync(join(v.dir, "deep")).length, d.layers, "deep/001 … and deep/top");
          assert.equal(readFileSync(join(v.dir, "deep/top"), "utf8"), `${d.layers - 1}\n`);
          assert.ok(existsSync(join(v.dir, "bin/busybox")), "the busybox base layer is there");
          if (d.layers === 127) assert.deepEqual(compare(scan(v.dir), await umociScan(tb, d.tag)), []);
        } finally {
          await v.done();
        }
      });

      test(`${d.ref}: rootfs prepare prints mount commands that mount it`, async () => {
        const target = join(tb.tempDir("prepared"), "rootfs");
        mkdirSync(target);
        const chain = (pulled.get(d.layers) as Pulled).chainID;
        const r = await dist(["rootfs", "prepare", "--snapshotter", snapshotter, chain, target]);
        assert.equal(r.code, 0, r.stderr);
        execFileSync("sh", ["-c", r.stdout]);
        try {
          assert.equal(readFileSync(join(target, "deep/top"), "utf8"), `${d.layers - 1}\n`);
          assert.equal(readdirSync(join(target, "deep")).length, d.layers);
        } finally {
          execFileSync("umount", [target]);
        }
        const rm = await dist(["snapshots", "--snapshotter", snapshotter, "rm", target]);
        assert.equal(rm.code, 0, rm.stderr);
      });

      test(`${d.ref}: dist run reads its files and leaves nothing mounted`, {
        skip: !which("runc") && "needs runc",
      }, async () => {
        const r = await dist([
          "run",
          "--rm",
          "--snapshotter",
          snapshotter,
          `${tb.plain}/${d.ref}`,
          "sh",
          "-c",
          "cat /deep/top; ls /deep | wc -l",
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.replace(/\s+/g, " ").trim(), `${d.layers - 1} ${d.layers}`);
        assert.deepEqual(mountsUnder(root), []);
      });
    }

    test("dist bundle --copy of the 500-layer image: a copy, the view it came from unmounted and gone", async () => {
      const dir = join(tb.tempDir("bundle-copy"), "b");
      const r = await dist(["bundle", "--snapshotter", snapshotter, "--copy", `${tb.plain}/${UNUSUAL.deep500}`, dir]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(readFileSync(join(dir, "rootfs/deep/top"), "utf8"), "499\n");
      assert.equal(readdirSync(join(dir, "rootfs/deep")).length, 500);
      const record = JSON.parse(readFileSync(join(dir, "dist-bundle.json"), "utf8"));
      assert.equal(record.mounted, false);
      assert.equal(record.snapshotKey, undefined);
      assert.deepEqual(mountsUnder(root), [], "nothing of the store mounted");
      assert.deepEqual(mountsUnder(dir), [], "rootfs/ is a copy");
      const ls = await dist(["snapshots", "--snapshotter", snapshotter, "ls", "--output", "json"]);
      const kinds = (JSON.parse(ls.stdout) as { kind: string }[]).map((s) => s.kind);
      assert.deepEqual([...new Set(kinds)], ["committed"], "no view or active snapshot left");
      const rm = await dist(["bundle", "--remove", dir]);
      assert.equal(rm.code, 0, rm.stderr);
      assert.equal(existsSync(dir), false);
    });

    test("dist bundle of the 500-layer image: rootfs/ mounted until bundle --remove", async () => {
      const dir = join(tb.tempDir("bundle-mount"), "b");
      const r = await dist(["bundle", "--snapshotter", snapshotter, `${tb.plain}/${UNUSUAL.deep500}`, dir]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(mountsUnder(dir), [join(dir, "rootfs")]);
      assert.equal(readFileSync(join(dir, "rootfs/deep/top"), "utf8"), "499\n");
      const rm = await dist(["bundle", "--remove", dir]);
      assert.equal(rm.code, 0, rm.stderr);
      assert.deepEqual(mountsUnder(dir), []);
      assert.equal(existsSync(dir), false);
    });
  });
}
