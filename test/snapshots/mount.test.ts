import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { FailedPreconditionError } from "../../src/errors.ts";
import { mountCommand, mountOne, unmount } from "../../src/snapshots/mount.ts";
import { overlaySupported } from "../../src/snapshots/open.ts";
import {
  commonParent,
  mountOverlayStack,
  relativeOverlayData,
  splitOverlayOptions,
} from "../../src/snapshots/overlay/stack.ts";
import type { Mount } from "../../src/snapshots/snapshotter.ts";
import { pageSize } from "../../src/sys/index.ts";

const tmp = mkdtempSync(join(tmpdir(), "dist-mount-test-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("overlay option strings", () => {
  test("lowerdirs split from the other options, topmost first", () => {
    assert.deepEqual(splitOverlayOptions(["workdir=/w", "lowerdir=/a:/b:/c", "upperdir=/u", "userxattr"]), {
      lowers: ["/a", "/b", "/c"],
      others: ["workdir=/w", "upperdir=/u", "userxattr"],
    });
    assert.throws(() => splitOverlayOptions(["lowerdir=/a::/data"]), /data-only/);
  });

  test("the common parent of snapshot directories, and lowerdirs relative to it as containerd writes them", () => {
    const s = "/var/lib/dist/snapshots/overlay/snapshots";
    assert.equal(commonParent([`${s}/12/fs`, `${s}/3/fs`, `${s}/100/fs`]), s);
    assert.equal(commonParent(["/a/b/fs", "/a/c/fs"]), "/a");
    assert.equal(commonParent(["/x/fs", "/y/fs"]), "/");
    assert.deepEqual(
      relativeOverlayData([`workdir=${s}/9/work`, `upperdir=${s}/9/fs`, `lowerdir=${s}/8/fs:${s}/10/fs`]),
      {
        dir: s,
        data: `workdir=${s}/9/work,upperdir=${s}/9/fs,lowerdir=8/fs:10/fs`,
      },
    );
  });

  test("a deep overlay is printed as a mount from the common parent, a shallow one as it is", () => {
    const s = "/var/lib/dist/snapshots/overlay/snapshots";
    const lowers = Array.from({ length: 200 }, (_, i) => `${s}/${200 - i}/fs`);
    const deep: Mount = { type: "overlay", source: "overlay", options: [`lowerdir=${lowers.join(":")}`] };
    const cmd = mountCommand(deep, "/mnt/x");
    assert.ok(cmd.startsWith(`(cd ${s} && mount -t overlay overlay /mnt/x -o lowerdir=200/fs:199/fs:`), cmd);
    assert.ok(cmd.endsWith(":1/fs)"), cmd);
    const shallow: Mount = { type: "overlay", source: "overlay", options: [`lowerdir=${s}/2/fs:${s}/1/fs`] };
    assert.equal(mountCommand(shallow, "/mnt/x"), `mount -t overlay overlay /mnt/x -o lowerdir=${s}/2/fs:${s}/1/fs`);
  });
});

const root = process.getuid?.() === 0 && overlaySupported(join(tmp, "probe"));

describe("overlay mounts of any depth", { skip: !root && "needs root and overlayfs" }, () => {
  /** n lower layers under a path as long as a real store's: layer i holds `i` and `top` (= i). */
  function layers(n: number, base = join(tmp, "store", "snapshots", "overlay", "snapshots")): string[] {
    const dirs: string[] = [];
    for (let i = n; i >= 1; i--) {
      const d = join(base, String(i), "fs");
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, String(i)), "");
      writeFileSync(join(d, "top"), String(i));
      dirs.push(d);
    }
    return dirs;
  }

  function writable(name: string): { upper: string; work: string } {
    const upper = join(tmp, name, "upper");
    const work = join(tmp, name, "work");
    mkdirSync(upper, { recursive: true });
    mkdirSync(work, { recursive: true });
    return { upper, work };
  }

  function target(name: string): string {
    const t = join(tmp, name, "merged");
    mkdirSync(t, { recursive: true });
    return t;
  }

  /** The merged tree shows every layer, the topmost one's `top`, and takes a write. */
  function assertStack(t: string, n: number): void {
    const names = readdirSync(t);
    assert.equal(names.length, n + 1, "one file per layer, and top");
    assert.equal(readFileSync(join(t, "top"), "utf8"), String(n), "the topmost lower layer wins");
    writeFileSync(join(t, "written"), "x");
  }

  for (const n of [127, 500]) {
    test(`${n} lower layers and an upper: too long for one mount(2), mounted layer by layer`, () => {
      const lowers = layers(n);
      const { upper, work } = writable(`rw${n}`);
      const m: Mount = {
        type: "overlay",
        source: "overlay",
        options: [`workdir=${work}`, `upperdir=${upper}`, `lowerdir=${lowers.join(":")}`],
      };
      assert.ok(m.options.join(",").length > pageSize(), "the options outgrow a page");
      const t = target(`rw${n}`);
      mountOne(m, t);
      try {
        assertStack(t, n);
        assert.equal(readFileSync(join(upper, "written"), "utf8"), "x", "writes go to the upper layer");
      } finally {
        unmount(t);
      }
    });

    test(`${n} lower layers the way containerd mounts them: relative paths, from a child process`, () => {
      const lowers = layers(n);
      const { upper, work } = writable(`chdir${n}`);
      const t = target(`chdir${n}`);
      const how = mountOverlayStack(
        [`workdir=${work}`, `upperdir=${upper}`, `lowerdir=${lowers.join(":")}`],
        0,
        t,
        "chdir",
      );
      assert.equal(how, "chdir");
      try {
        assertStack(t, n);
      } finally {
        unmount(t);
      }
    });
  }

  test("a read-only view of 300 layers (lowerdirs only, no upper)", () => {
    const lowers = layers(300);
    const t = target("view300");
    mountOne({ type: "overlay", source: "overlay", options: [`lowerdir=${lowers.join(":")}`] }, t);
    try {
      assert.equal(readFileSync(join(t, "top"), "utf8"), "300");
      assert.throws(() => writeFileSync(join(t, "x"), ""), { code: "EROFS" });
    } finally {
      unmount(t);
    }
  });

  test("the printed command of a deep overlay mounts it with mount(8)", () => {
    const lowers = layers(200);
    const { upper, work } = writable("printed");
    const t = target("printed");
    const cmd = mountCommand(
      {
        type: "overlay",
        source: "overlay",
        options: [`workdir=${work}`, `upperdir=${upper}`, `lowerdir=${lowers.join(":")}`],
      },
      t,
    );
    execFileSync("sh", ["-c", cmd]);
    try {
      assertStack(t, 200);
    } finally {
      unmount(t);
    }
  });

  test("a lower layer whose path is over fsconfig's 256 bytes goes in as a descriptor", () => {
    const long = join(tmp, "l".repeat(120), "o".repeat(120), "n".repeat(40));
    const lowers = [...layers(100), ...layers(1, long)];
    const t = target("longpath");
    mountOne({ type: "overlay", source: "overlay", options: [`lowerdir=${lowers.join(":")}`] }, t);
    try {
      assert.equal(readFileSync(join(t, "top"), "utf8"), "100");
      assert.ok(readdirSync(t).includes("1"));
    } finally {
      unmount(t);
    }
  });

  test("past overlayfs's 500 lower layers: a clear error, nothing mounted", () => {
    const lowers = layers(501);
    const t = target("too-deep");
    assert.throws(
      () => mountOne({ type: "overlay", source: "overlay", options: [`lowerdir=${lowers.join(":")}`] }, t),
      (err: Error) =>
        err instanceof FailedPreconditionError &&
        /\(501 lower layers\)/.test(err.message) &&
        /limit is 500/.test(err.message) &&
        /--snapshotter native/.test(err.message),
    );
    assert.deepEqual(readdirSync(t), []);
  });

  test("containerd's way past what fits in a page even relatively: a clear error", () => {
    // long snapshot names: even relative to their parent, 127 of them outgrow the page
    const base = join(tmp, "wide");
    const lowers = Array.from({ length: 127 }, (_, i) => {
      const d = join(base, `${"s".repeat(40)}${i}`, "fs");
      mkdirSync(d, { recursive: true });
      return d;
    });
    assert.throws(
      () => mountOverlayStack([`lowerdir=${lowers.join(":")}`], 0, target("wide"), "chdir"),
      (err: Error) =>
        /an overlay of 127 lower layers needs \d+ bytes of options even relative to/.test(err.message) &&
        err.message.includes(base),
    );
  });
});
