/**
 * Valid but unusual layers, applied by dist and extracted by GNU tar (the
 * oracle where the tar formats define the result): every archive format GNU
 * tar writes, sparse files in its four sparse formats, PAX global headers, an
 * entry with both a GNU long name and a PAX path, directory entries after
 * their children, a path twice in one layer, and the empty layers (no bytes,
 * only end blocks, one end block, none after an entry; compressed or not).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as zlib from "node:zlib";
import { applyLayer } from "../../src/archive/apply.ts";
import { bufferStream, isRoot, listTree, pythonTar, removeDir, sha256, tempDir } from "./helpers.ts";

const tmp = tempDir("dist-dialects-");
after(() => removeDir(tmp));

let n = 0;
const fresh = () => {
  const d = join(tmp, `t${n++}`);
  fs.mkdirSync(d);
  return d;
};

/** dist's tree and GNU tar's of the same archive, with directory times, and the diffID dist reported. */
async function both(tar: Buffer) {
  const ours = fresh();
  const r = await applyLayer(ours, bufferStream(tar, 4099));
  const theirs = fresh();
  // as root GNU tar keeps owners; --xattrs for the SCHILY records; holes kept as holes
  execFileSync("tar", ["-x", "-p", "--xattrs", "--xattrs-include=*", "-C", theirs], { input: tar });
  return { ours, theirs, diffID: r.diffID };
}

function assertSameTree(ours: string, theirs: string, what: string): void {
  assert.deepEqual(
    listTree(ours, { mtimes: true, dirMtimes: true }),
    listTree(theirs, { mtimes: true, dirMtimes: true }),
    what,
  );
}

/** A source tree for GNU tar: a path ustar splits into prefix and name, a hardlink, a symlink, odd modes. */
function source(): string {
  const src = join(tmp, "src");
  fs.mkdirSync(join(src, "d".repeat(90), "e".repeat(50)), { recursive: true });
  fs.writeFileSync(join(src, "d".repeat(90), "e".repeat(50), `${"f".repeat(60)}.txt`), "long path\n");
  fs.writeFileSync(join(src, "plain.txt"), "plain\n");
  fs.chmodSync(join(src, "plain.txt"), 0o4750);
  fs.linkSync(join(src, "plain.txt"), join(src, "hard.txt"));
  fs.symlinkSync("plain.txt", join(src, "sym"));
  fs.mkdirSync(join(src, "ro"));
  fs.writeFileSync(join(src, "ro", "in.txt"), "in a read-only dir\n");
  fs.chmodSync(join(src, "ro"), 0o555);
  for (const p of ["", "plain.txt", "ro", "ro/in.txt", "d".repeat(90)]) {
    fs.utimesSync(join(src, p), 1700000000, 1600000000 + p.length);
  }
  return src;
}

describe("tar dialects against GNU tar", { skip: !isRoot && "GNU tar keeps owners only as root" }, () => {
  const src = source();

  for (const format of ["v7", "oldgnu", "gnu", "ustar", "posix"]) {
    test(`GNU tar --format=${format}: the same tree`, async () => {
      // v7 and ustar cannot hold every name: what they can is what they get
      const names = format === "v7" ? ["plain.txt", "hard.txt", "sym", "ro"] : ["."];
      const tar = execFileSync("tar", [`--format=${format}`, "-C", src, "-cf", "-", ...names]);
      const { ours, theirs, diffID } = await both(tar);
      assertSameTree(ours, theirs, format);
      assert.equal(diffID, `sha256:${sha256(tar)}`);
    });
  }

  test("sparse files in the four formats: the same bytes, with holes", async () => {
    const dir = join(tmp, "sparse-src");
    fs.mkdirSync(dir);
    const fd = fs.openSync(join(dir, "sparse.bin"), "w");
    for (let i = 0; i < 8; i++) fs.writeSync(fd, Buffer.alloc(8192, 0x30 + i), 0, 8192, (i * 33 + 1) << 14);
    fs.ftruncateSync(fd, 8 << 20);
    fs.closeSync(fd);
    for (const args of [
      ["--format=gnu", "--sparse"],
      ["--format=posix", "--sparse-version=0.0"],
      ["--format=posix", "--sparse-version=0.1"],
      ["--format=posix", "--sparse-version=1.0"],
    ]) {
      const tar = execFileSync("tar", [...args, "-C", dir, "-cf", "-", "sparse.bin"]);
      const { ours, theirs } = await both(tar);
      assertSameTree(ours, theirs, args.join(" "));
      const st = fs.statSync(join(ours, "sparse.bin"));
      assert.equal(st.size, 8 << 20);
      assert.ok(st.blocks * 512 < 1 << 20, `${args.join(" ")}: ${st.blocks} blocks allocated`);
    }
  });

  test("PAX global headers apply to the entries after them (POSIX; containerd ignores them)", async () => {
    const out = join(tmp, "global.tar");
    pythonTar(
      out,
      `t = tarfile.open(OUT, "w", format=tarfile.PAX_FORMAT, pax_headers={"mtime": "1234567890", "uid": "42", "gid": "43", "comment": "git archive writes one"})
for name in ("a.txt", "b.txt"):
    i = tarfile.TarInfo(name); i.size = 2; i.mode = 0o644; i.mtime = 1700000000; i.uid = 0; i.gid = 0
    t.addfile(i, io.BytesIO(b"x\\n"))
t.close()`,
    );
    const tar = fs.readFileSync(out);
    const { ours, theirs } = await both(tar);
    assertSameTree(ours, theirs, "global headers");
    assert.equal(fs.statSync(join(ours, "a.txt")).uid, 42);
  });

  test("an entry with both a GNU long name and a PAX path takes the PAX path, as GNU tar does", async () => {
    const out = join(tmp, "both.tar");
    pythonTar(
      out,
      `long = "gnu-" + "n" * 120
def raw(info, fmt):
    return info.tobuf(format=fmt, encoding="utf-8", errors="surrogateescape")
with open(OUT, "wb") as f:
    # an 'x' header naming the entry, then an 'L' header naming it otherwise, then the entry
    x = tarfile.TarInfo("pax-name-" + "p" * 120); x.size = 6; x.mode = 0o644; x.mtime = 1700000000
    buf = raw(x, tarfile.PAX_FORMAT)
    f.write(buf[:-512])  # the extended header and its records, without the ustar header
    g = tarfile.TarInfo(long); g.size = 6; g.mode = 0o644; g.mtime = 1700000000
    f.write(raw(g, tarfile.GNU_FORMAT))
    f.write(b"hello\\n".ljust(512, b"\\0"))
    f.write(b"\\0" * 1024)`,
    );
    const tar = fs.readFileSync(out);
    const { ours, theirs } = await both(tar);
    assertSameTree(ours, theirs, "GNU long name and PAX path");
    assert.deepEqual(fs.readdirSync(ours), [`pax-name-${"p".repeat(120)}`]);
  });

  test("directories after their children, a path twice, a hardlink to an earlier entry", async () => {
    const out = join(tmp, "order.tar");
    pythonTar(
      out,
      `t = tarfile.open(OUT, "w", format=tarfile.PAX_FORMAT)
def f(name, data, mode=0o644):
    i = tarfile.TarInfo(name); i.size = len(data); i.mode = mode; i.mtime = 1700000000; t.addfile(i, io.BytesIO(data))
def d(name, mode, mtime):
    i = tarfile.TarInfo(name); i.type = tarfile.DIRTYPE; i.mode = mode; i.mtime = mtime; t.addfile(i)
f("a/b/file.txt", b"first\\n")
f("a/b/file.txt", b"second, the one that stays\\n", 0o600)
l = tarfile.TarInfo("a/link.txt"); l.type = tarfile.LNKTYPE; l.linkname = "a/b/file.txt"; l.mtime = 1700000000; l.mode = 0o600; t.addfile(l)
d("a/b", 0o555, 1600000000)
d("a", 0o750, 1500000000)
t.close()`,
    );
    const { ours, theirs } = await both(fs.readFileSync(out));
    assertSameTree(ours, theirs, "order");
    assert.equal(fs.readFileSync(join(ours, "a/b/file.txt"), "utf8"), "second, the one that stays\n");
  });
});

describe("empty layers", () => {
  const one = execFileSync("tar", ["--format=ustar", "-C", tmp, "-cf", "-", "--files-from=/dev/null"]);
  test("no bytes, end blocks only, one end block, none after an entry: plain, gzip and zstd", async () => {
    const file = Buffer.from(
      execFileSync("python3", [
        "-c",
        `import tarfile, io, sys
t = tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.USTAR_FORMAT)
i = tarfile.TarInfo("only.txt"); i.size = 3; t.addfile(i, io.BytesIO(b"hi\\n")); t.close()`,
      ]),
    ).subarray(0, 1024);
    const tars = {
      "no bytes": Buffer.alloc(0),
      "end blocks only": one.subarray(0, 1024),
      "one end block": one.subarray(0, 512),
      "end blocks and record padding": one,
      "no end blocks after an entry": file,
    };
    for (const [what, tar] of Object.entries(tars)) {
      for (const [how, bytes] of [
        ["plain", tar],
        ["gzip", zlib.gzipSync(tar)],
        ["zstd", zlib.zstdCompressSync(tar)],
      ] as const) {
        const root = fresh();
        const r = await applyLayer(root, bufferStream(bytes));
        assert.equal(r.diffID, `sha256:${sha256(tar)}`, `${what}, ${how}`);
        assert.deepEqual(fs.readdirSync(root), what.endsWith("entry") ? ["only.txt"] : [], `${what}, ${how}`);
      }
    }
  });
});
