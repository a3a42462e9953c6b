import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { readRootfsFile, readUserFiles, resolveInRoot } from "../../src/oci/rootfs.ts";
import { parseGroup, parsePasswd, resolveUser } from "../../src/oci/user.ts";

const files = {
  passwd: [
    "root:x:0:0:root:/root:/bin/sh",
    "# a comment",
    "broken line",
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false",
    "app:x:1000:1000::/home/app:/bin/sh",
    "bad:x:notanumber:1::/:/bin/sh",
    "",
  ].join("\n"),
  group: ["root:x:0:", "nogroup:x:65534:", "app:x:1000:app", "extra:x:2000:nobody,app", "wheel:x:10: app ", ""].join(
    "\n",
  ),
};

describe("passwd and group parsing", () => {
  test("skips comments and malformed lines", () => {
    assert.deepEqual(
      parsePasswd(files.passwd).map((p) => p.name),
      ["root", "nobody", "app"],
    );
    assert.deepEqual(parseGroup(files.group).find((g) => g.name === "wheel")?.members, ["app"]);
  });
});

describe("resolveUser", () => {
  const cases: [string, { uid: number; gid: number; additionalGids: number[] }][] = [
    ["", { uid: 0, gid: 0, additionalGids: [0] }],
    ["root", { uid: 0, gid: 0, additionalGids: [0] }],
    ["nobody", { uid: 65534, gid: 65534, additionalGids: [65534, 2000] }],
    ["app", { uid: 1000, gid: 1000, additionalGids: [1000, 2000, 10] }],
    ["1000", { uid: 1000, gid: 1000, additionalGids: [1000, 2000, 10] }],
    ["4242", { uid: 4242, gid: 0, additionalGids: [0] }],
    ["app:wheel", { uid: 1000, gid: 10, additionalGids: [10, 2000] }],
    ["app:7", { uid: 1000, gid: 7, additionalGids: [7, 2000, 10] }],
    ["4242:4343", { uid: 4242, gid: 4343, additionalGids: [4343] }],
    ["65534:root", { uid: 65534, gid: 0, additionalGids: [0, 2000] }],
  ];
  for (const [spec, want] of cases) {
    test(JSON.stringify(spec), () => {
      const u = resolveUser(spec, files);
      assert.deepEqual({ uid: u.uid, gid: u.gid, additionalGids: u.additionalGids }, want);
    });
  }
  test("home from passwd", () => assert.equal(resolveUser("app", files).home, "/home/app"));
  test("numeric ids need no files", () => assert.equal(resolveUser("5:6", {}).gid, 6));

  const bad: [string, Parameters<typeof resolveUser>[1], RegExp][] = [
    ["ghost", files, /user "ghost" not found in the image's \/etc\/passwd/],
    ["app:ghosts", files, /group "ghosts" not found/],
    ["app", {}, /no \/etc\/passwd/],
    ["1:grp", { passwd: files.passwd }, /no \/etc\/group/],
    ["a:b:c", files, /invalid user/],
    ["app:", files, /invalid user/],
    [":0", files, /invalid user/],
    ["99999999999", files, /uid over/],
    ["0:99999999999", files, /gid over/],
  ];
  for (const [spec, f, re] of bad) {
    test(`refuses ${JSON.stringify(spec)}`, () => assert.throws(() => resolveUser(spec, f), re));
  }
});

describe("reading a rootfs without leaving it", () => {
  const tmp = mkdtempSync(join(tmpdir(), "dist-rootfs-"));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const outside = join(tmp, "host-secret");
  writeFileSync(outside, "host:x:0:0::/:/bin/sh\n");
  const root = join(tmp, "rootfs");
  mkdirSync(join(root, "etc"), { recursive: true });
  mkdirSync(join(root, "real"), { recursive: true });
  writeFileSync(join(root, "real", "passwd"), "app:x:7:8::/app:/bin/sh\n");

  test("absolute and ../ symlinks resolve inside the rootfs", async () => {
    symlinkSync(outside, join(root, "etc", "passwd")); // points at the host's file by absolute path
    symlinkSync("../../../../host-secret", join(root, "etc", "group"));
    assert.equal(await resolveInRoot(root, "/etc/passwd"), join(root, outside));
    assert.equal(await readRootfsFile(root, "/etc/passwd"), undefined);
    assert.equal(await readRootfsFile(root, "/etc/group"), undefined);
    assert.deepEqual(await readUserFiles(root), {});
  });

  test("symlinks within the rootfs are followed", async () => {
    rmSync(join(root, "etc", "passwd"));
    symlinkSync("/real/passwd", join(root, "etc", "passwd"));
    assert.equal(await readRootfsFile(root, "/etc/passwd"), "app:x:7:8::/app:/bin/sh\n");
    assert.equal(resolveUser("app", await readUserFiles(root)).uid, 7);
  });

  test("a symlinked directory pointing out is kept in", async () => {
    const root2 = join(tmp, "rootfs2");
    mkdirSync(root2);
    mkdirSync(join(tmp, "etc-outside"));
    writeFileSync(join(tmp, "etc-outside", "passwd"), "evil:x:0:0::/:/bin/sh\n");
    symlinkSync(join(tmp, "etc-outside"), join(root2, "etc"));
    assert.equal(await readRootfsFile(root2, "/etc/passwd"), undefined);
  });

  test("symlink loops and non-files are errors", async () => {
    symlinkSync("loop-b", join(root, "loop-a"));
    symlinkSync("loop-a", join(root, "loop-b"));
    await assert.rejects(readRootfsFile(root, "/loop-a"), /too many symlinks/);
    await assert.rejects(readRootfsFile(root, "/etc"), /not a regular file/);
  });
});
