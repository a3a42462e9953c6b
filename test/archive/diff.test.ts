import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { applyLayer } from "../../src/archive/apply.ts";
import { writeDiff } from "../../src/archive/diff.ts";
import * as sys from "../../src/sys/index.ts";
import { fileStream, isRoot, listTree, pythonLayers, removeDir, tempDir } from "./helpers.ts";

const tmp = tempDir();
after(() => removeDir(tmp));

const lower = join(tmp, "lower");
before(async () => {
  const layers = join(tmp, "layers");
  pythonLayers("edge", layers);
  pythonLayers("base", layers);
  fs.mkdirSync(lower);
  for (const l of ["base.tar", "content.tar"]) await applyLayer(lower, fileStream(join(layers, l)));
});

function copyTree(from: string, to: string): void {
  execFileSync("cp", ["-a", "--", from, to]);
}

async function diffTo(file: string, lo: string | undefined, up: string, opts?: { overlay?: boolean }): Promise<void> {
  await writeDiff(lo, up, fs.createWriteStream(file), opts);
}

const T = 1_700_000_500_123_456_789n;

/** Changes of every kind a layer can carry. */
function mutate(R: string): void {
  const D = join(R, "data");
  fs.writeFileSync(join(D, "keep.txt"), "changed by the diff test\n");
  sys.lutimens(join(D, "keep.txt"), T, T);
  fs.rmSync(join(D, "remove-me.txt"));
  fs.rmSync(join(D, "dir-to-delete"), { recursive: true });
  fs.rmSync(join(D, "opaque/old-sub"), { recursive: true });
  fs.mkdirSync(join(D, "new/deep"), { recursive: true });
  fs.writeFileSync(join(D, "new/deep/file.txt"), "new\n");
  fs.rmSync(join(D, "replace-file-with-dir"));
  fs.mkdirSync(join(D, "replace-file-with-dir"));
  fs.writeFileSync(join(D, "replace-file-with-dir/inside.txt"), "inside\n");
  fs.rmSync(join(D, "replace-dir-with-file"), { recursive: true });
  fs.writeFileSync(join(D, "replace-dir-with-file"), "now a file\n");
  fs.rmSync(join(D, "symlink-rel"));
  fs.symlinkSync("hardlink-src.txt", join(D, "symlink-rel"));
  sys.lsetxattr(join(D, "xattr.txt"), "user.testbed", Buffer.from([0xff, 0x00, 0x01]));
  sys.lremovexattr(join(D, "xattr.txt"), "user.other");
  fs.chmodSync(join(D, "perms/setuid"), 0o4711);
  fs.writeFileSync(join(D, "newlink-a"), "shared inode\n");
  fs.linkSync(join(D, "newlink-a"), join(D, "newlink-b"));
  sys.mknod(join(D, "new-fifo"), sys.S_IFIFO | 0o600);
  sys.lutimens(join(D, "mtime-epoch.txt"), T, T); // metadata-only change
  if (isRoot) {
    fs.chownSync(join(D, "perms/owned-1000"), 2000, 2000);
    sys.mknod(join(D, "new-dev"), sys.S_IFCHR | 0o600, 10, 200);
  }
}

describe("writeDiff", () => {
  test("diff of two trees, applied onto the lower tree, gives the upper tree", async () => {
    const upper = join(tmp, "upper");
    copyTree(lower, upper);
    mutate(upper);
    const layer = join(tmp, "diff.tar");
    await diffTo(layer, lower, upper);
    const listing = execFileSync("tar", ["-tf", layer], { encoding: "utf8" }).split("\n");
    assert.ok(listing.includes("data/.wh.remove-me.txt"), "deletions are whiteouts");
    assert.ok(listing.includes("data/.wh.dir-to-delete"));
    assert.ok(!listing.includes("data/random-1m.bin"), "unchanged files are left out");
    assert.ok(!listing.includes("bin/busybox"));

    const result = join(tmp, "result");
    copyTree(lower, result);
    await applyLayer(result, fileStream(layer));
    assert.deepEqual(
      listTree(result, { mtimes: true, dirMtimes: true }),
      listTree(upper, { mtimes: true, dirMtimes: true }),
    );
    const a = fs.statSync(join(result, "data/newlink-a"));
    assert.equal(a.ino, fs.statSync(join(result, "data/newlink-b")).ino, "hardlinks by inode");
  });

  test("a tree alone is a full layer", async () => {
    const layer = join(tmp, "full.tar");
    await diffTo(layer, undefined, lower);
    const result = join(tmp, "full");
    fs.mkdirSync(result);
    await applyLayer(result, fileStream(layer));
    assert.deepEqual(
      listTree(result, { mtimes: true, dirMtimes: true }),
      listTree(lower, { mtimes: true, dirMtimes: true }),
    );
  });

  test("an overlay upperdir is the diff: 0:0 devices and opaque dirs become whiteouts", {
    skip: !isRoot && "needs root (overlay mount)",
  }, async () => {
    const up = join(tmp, "ov-upper");
    const work = join(tmp, "ov-work");
    const merged = join(tmp, "ov-merged");
    for (const d of [up, work, merged]) fs.mkdirSync(d);
    sys.mount("overlay", merged, "overlay", 0, `lowerdir=${lower},upperdir=${up},workdir=${work}`);
    try {
      mutate(merged);
      // an opaque directory: deleted and made again
      fs.rmSync(join(merged, "data/opaque"), { recursive: true });
      fs.mkdirSync(join(merged, "data/opaque"));
      fs.writeFileSync(join(merged, "data/opaque/fresh.txt"), "fresh\n");
    } finally {
      sys.umount2(merged);
    }
    const layer = join(tmp, "ov.tar");
    await diffTo(layer, undefined, up, { overlay: true });
    const listing = execFileSync("tar", ["-tf", layer], { encoding: "utf8" }).split("\n");
    assert.ok(listing.includes("data/.wh.remove-me.txt"));
    assert.ok(listing.includes("data/opaque/.wh..wh..opq"));
    const result = join(tmp, "ov-result");
    copyTree(lower, result);
    await applyLayer(result, fileStream(layer));
    sys.mount("overlay", merged, "overlay", sys.MS_RDONLY, `lowerdir=${up}:${lower}`);
    try {
      assert.deepEqual(listTree(result, { mtimes: true }), listTree(merged, { mtimes: true }));
    } finally {
      sys.umount2(merged);
    }
    assert.deepEqual(fs.readdirSync(join(result, "data/opaque")), ["fresh.txt"]);
  });
});
