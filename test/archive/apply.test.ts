import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, before, describe, test } from "node:test";
import * as zlib from "node:zlib";
import { applyLayer } from "../../src/archive/apply.ts";
import * as sys from "../../src/sys/index.ts";
import {
  bufferStream,
  fileStream,
  isRoot,
  listTree,
  pythonLayers,
  pythonTar,
  removeDir,
  sha256,
  tempDir,
} from "./helpers.ts";

const tmp = tempDir();
const layers = join(tmp, "layers");
after(() => removeDir(tmp));
before(() => {
  pythonLayers("edge", layers);
  pythonLayers("base", layers);
});

let n = 0;
function freshRoot(): string {
  const d = join(tmp, `root-${n++}`);
  fs.mkdirSync(d);
  return d;
}

async function applyAll(root: string, names: string[], opts: Parameters<typeof applyLayer>[2] = {}): Promise<string[]> {
  const warnings: string[] = [];
  for (const name of names) {
    await applyLayer(root, fileStream(join(layers, name)), { onWarning: (w) => warnings.push(w), ...opts });
  }
  return warnings;
}

const mode = (p: string) => (fs.lstatSync(p).mode & 0o7777).toString(8);
const xattr = (p: string, name: string) => sys.lgetxattr(p, name)?.toString();
const exists = (p: string) => fs.lstatSync(p, { throwIfNoEntry: false }) !== undefined;

/** The checks of the test bed's verify_edge.sh that need no privileges. */
function checkEdge(R: string): void {
  const D = join(R, "data");
  assert.ok(fs.statSync(join(R, "bin/busybox")).isFile(), "busybox present");
  assert.ok(!exists(join(R, "bin/vi")), "whiteout removed bin/vi of the base layer");
  assert.equal(fs.readlinkSync(join(R, "bin/sh")), "busybox");
  const wh = execFileSync("find", [R, "-name", ".wh.*"], { encoding: "utf8" });
  assert.equal(wh, "", "no .wh.* files left");
  assert.ok(!exists(join(D, "remove-me.txt")));
  assert.ok(!exists(join(D, "dir-to-delete")));
  assert.ok(!exists(join(D, "opaque/old1.txt")), "opaque hides old1.txt");
  assert.ok(!exists(join(D, "opaque/old-sub")), "opaque hides old-sub");
  assert.ok(fs.statSync(join(D, "opaque/new.txt")).isFile(), "the same layer's new.txt survives its opaque marker");
  assert.ok(fs.statSync(join(D, "replace-file-with-dir/inside.txt")).isFile());
  assert.ok(fs.lstatSync(join(D, "replace-dir-with-file")).isFile());
  assert.match(fs.readFileSync(join(D, "keep.txt"), "utf8"), /overwritten in layer B/);
  assert.equal(fs.readlinkSync(join(D, "symlink-rel")), "hardlink-src.txt");
  assert.equal(fs.readlinkSync(join(D, "symlink-abs")), "/data/keep.txt");
  assert.equal(fs.readlinkSync(join(D, "symlink-dangling")), "../nonexistent/target");
  const src = fs.statSync(join(D, "hardlink-src.txt"));
  assert.equal(fs.statSync(join(D, "hardlink-dst.txt")).ino, src.ino);
  assert.equal(fs.statSync(join(D, "sub/hardlink-2.txt")).ino, src.ino);
  assert.match(fs.readFileSync(join(D, "long", "h".repeat(140)), "utf8"), /hardlinked content/);
  assert.equal(mode(join(D, "perms/setuid")), "4755");
  assert.equal(mode(join(D, "perms/setgid")), "2755");
  assert.equal(mode(join(D, "perms/sticky-dir")), "1777");
  assert.equal(mode(join(D, "perms/no-perms")), "0");
  assert.equal(mode(join(D, "perms/readonly-dir")), "555");
  assert.ok(fs.lstatSync(join(D, "perms/readonly-dir/file-in-ro-dir")).isFile());
  assert.equal(mode(join(D, "perms/dir-owned-1000")), "700");
  assert.equal(xattr(join(D, "xattr.txt"), "user.testbed"), "changed");
  assert.equal(xattr(join(D, "xattr-dir"), "user.dirattr"), "on a directory");
  assert.ok(fs.lstatSync(join(D, "fifo")).isFIFO());
  assert.equal(fs.statSync(join(D, "empty-file")).size, 0);
  assert.ok(fs.statSync(join(D, "empty-dir")).isDirectory());
  assert.ok(fs.statSync(join(D, "long", "d".repeat(120), `${"f".repeat(150)}.txt`)).isFile());
  assert.ok(fs.readlinkSync(join(D, "long/symlink-long-target")).length > 200);
  assert.ok(fs.statSync(join(D, "unicode/héllo wörld ✓.txt")).isFile());
  assert.ok(fs.statSync(join(D, "unicode/日本語.txt")).isFile());
  assert.ok(fs.statSync(join(D, "implicit/parent/file.txt")).isFile());
  const ns = (p: string) => fs.lstatSync(join(D, p), { bigint: true }).mtimeNs;
  assert.equal(ns("mtime-epoch.txt"), 0n);
  assert.equal(ns("mtime-2100.txt"), 4102444800n * 1_000_000_000n);
  assert.equal(ns("empty-file"), 1700000000n * 1_000_000_000n);
  assert.equal(ns("mtime-subsecond.txt"), 1700000000123456789n, "nanosecond mtime from PAX");
  assert.equal(ns("symlink-abs"), 1700000000n * 1_000_000_000n, "symlink times set without following");
  assert.equal(ns("perms/readonly-dir"), 1700000000n * 1_000_000_000n, "directory times set last");
  assert.equal(ns("long"), 1700000000n * 1_000_000_000n);
  assert.equal(fs.statSync(join(D, "random-1m.bin")).size, 1 << 20);
}

describe("applyLayer: the edge layers", () => {
  test("whiteouts, opaque dirs, replacements, links, modes, xattrs, names and times", async () => {
    const R = freshRoot();
    await applyAll(R, ["base.tar", "content.tar", "whiteouts.tar"]);
    checkEdge(R);
  });

  test("ownership and device nodes", { skip: !isRoot && "needs root" }, async () => {
    const R = freshRoot();
    const warnings = await applyAll(R, ["base.tar", "content.tar", "whiteouts.tar"]);
    assert.deepEqual(warnings, []);
    const D = join(R, "data");
    const owner = (p: string) => {
      const st = fs.lstatSync(join(D, p));
      return `${st.uid}:${st.gid}`;
    };
    assert.equal(owner("perms/owned-1000"), "1000:1000");
    assert.equal(owner("perms/owned-nobody"), "65534:65534");
    assert.equal(owner("perms/owned-100000"), "100000:100000");
    assert.equal(owner("perms/dir-owned-1000"), "1000:1000");
    assert.equal(mode(join(D, "perms/setuid")), "4755", "setuid survives the chown");
    const nul = fs.lstatSync(join(D, "null-dev"));
    assert.ok(nul.isCharacterDevice());
    assert.equal(`${sys.major(nul.rdev)}:${sys.minor(nul.rdev)}`, "1:3");
    const loop = fs.lstatSync(join(D, "loop-dev"));
    assert.ok(loop.isBlockDevice());
    assert.equal(`${sys.major(loop.rdev)}:${sys.minor(loop.rdev)}`, "7:0");
  });

  test("a hardlink to a file of a lower layer", async () => {
    const R = freshRoot();
    await applyAll(R, ["base.tar", "content.tar", "xlayer.tar"]);
    assert.equal(
      fs.statSync(join(R, "data/hardlink-to-lower.txt")).ino,
      fs.statSync(join(R, "data/hardlink-src.txt")).ino,
    );
  });

  test("layer files and streams make the same tree; the empty layer changes nothing", async () => {
    const a = freshRoot();
    const b = freshRoot();
    await applyAll(a, ["base.tar", "content.tar", "whiteouts.tar"]);
    for (const name of ["base.tar", "content.tar", "whiteouts.tar"]) await applyLayer(b, { path: join(layers, name) });
    const list = (r: string) => {
      const t = listTree(r, { mtimes: true, dirMtimes: true });
      // implicit parents get the time of the apply
      delete t["data/implicit"].mtimeNs;
      delete t["data/implicit/parent"].mtimeNs;
      return t;
    };
    const before = list(a);
    assert.deepEqual(list(b), before);
    const r = await applyLayer(a, fileStream(join(layers, "empty.tar")));
    assert.equal(r.diffID, `sha256:${sha256(fs.readFileSync(join(layers, "empty.tar")))}`);
    assert.deepEqual(list(a), before);
  });

  test("non-root (runuser -u nobody): devices skipped with a warning, the rest applied", {
    skip: !isRoot && "needs root to switch to nobody",
  }, async () => {
    const dir = tempDir("dist-archive-nobody-");
    try {
      fs.chmodSync(dir, 0o755);
      fs.chownSync(dir, 65534, 65534);
      const R = join(dir, "rootfs");
      const script = join(dir, "apply.ts");
      fs.writeFileSync(
        script,
        `import { applyLayer } from ${JSON.stringify(join(import.meta.dirname, "../../src/archive/apply.ts"))};
import { createReadStream, mkdirSync } from "node:fs";
const [root, ...files] = process.argv.slice(2);
mkdirSync(root, { recursive: true });
const warnings = [];
for (const f of files) await applyLayer(root, createReadStream(f), { onWarning: (w) => warnings.push(w) });
console.log(JSON.stringify(warnings));
`,
      );
      for (const f of ["base.tar", "content.tar", "whiteouts.tar"]) fs.copyFileSync(join(layers, f), join(dir, f));
      // a read-only directory of a lower layer that the next layer changes
      pythonTar(
        join(dir, "ro-1.tar"),
        `t = tarfile.open(OUT, "w", format=tarfile.PAX_FORMAT)
ti = tarfile.TarInfo("ro"); ti.type = tarfile.DIRTYPE; ti.mode = 0o555; t.addfile(ti)
ti = tarfile.TarInfo("ro/old"); ti.size = 3; t.addfile(ti, io.BytesIO(b"old"))
t.close()`,
      );
      pythonTar(
        join(dir, "ro-2.tar"),
        `t = tarfile.open(OUT, "w", format=tarfile.PAX_FORMAT)
ti = tarfile.TarInfo("ro/old"); ti.size = 3; t.addfile(ti, io.BytesIO(b"new"))
ti = tarfile.TarInfo("ro/added"); ti.size = 1; t.addfile(ti, io.BytesIO(b"a"))
t.close()`,
      );
      execFileSync("chown", ["-R", "65534:65534", dir]);
      const res = spawnSync(
        "runuser",
        [
          "-u",
          "nobody",
          "--",
          process.execPath,
          script,
          R,
          ...["base.tar", "content.tar", "whiteouts.tar", "ro-1.tar", "ro-2.tar"].map((f) => join(dir, f)),
        ],
        { encoding: "utf8" },
      );
      assert.equal(res.status, 0, res.stderr);
      const warnings = JSON.parse(res.stdout) as string[];
      assert.ok(
        warnings.some((w) => /skipped char device "data\/null-dev"/.test(w)),
        res.stdout,
      );
      assert.ok(
        warnings.some((w) => /skipped block device "data\/loop-dev"/.test(w)),
        res.stdout,
      );
      checkEdge(R);
      assert.ok(!exists(join(R, "data/null-dev")));
      const st = fs.statSync(join(R, "data/perms/owned-1000"));
      assert.equal(`${st.uid}:${st.gid}`, "65534:65534", "ownership not applied without root");
      assert.equal(fs.readFileSync(join(R, "ro/old"), "utf8"), "new");
      assert.equal(fs.readFileSync(join(R, "ro/added"), "utf8"), "a");
      assert.equal(mode(join(R, "ro")), "555", "the borrowed write permission is given back");
    } finally {
      removeDir(dir);
    }
  });
});

describe("applyLayer: the changeset rules on crafted layers", () => {
  test("opaque markers keep this layer's entries wherever they sit, and hide the lower ones", async () => {
    const R = freshRoot();
    const lower = join(tmp, "opq-lower.tar");
    const upper = join(tmp, "opq-upper.tar");
    pythonTar(
      lower,
      `t = tarfile.open(OUT, "w", format=tarfile.PAX_FORMAT)
def f(name, data=b"x"):
    ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
for n in ["d/old.txt", "d/sub/old2.txt", "d/keepdir/lowerfile", "other/stay.txt"]: f(n)
t.close()`,
    );
    pythonTar(
      upper,
      `t = tarfile.open(OUT, "w", format=tarfile.PAX_FORMAT)
def f(name, data=b"y"):
    ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
f("d/new-before.txt"); f("d/sub2/x")
f("d/.wh..wh..opq")
f("d/new-after.txt"); f("d/keepdir/y")
t.close()`,
    );
    await applyLayer(R, fileStream(lower));
    await applyLayer(R, fileStream(upper));
    const t = listTree(R);
    assert.deepEqual(Object.keys(t).sort(), [
      "d",
      "d/keepdir",
      "d/keepdir/y",
      "d/new-after.txt",
      "d/new-before.txt",
      "d/sub2",
      "d/sub2/x",
      "other",
      "other/stay.txt",
    ]);
  });

  test("replacements: file and directory both ways, a symlink replaced (not followed), a hardlink broken", async () => {
    const R = freshRoot();
    const outside = freshRoot();
    pythonTar(
      join(tmp, "rep-1.tar"),
      `t = tarfile.open(OUT, "w", format=tarfile.PAX_FORMAT)
def f(name, data=b"one"):
    ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
f("a"); f("b/inner"); f("h1")
ti = tarfile.TarInfo("h2"); ti.type = tarfile.LNKTYPE; ti.linkname = "h1"; t.addfile(ti)
ti = tarfile.TarInfo("s"); ti.type = tarfile.SYMTYPE; ti.linkname = ${JSON.stringify(outside)}; t.addfile(ti)
ti = tarfile.TarInfo("sf"); ti.type = tarfile.SYMTYPE; ti.linkname = ${JSON.stringify(`${outside}/file`)}; t.addfile(ti)
t.close()`,
    );
    pythonTar(
      join(tmp, "rep-2.tar"),
      `t = tarfile.open(OUT, "w", format=tarfile.PAX_FORMAT)
def f(name, data=b"two"):
    ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
ti = tarfile.TarInfo("a"); ti.type = tarfile.DIRTYPE; ti.mode = 0o750; t.addfile(ti)
f("a/x"); f("b"); f("h1")
ti = tarfile.TarInfo("s"); ti.type = tarfile.DIRTYPE; t.addfile(ti)
f("s/in-dir"); f("sf")
t.close()`,
    );
    fs.writeFileSync(join(outside, "file"), "host");
    await applyLayer(R, fileStream(join(tmp, "rep-1.tar")));
    await applyLayer(R, fileStream(join(tmp, "rep-2.tar")));
    assert.ok(fs.lstatSync(join(R, "a")).isDirectory());
    assert.equal(mode(join(R, "a")), "750");
    assert.equal(fs.readFileSync(join(R, "a/x"), "utf8"), "two");
    assert.ok(fs.lstatSync(join(R, "b")).isFile());
    assert.equal(fs.readFileSync(join(R, "h1"), "utf8"), "two");
    assert.equal(fs.readFileSync(join(R, "h2"), "utf8"), "one", "the other name of a replaced hardlink keeps its data");
    assert.ok(fs.lstatSync(join(R, "s")).isDirectory());
    assert.ok(fs.lstatSync(join(R, "sf")).isFile());
    assert.deepEqual(fs.readdirSync(outside), ["file"]);
    assert.equal(fs.readFileSync(join(outside, "file"), "utf8"), "host");
  });

  test("symlinked parents resolve inside the root; whiteouts of nothing are no-ops; ./ sets the root's mode", async () => {
    const R = freshRoot();
    pythonTar(
      join(tmp, "sym-1.tar"),
      `t = tarfile.open(OUT, "w", format=tarfile.PAX_FORMAT)
ti = tarfile.TarInfo("usr/lib"); ti.type = tarfile.DIRTYPE; t.addfile(ti)
ti = tarfile.TarInfo("lib"); ti.type = tarfile.SYMTYPE; ti.linkname = "usr/lib"; t.addfile(ti)
ti = tarfile.TarInfo("abs"); ti.type = tarfile.SYMTYPE; ti.linkname = "/usr/lib"; t.addfile(ti)
t.close()`,
    );
    pythonTar(
      join(tmp, "sym-2.tar"),
      `t = tarfile.open(OUT, "w", format=tarfile.PAX_FORMAT)
ti = tarfile.TarInfo("./"); ti.type = tarfile.DIRTYPE; ti.mode = 0o750; t.addfile(ti)
for n in ["lib/x.so", "abs/y.so", "./lib/../z.txt"]:
    ti = tarfile.TarInfo(n); ti.size = 1; t.addfile(ti, io.BytesIO(b"1"))
for n in ["nothing/.wh.here", ".wh.absent"]:
    ti = tarfile.TarInfo(n); t.addfile(ti)
t.close()`,
    );
    await applyLayer(R, fileStream(join(tmp, "sym-1.tar")));
    await applyLayer(R, fileStream(join(tmp, "sym-2.tar")));
    assert.ok(fs.lstatSync(join(R, "usr/lib/x.so")).isFile());
    assert.ok(fs.lstatSync(join(R, "usr/lib/y.so")).isFile());
    assert.ok(fs.lstatSync(join(R, "z.txt")).isFile());
    assert.ok(fs.lstatSync(join(R, "lib")).isSymbolicLink());
    assert.ok(!exists(join(R, "nothing")), "a whiteout in a missing directory creates nothing");
    assert.equal(mode(R), "750");
  });

  test("directories a layer changes without naming them keep their times (root included), as umoci does", async () => {
    const R = freshRoot();
    pythonTar(
      join(tmp, "times-1.tar"),
      `t = tarfile.open(OUT, "w", format=tarfile.PAX_FORMAT)
for n in ["./", "data"]:
    ti = tarfile.TarInfo(n); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; ti.mtime = 1600000000; t.addfile(ti)
for n in ["data/old.txt", "top.txt"]:
    ti = tarfile.TarInfo(n); ti.size = 1; ti.mtime = 1600000000; t.addfile(ti, io.BytesIO(b"1"))
t.close()`,
    );
    pythonTar(
      join(tmp, "times-2.tar"),
      `t = tarfile.open(OUT, "w", format=tarfile.PAX_FORMAT)
for n in ["new-top.txt", "data/new.txt", ".wh.top.txt", "data/.wh.old.txt"]:
    ti = tarfile.TarInfo(n); ti.size = 0 if ".wh." in n else 1; ti.mtime = 1700000000
    t.addfile(ti, None if ".wh." in n else io.BytesIO(b"2"))
t.close()`,
    );
    await applyLayer(R, fileStream(join(tmp, "times-1.tar")));
    await applyLayer(R, fileStream(join(tmp, "times-2.tar")));
    assert.ok(exists(join(R, "data/new.txt")) && !exists(join(R, "top.txt")) && !exists(join(R, "data/old.txt")));
    assert.equal(fs.statSync(R).mtimeMs, 1600000000000, "the root keeps the first layer's time");
    assert.equal(fs.statSync(join(R, "data")).mtimeMs, 1600000000000, "data keeps the first layer's time");
  });

  test("an invalid whiteout name is refused", async () => {
    const R = freshRoot();
    pythonTar(
      join(tmp, "badwh.tar"),
      `t = tarfile.open(OUT, "w", format=tarfile.PAX_FORMAT)
t.addfile(tarfile.TarInfo("a/.wh.."))
t.close()`,
    );
    await assert.rejects(applyLayer(R, fileStream(join(tmp, "badwh.tar"))), /invalid whiteout name/);
  });
});

describe("applyLayer: hostile layers", () => {
  const outside = join(tmp, "outside");
  const hostile = join(tmp, "hostile");
  before(() => {
    fs.mkdirSync(outside, { recursive: true });
    fs.writeFileSync(join(outside, "victim.txt"), "host file\n");
    pythonLayers("breakout", hostile, outside);
  });
  const untouched = () => {
    assert.deepEqual(fs.readdirSync(outside), ["victim.txt"], "nothing written outside the root");
    assert.equal(fs.statSync(join(outside, "victim.txt")).nlink, 1, "no hardlink to the host file");
    assert.equal(fs.readFileSync(join(outside, "victim.txt"), "utf8"), "host file\n");
  };

  test("symlinks to absolute and ../ host paths: files through them stay inside the root", async () => {
    const R = freshRoot();
    await applyLayer(R, fileStream(join(hostile, "breakout-symlinks.tar")));
    untouched();
    assert.ok(fs.lstatSync(join(R, outside, "abs/pwned.txt")).isFile(), "confined under ROOT/<outside>/abs");
    assert.ok(fs.lstatSync(join(R, outside, "rel/pwned.txt")).isFile(), "confined under ROOT/<outside>/rel");
    assert.ok(fs.lstatSync(join(R, outside, "pwned-dir.txt")).isFile());
    assert.ok(fs.lstatSync(join(R, "absolute-name.txt")).isFile(), "absolute names are root-relative");
    assert.equal(fs.readlinkSync(join(R, "escape-abs")), `${outside}/abs`, "the symlink itself is kept verbatim");
  });

  test("an entry name climbing out with ../ is refused", async () => {
    const R = freshRoot();
    await assert.rejects(applyLayer(R, fileStream(join(hostile, "breakout-dotdot.tar"))), (e: Error) => {
      assert.match(e.message, /escapes the root directory/);
      assert.match(e.message, /dotdot\.txt/);
      assert.equal(e.message.split("dotdot.txt").length, 2, `the entry is named once: ${e.message}`);
      return true;
    });
    untouched();
  });

  test("from a layer file too: the error keeps its kind and nothing escapes", async () => {
    const R = freshRoot();
    await assert.rejects(applyLayer(R, { path: join(hostile, "breakout-dotdot.tar") }), (e: Error) => {
      assert.equal((e as { code?: string }).code, "InvalidArgument");
      assert.match(e.message, /escapes the root directory/);
      return true;
    });
    untouched();
    assert.ok(fs.lstatSync(join(R, "ok-before.txt")).isFile());
  });

  test("hardlinks to host files (by ../ or through a symlink) are refused", async () => {
    for (const name of ["breakout-hardlink.tar", "breakout-hardlink-symlink.tar"]) {
      const R = freshRoot();
      await assert.rejects(applyLayer(R, fileStream(join(hostile, name))), /escapes the root|does not exist/, name);
      untouched();
    }
  });

  test("a symlink loop in a parent is an error, not a hang", async () => {
    const R = freshRoot();
    await assert.rejects(
      applyLayer(R, fileStream(join(hostile, "breakout-loop.tar"))),
      /too many levels of symbolic links/,
    );
  });
});

describe("applyLayer: input streams", () => {
  test("gzip and zstd layers: detected, diffID of the uncompressed tar, digest of the compressed bytes", async () => {
    const tar = fs.readFileSync(join(layers, "content.tar"));
    const cases = [
      ["gzip", zlib.gzipSync(tar)],
      ["zstd", zlib.zstdCompressSync(tar)],
      ["none", tar],
    ] as const;
    for (const [kind, bytes] of cases) {
      const R = freshRoot();
      const r = await applyLayer(R, bufferStream(bytes));
      assert.equal(r.compression, kind);
      assert.equal(r.diffID, `sha256:${sha256(tar)}`);
      assert.equal(r.size, tar.length);
      assert.equal(r.compressedDigest, kind === "none" ? undefined : `sha256:${sha256(bytes)}`);
      assert.equal(fs.statSync(join(R, "data/random-1m.bin")).size, 1 << 20);
    }
  });

  test("verified: the compressed bytes are not hashed again; decompression errors name the source", async () => {
    const tar = fs.readFileSync(join(layers, "content.tar"));
    const gz = zlib.gzipSync(tar);
    const r = await applyLayer(freshRoot(), bufferStream(gz), { verified: true });
    assert.equal(r.compression, "gzip");
    assert.equal(r.diffID, `sha256:${sha256(tar)}`);
    assert.equal(r.compressedDigest, undefined);
    await assert.rejects(
      applyLayer(freshRoot(), bufferStream(gz.subarray(0, gz.length >> 1)), { verified: true, what: "layer L1" }),
      /layer L1/,
    );
  });

  test("a full filesystem is reported as ENOSPC with the entry name", { skip: !isRoot && "needs root" }, async () => {
    const R = freshRoot();
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", R]);
    try {
      await assert.rejects(applyLayer(R, fileStream(join(layers, "content.tar"))), (e: Error) => {
        assert.equal((e as { code?: string }).code, "ENOSPC", e.message);
        assert.match(e.message, /layer entry "[^"]+" \(offset \d+\)/);
        return true;
      });
    } finally {
      execFileSync("umount", [R]);
    }
  });

  test("truncated gzip, truncated tar and a bad header checksum are clear errors", async () => {
    const tar = fs.readFileSync(join(layers, "content.tar"));
    const gz = zlib.gzipSync(tar);
    await assert.rejects(applyLayer(freshRoot(), bufferStream(gz.subarray(0, gz.length >> 1))), (e: Error) => {
      assert.equal((e as { code?: string }).code, "DataLoss");
      assert.match(e.message, /gzip stream is truncated/);
      return true;
    });
    await assert.rejects(applyLayer(freshRoot(), bufferStream(tar.subarray(0, 600_000))), /archive truncated/);
    const bad = Buffer.from(tar);
    bad[512 * 3 + 10] ^= 0x55; // inside a header's name field
    await assert.rejects(applyLayer(freshRoot(), bufferStream(bad)), /invalid header checksum at offset \d+/);
  });

  test("an aborted signal stops the apply", async () => {
    const ctrl = new AbortController();
    ctrl.abort(new Error("stop now"));
    await assert.rejects(
      applyLayer(freshRoot(), fileStream(join(layers, "content.tar")), { signal: ctrl.signal }),
      /stop now/,
    );
  });

  test("a missing target directory is NotFound", async () => {
    await assert.rejects(applyLayer(join(tmp, "nope"), bufferStream(Buffer.alloc(1024))), { code: "NotFound" });
  });
});

describe("applyLayer: layer files (read by the decompression worker)", () => {
  const tar = () => fs.readFileSync(join(layers, "content.tar"));

  test("gzip, zstd and plain files, whole or a range of a bigger file, give the stream's tree and diffID", async () => {
    const t = tar();
    const cases = [
      ["gzip", zlib.gzipSync(t)],
      ["zstd", zlib.zstdCompressSync(t)],
      ["none", t],
    ] as const;
    const reference = freshRoot();
    await applyLayer(reference, bufferStream(t));
    for (const [kind, bytes] of cases) {
      const whole = join(tmp, `layer-file.${kind}`);
      fs.writeFileSync(whole, bytes);
      const R = freshRoot();
      const seen: number[] = [];
      const r = await applyLayer(R, { path: whole }, { onProgress: (n) => seen.push(n) });
      assert.equal(r.compression, kind);
      assert.equal(r.diffID, `sha256:${sha256(t)}`);
      assert.equal(r.size, t.length);
      assert.deepEqual(listTree(R), listTree(reference));
      assert.equal(seen.at(-1), bytes.length, "progress ends at the file's size");
      // the same bytes between unrelated ones
      const padded = join(tmp, `layer-range.${kind}`);
      fs.writeFileSync(padded, Buffer.concat([Buffer.alloc(777, 9), bytes, Buffer.alloc(5000, 7)]));
      const R2 = freshRoot();
      const r2 = await applyLayer(R2, { path: padded, offset: 777, length: bytes.length });
      assert.equal(r2.diffID, r.diffID);
      assert.deepEqual(listTree(R2), listTree(reference));
    }
  });

  test("a truncated gzip file is DataLoss naming the source; a short file and a missing one are clear errors", async () => {
    const gz = zlib.gzipSync(tar());
    const cut = join(tmp, "layer-cut.gz");
    fs.writeFileSync(cut, gz.subarray(0, gz.length >> 1));
    await assert.rejects(applyLayer(freshRoot(), { path: cut }, { what: "layer F" }), (e: Error) => {
      assert.equal((e as { code?: string }).code, "DataLoss");
      assert.match(e.message, /layer F: gzip stream is truncated/);
      return true;
    });
    // a length past the end of the file: the worker's read comes up short
    const whole = join(tmp, "layer-whole.gz");
    fs.writeFileSync(whole, gz);
    await assert.rejects(applyLayer(freshRoot(), { path: whole, length: gz.length + 100 }), (e: Error) => {
      assert.match(e.message, /ended early/);
      assert.equal(
        (e as { code?: string }).code,
        "DataLoss",
        "a short blob is data loss, across the worker's boundary",
      );
      return true;
    });
    await assert.rejects(applyLayer(freshRoot(), { path: join(tmp, "no-such-layer") }), { code: "NotFound" });
  });

  test("an abort stops a file-fed apply", async () => {
    const ctrl = new AbortController();
    const f = join(tmp, "layer-abort.tar");
    fs.copyFileSync(join(layers, "content.tar"), f);
    const p = applyLayer(freshRoot(), { path: f }, { signal: ctrl.signal });
    ctrl.abort(new Error("stop the file"));
    await assert.rejects(p, /stop the file/);
  });
});

describe("applyLayer: overlay upperdirs", {
  skip: !isRoot && "needs root (overlay whiteouts, trusted xattrs, mount)",
}, () => {
  test("whiteouts become 0:0 devices and opaque xattrs; a hardlink to a lower file is copied up; the mount shows the edge checks", async () => {
    const L1 = freshRoot();
    const L2 = freshRoot();
    const L3 = freshRoot();
    const L4 = freshRoot();
    await applyAll(L1, ["base.tar"]);
    await applyAll(L2, ["content.tar"], { convertWhiteout: "overlay", lowerDirs: [L1] });
    await applyAll(L3, ["whiteouts.tar"], { convertWhiteout: "overlay", lowerDirs: [L2, L1] });
    const wh = fs.lstatSync(join(L3, "data/remove-me.txt"));
    assert.ok(wh.isCharacterDevice() && wh.rdev === 0, "whiteout device");
    assert.ok(fs.lstatSync(join(L3, "bin/vi")).isCharacterDevice());
    assert.equal(xattr(join(L3, "data/opaque"), "trusted.overlay.opaque"), "y");
    assert.ok(fs.lstatSync(join(L3, "data/opaque/new.txt")).isFile(), "the layer's own entry survives in the upperdir");
    await applyAll(L4, ["xlayer.tar"], { convertWhiteout: "overlay", lowerDirs: [L3, L2, L1] });
    assert.equal(
      fs.statSync(join(L4, "data/hardlink-to-lower.txt")).ino,
      fs.statSync(join(L4, "data/hardlink-src.txt")).ino,
    );
    assert.equal(mode(join(L4, "data/hardlink-src.txt")), "640");
    assert.equal(mode(join(L4, "data")), "755", "copied-up parent keeps the lower mode");

    const mounted = (lowers: string[], check: (dir: string) => void) => {
      const merged = freshRoot();
      sys.mount("overlay", merged, "overlay", sys.MS_RDONLY, `lowerdir=${lowers.join(":")}`);
      try {
        check(merged);
      } finally {
        sys.umount2(merged, sys.MNT_DETACH);
      }
    };
    mounted([L3, L2, L1], checkEdge);
    // the copy-up leaves the other lower names of that inode behind (as overlayfs's own copy-up does)
    mounted([L4, L3, L2, L1], (m) => {
      assert.equal(
        fs.statSync(join(m, "data/hardlink-to-lower.txt")).ino,
        fs.statSync(join(m, "data/hardlink-src.txt")).ino,
      );
      assert.match(fs.readFileSync(join(m, "data/hardlink-to-lower.txt"), "utf8"), /hardlinked content/);
    });
  });
});

test("applyLayer: an abort while waiting for the first bytes ends the wait", async () => {
  const ctrl = new AbortController();
  const stalled = new PassThrough();
  const p = applyLayer(freshRoot(), stalled, { signal: ctrl.signal });
  setTimeout(() => ctrl.abort(new Error("gave up waiting")), 50);
  await assert.rejects(p, /gave up waiting/);
});
