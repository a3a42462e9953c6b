import assert from "node:assert/strict";
import * as fs from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as sys from "../../src/sys/index.ts";
import { isRoot, removeDir, tempDir } from "../archive/helpers.ts";

const tmp = tempDir();
after(() => removeDir(tmp));

describe("sys (koffi bindings)", () => {
  test("xattrs: set, get, list and remove binary values without following symlinks", () => {
    const f = join(tmp, "x");
    fs.writeFileSync(f, "");
    const v = Buffer.from([0xff, 0x00, 0xfe, 0x80]);
    sys.lsetxattr(f, "user.bin", v);
    assert.deepEqual(sys.lgetxattr(f, "user.bin"), v);
    assert.equal(sys.lgetxattr(f, "user.absent"), undefined);
    assert.ok(sys.llistxattr(f).includes("user.bin"));
    sys.lremovexattr(f, "user.bin");
    assert.equal(sys.lgetxattr(f, "user.bin"), undefined);
    const l = join(tmp, "l");
    fs.symlinkSync("x", l);
    assert.throws(() => sys.lsetxattr(l, "user.bin", v), { code: "EPERM" }, "user xattrs are not allowed on symlinks");
    assert.throws(
      () => sys.lgetxattr(join(tmp, "missing"), "user.a"),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, "ENOENT");
        assert.match(e.message, /lgetxattr '.*missing'/);
        return true;
      },
    );
    const fd = fs.openSync(f, "r+");
    try {
      sys.fsetxattr(fd, "user.fd", Buffer.from("via fd"));
    } finally {
      fs.closeSync(fd);
    }
    assert.equal(sys.lgetxattr(f, "user.fd")?.toString(), "via fd");
  });

  test("utimensat/futimens with nanoseconds, on a symlink itself", () => {
    const f = join(tmp, "t");
    fs.writeFileSync(f, "");
    const l = join(tmp, "tl");
    fs.symlinkSync("t", l);
    sys.lutimens(l, 1n, 1700000000123456789n);
    assert.equal(fs.lstatSync(l, { bigint: true }).mtimeNs, 1700000000123456789n);
    assert.notEqual(fs.statSync(f, { bigint: true }).mtimeNs, 1700000000123456789n, "the target is untouched");
    sys.lutimens(f, undefined, -1_500_000_000n);
    assert.equal(fs.lstatSync(f, { bigint: true }).mtimeNs, -1_500_000_000n, "negative times");
    const fd = fs.openSync(f, "r");
    try {
      sys.futimens(fd, 5n, 4102444800000000001n);
    } finally {
      fs.closeSync(fd);
    }
    assert.equal(fs.lstatSync(f, { bigint: true }).mtimeNs, 4102444800000000001n);
  });

  test("mknod: fifos unprivileged, devices with the right numbers as root", () => {
    const p = join(tmp, "fifo");
    sys.mknod(p, sys.S_IFIFO | 0o600);
    assert.ok(fs.lstatSync(p).isFIFO());
    assert.throws(() => sys.mknod(p, sys.S_IFIFO | 0o600), { code: "EEXIST" });
    if (isRoot) {
      const d = join(tmp, "dev");
      sys.mknod(d, sys.S_IFBLK | 0o600, 259, 70000);
      const st = fs.lstatSync(d);
      assert.equal(`${sys.major(st.rdev)}:${sys.minor(st.rdev)}`, "259:70000");
    }
  });

  test("makedev, major and minor agree with glibc's encoding", () => {
    assert.equal(sys.makedev(1, 3), 0x103n);
    assert.equal(sys.major(sys.makedev(4095, 1048575)), 4095);
    assert.equal(sys.minor(sys.makedev(4095, 1048575)), 1048575);
    assert.equal(sys.major(sys.makedev(5000, 1)), 5000);
  });

  test("flock and syncfs on a descriptor", () => {
    const f = join(tmp, "lock");
    const a = fs.openSync(f, "w");
    const b = fs.openSync(f, "r");
    try {
      sys.flock(a, sys.LOCK_EX | sys.LOCK_NB);
      assert.throws(
        () => sys.flock(b, sys.LOCK_EX | sys.LOCK_NB),
        (e: Error & { code?: string }) => {
          return e.code === "EAGAIN" || e.code === "EWOULDBLOCK";
        },
      );
      sys.flock(a, sys.LOCK_UN);
      sys.flock(b, sys.LOCK_EX | sys.LOCK_NB);
      sys.syncfs(a);
    } finally {
      fs.closeSync(a);
      fs.closeSync(b);
    }
  });

  test("syncfsAsync resolves on a descriptor and names errno when the call fails", async () => {
    const fd = fs.openSync(tmp, "r");
    try {
      await sys.syncfsAsync(fd);
    } finally {
      fs.closeSync(fd);
    }
    await assert.rejects(sys.syncfsAsync(fd), (e: Error & { code?: string }) => e.code === "EBADF");
  });

  test("lseek reads a descriptor's offset; setPipeSize grows a pipe; both name errno on the wrong kind of file", () => {
    const f = join(tmp, "seek");
    fs.writeFileSync(f, "0123456789abcdef");
    const fd = fs.openSync(f, "r");
    const p = join(tmp, "pipe");
    sys.mknod(p, sys.S_IFIFO | 0o600);
    // read-write: opening a fifo needs no peer then
    const pipe = fs.openSync(p, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    try {
      fs.readSync(fd, Buffer.alloc(10));
      assert.equal(sys.lseek(fd, 0, sys.SEEK_CUR), 10);
      assert.equal(sys.lseek(fd, -4, sys.SEEK_END), 12);
      assert.ok(sys.setPipeSize(pipe, 1 << 20) >= 1 << 20);
      assert.throws(() => sys.lseek(pipe, 0, sys.SEEK_CUR), { code: "ESPIPE" });
      assert.throws(() => sys.setPipeSize(fd, 1 << 20), { code: "EBADF" });
    } finally {
      fs.closeSync(fd);
      fs.closeSync(pipe);
    }
  });
});
