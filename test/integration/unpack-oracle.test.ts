/**
 * Unpacked trees against oracles: the edge images pulled by dist (native and
 * overlay) must pass the OCI-rules checks of the test bed's edge layers and
 * match what `umoci unpack` produces path for path; the cross-layer hardlink
 * must work on overlay (where containerd 1.6 fails); the hostile layer must be
 * refused without writing outside; Debian minbase must match umoci exactly.
 */
import assert from "node:assert/strict";
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { lgetxattr } from "../../src/sys/index.ts";
import { type Testbed, testbed } from "./harness.ts";
import { compare, pullImage, scan, umociScan, viewOf } from "./trees.ts";

const isRoot = process.getuid?.() === 0;

/** The checks of the test bed's edge layers (verify_edge.sh), for this harness's fixture. */
function edgeChecks(R: string): string[] {
  const D = join(R, "data");
  const failed: string[] = [];
  const check = (what: string, ok: () => boolean) => {
    let r = false;
    try {
      r = ok();
    } catch {
      r = false;
    }
    if (!r) failed.push(what);
  };
  const exists = (p: string) => {
    try {
      lstatSync(p);
      return true;
    } catch {
      return false;
    }
  };
  const mode = (p: string) => (lstatSync(p).mode & 0o7777).toString(8);
  const owner = (p: string) => `${lstatSync(p).uid}:${lstatSync(p).gid}`;
  const sameInode = (a: string, b: string) =>
    statSync(a).ino === statSync(b).ino && statSync(a).dev === statSync(b).dev;
  const read = (p: string) => readFileSync(p, "utf8");
  const xattr = (p: string, n: string) => lgetxattr(p, n)?.toString("utf8");
  const findWh = (dir: string): boolean => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.name.startsWith(".wh.")) return true;
      if (e.isDirectory() && findWh(join(dir, e.name))) return true;
    }
    return false;
  };
  check("busybox present", () => (statSync(join(R, "bin/busybox")).mode & 0o111) !== 0);
  check("whiteout removed bin/vi (base layer)", () => !exists(join(R, "bin/vi")));
  check(
    "bin/sh still there",
    () => lstatSync(join(R, "bin/sh")).isSymbolicLink() || lstatSync(join(R, "bin/sh")).isFile(),
  );
  check("no .wh.* files left anywhere", () => !findWh(R));
  check("data/remove-me.txt deleted", () => !exists(join(D, "remove-me.txt")));
  check("data/dir-to-delete deleted", () => !exists(join(D, "dir-to-delete")));
  check("opaque: old1.txt hidden", () => !exists(join(D, "opaque/old1.txt")));
  check("opaque: old-sub hidden", () => !exists(join(D, "opaque/old-sub")));
  check("opaque: new.txt (same layer) kept", () => statSync(join(D, "opaque/new.txt")).isFile());
  check("file -> dir replacement", () => statSync(join(D, "replace-file-with-dir/inside.txt")).isFile());
  check("dir -> file replacement", () => statSync(join(D, "replace-dir-with-file")).isFile());
  check("overwritten keep.txt", () => read(join(D, "keep.txt")).includes("overwritten in layer B"));
  check("symlink-rel retargeted", () => readlinkSync(join(D, "symlink-rel")) === "hardlink-src.txt");
  check("symlink-abs kept verbatim", () => readlinkSync(join(D, "symlink-abs")) === "/data/keep.txt");
  check("dangling symlink kept", () => readlinkSync(join(D, "symlink-dangling")) === "../nonexistent/target");
  check("hardlink-dst same inode as src", () => sameInode(join(D, "hardlink-dst.txt"), join(D, "hardlink-src.txt")));
  check("sub/hardlink-2 same inode as src", () =>
    sameInode(join(D, "sub/hardlink-2.txt"), join(D, "hardlink-src.txt")),
  );
  check("long-name hardlink has content", () => read(join(D, "long", "h".repeat(140))).includes("hardlinked content"));
  check("setuid bit (4755)", () => mode(join(D, "perms/setuid")) === "4755");
  check("setgid bit (2755)", () => mode(join(D, "perms/setgid")) === "2755");
  check("sticky dir (1777)", () => mode(join(D, "perms/sticky-dir")) === "1777");
  check("mode 0000 file", () => mode(join(D, "perms/no-perms")) === "0");
  check("0555 dir kept its mode", () => mode(join(D, "perms/readonly-dir")) === "555");
  check("file inside 0555 dir", () => statSync(join(D, "perms/readonly-dir/file-in-ro-dir")).isFile());
  check("owner 1000:1000", () => owner(join(D, "perms/owned-1000")) === "1000:1000");
  check("owner 65534:65534", () => owner(join(D, "perms/owned-nobody")) === "65534:65534");
  check("owner 100000:100000", () => owner(join(D, "perms/owned-100000")) === "100000:100000");
  check("dir owned 1000, mode 700", () => {
    const st = lstatSync(join(D, "perms/dir-owned-1000"));
    return st.uid === 1000 && (st.mode & 0o7777) === 0o700;
  });
  check("xattr user.testbed=changed (layer B)", () => xattr(join(D, "xattr.txt"), "user.testbed") === "changed");
  check("xattr on directory", () => xattr(join(D, "xattr-dir"), "user.dirattr") === "on a directory");
  check("fifo", () => lstatSync(join(D, "fifo")).isFIFO());
  check("char device 1,3", () => {
    const st = lstatSync(join(D, "null-dev"));
    return st.isCharacterDevice() && st.rdev === 0x103;
  });
  check("block device 7,0", () => {
    const st = lstatSync(join(D, "loop-dev"));
    return st.isBlockDevice() && st.rdev === 0x700;
  });
  check("empty file", () => statSync(join(D, "empty-file")).isFile() && statSync(join(D, "empty-file")).size === 0);
  check("empty dir", () => statSync(join(D, "empty-dir")).isDirectory());
  check("long path (>255 bytes)", () => statSync(join(D, "long", "d".repeat(120), `${"f".repeat(150)}.txt`)).isFile());
  check("long symlink target", () => readlinkSync(join(D, "long/symlink-long-target")).length > 200);
  check("utf-8 names", () => exists(join(D, "unicode/héllo wörld ✓.txt")) && exists(join(D, "unicode/日本語.txt")));
  check("implicit parent dirs", () => statSync(join(D, "implicit/parent/file.txt")).isFile());
  check("mtime 0", () => statSync(join(D, "mtime-epoch.txt")).mtimeMs === 0);
  check("mtime 2100", () => statSync(join(D, "mtime-2100.txt")).mtimeMs === 4102444800000);
  check("mtime of regular files (1700000000)", () => statSync(join(D, "empty-file")).mtimeMs === 1700000000000);
  check("1 MiB random file size", () => statSync(join(D, "random-1m.bin")).size === 1048576);
  return failed;
}

let tb: Testbed;
before(async () => {
  tb = await testbed({ debian: true });
});
after(async () => {
  await tb?.stop();
});

/** Directories that exist only because a deeper entry needed them: their mtime is the extraction's. */
const IMPLICIT_EDGE = ["data/implicit", "data/implicit/parent"];

for (const snapshotter of ["native", "overlay"] as const) {
  const needsRoot = snapshotter === "overlay" && !isRoot && "overlay needs root";
  describe(`edge images with the ${snapshotter} snapshotter`, { skip: needsRoot }, () => {
    test("edge/whiteouts: every OCI-rules check passes and the tree matches umoci's", async () => {
      const p = await pullImage(tb, "edge/whiteouts:oci", snapshotter);
      const v = await viewOf(tb, p, snapshotter);
      try {
        const failed = edgeChecks(v.dir);
        if (!isRoot) {
          // without root there are no devices and no foreign owners; everything else must hold
          const rootOnly = [
            "char device 1,3",
            "block device 7,0",
            "owner 1000:1000",
            "owner 65534:65534",
            "owner 100000:100000",
            "dir owned 1000, mode 700",
          ];
          assert.deepEqual(
            failed.filter((f) => !rootOnly.includes(f)),
            [],
          );
        } else {
          assert.deepEqual(failed, [], `failed checks: ${failed.join("; ")}`);
          const diffs = compare(scan(v.dir), await umociScan(tb, "edge-whiteouts"), IMPLICIT_EDGE);
          assert.deepEqual(diffs, []);
        }
      } finally {
        await v.done();
      }
    });

    test("edge/xlayer-hardlink: a hardlink to a lower layer's file works", async () => {
      const p = await pullImage(tb, "edge/xlayer-hardlink:latest", snapshotter);
      const v = await viewOf(tb, p, snapshotter);
      try {
        const a = statSync(join(v.dir, "data/hardlink-to-lower.txt"));
        const b = statSync(join(v.dir, "data/hardlink-src.txt"));
        assert.equal(a.ino, b.ino, "the link and its lower-layer target are one inode");
        assert.equal(readFileSync(join(v.dir, "data/hardlink-to-lower.txt"), "utf8"), "hardlinked content\n");
        assert.equal(readFileSync(join(v.dir, "data/keep.txt"), "utf8").length > 0, true);
      } finally {
        await v.done();
      }
    });

    test("edge/breakout: refused, nothing written outside the root, no snapshot for the hostile layer", async () => {
      const root = tb.newRoot();
      const hostPaths = [
        "/tmp/dist-breakout-abs",
        "/tmp/dist-breakout-rel",
        "/tmp/dist-breakout-dotdot.txt",
        "/dist-breakout-absolute-name.txt",
      ];
      for (const h of hostPaths) assert.equal(existsSync(h), false, `${h} exists before the test`);
      const r = await tb.dist(
        ["pull", "--plain-http", "--snapshotter", snapshotter, `${tb.plain}/edge/breakout:latest`],
        { root },
      );
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /escapes the root|outside the root|refus/);
      assert.match(r.stderr, /sha256:[0-9a-f]{64}/, "the error names the layer");
      for (const h of hostPaths) assert.equal(existsSync(h), false, `${h} was written`);
      const ls = await tb.dist(["snapshots", "--snapshotter", snapshotter, "ls", "--output", "json"], { root });
      const snaps = JSON.parse(ls.stdout) as { name: string; kind: string }[];
      assert.deepEqual(
        snaps.map((s) => s.kind),
        ["committed"],
        "only the busybox base layer is committed; no temporary snapshot is left",
      );
      // the blobs fetched are kept for a later pull
      const c = await tb.dist(["content", "ls", "-q"], { root });
      assert.equal(c.code, 0, c.stderr);
      for (const b of tb.images["edge/breakout:latest"].blobs) assert.ok(c.stdout.includes(b), `blob ${b} kept`);
    });
  });
}

describe("Debian minbase", { skip: !isRoot && "ownership needs root" }, () => {
  for (const snapshotter of ["overlay", "native"] as const) {
    test(`unpacked by dist (${snapshotter}) matches umoci unpack path for path`, async () => {
      const p = await pullImage(tb, "debian/bookworm:minbase", snapshotter);
      const v = await viewOf(tb, p, snapshotter);
      try {
        const mine = scan(v.dir);
        assert.ok(mine.size > 5000, `only ${mine.size} paths`);
        const diffs = compare(mine, await umociScan(tb, "debian"));
        assert.deepEqual(diffs.slice(0, 20), [], `${diffs.length} differences`);
      } finally {
        await v.done();
      }
    });
  }
});
