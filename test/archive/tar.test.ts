import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, describe, test } from "node:test";
import {
  encodeHeader,
  readTar,
  type TarHeader,
  type TarHeaderInit,
  TarParser,
  TarWriter,
} from "../../src/archive/tar/index.ts";
import * as sys from "../../src/sys/index.ts";
import { bufferStream, isRoot, pythonTar, removeDir, tempDir } from "./helpers.ts";

const tmp = tempDir();
after(() => removeDir(tmp));

interface Read {
  header: TarHeader;
  body: Buffer;
}

async function readAll(data: Uint8Array, chunk?: number): Promise<Read[]> {
  const out: Read[] = [];
  for await (const e of readTar(bufferStream(data, chunk))) {
    const parts: Buffer[] = [];
    for await (const c of e.body) parts.push(Buffer.from(c));
    out.push({ header: e.header, body: Buffer.concat(parts) });
  }
  return out;
}

function byName(entries: Read[]): Map<string, Read> {
  return new Map(entries.map((e) => [e.header.name.replace(/\/$/, ""), e]));
}

/** A small tree with every entry type GNU tar can archive, a binary xattr and a long path. */
function makeTree(): string {
  const src = join(tmp, "src");
  fs.mkdirSync(join(src, "sub"), { recursive: true });
  fs.writeFileSync(join(src, "a.txt"), "hello\n");
  sys.lsetxattr(join(src, "a.txt"), "user.bin", Buffer.from([0xff, 0x00, 0xfe, 0x80]));
  fs.linkSync(join(src, "a.txt"), join(src, "sub/hard"));
  fs.symlinkSync("../a.txt", join(src, "sub/sym"));
  sys.mknod(join(src, "fifo"), sys.S_IFIFO | 0o640);
  const long = join(src, "d".repeat(120));
  fs.mkdirSync(long);
  fs.writeFileSync(join(long, `${"f".repeat(150)}.txt`), "long\n");
  if (isRoot) sys.mknod(join(src, "null"), sys.S_IFCHR | 0o666, 1, 3);
  return src;
}

describe("tar reader", () => {
  const src = makeTree();

  test("GNU tar --format=pax: binary xattrs, long names, sub-second mtimes, every type", async () => {
    const tar = execFileSync("tar", ["--xattrs", "--xattrs-include=*", "--format=pax", "-C", src, "-cf", "-", "."]);
    for (const chunk of [tar.length, 512, 1000, 7]) {
      const m = byName(await readAll(tar, chunk));
      const a = m.get("./a.txt")!.header.type === "file" ? m.get("./a.txt")! : m.get("./sub/hard")!;
      assert.deepEqual(
        a.header.xattrs.get("user.bin"),
        Buffer.from([0xff, 0x00, 0xfe, 0x80]),
        "binary xattr kept byte for byte",
      );
      const link = m.get("./a.txt")!.header.type === "link" ? m.get("./a.txt")! : m.get("./sub/hard")!;
      assert.equal(link.header.type, "link");
      assert.equal(m.get("./sub/sym")!.header.type, "symlink");
      assert.equal(m.get("./sub/sym")!.header.linkname, "../a.txt");
      assert.equal(m.get("./fifo")!.header.type, "fifo");
      assert.equal(m.get("./fifo")!.header.mode, 0o640);
      const longName = `./${"d".repeat(120)}/${"f".repeat(150)}.txt`;
      assert.equal(m.get(longName)!.body.toString(), "long\n");
      const st = fs.statSync(join(src, "d".repeat(120), `${"f".repeat(150)}.txt`), { bigint: true });
      assert.equal(m.get(longName)!.header.mtimeNs, st.mtimeNs, "PAX mtime to the nanosecond");
      if (isRoot) {
        assert.equal(m.get("./null")!.header.type, "char");
        assert.equal(`${m.get("./null")!.header.devmajor}:${m.get("./null")!.header.devminor}`, "1:3");
      }
    }
  });

  test("GNU tar --format=gnu: L/K long names and links", async () => {
    fs.symlinkSync(`${"t".repeat(150)}/target`, join(src, "longlink"));
    try {
      const tar = execFileSync("tar", ["--format=gnu", "-C", src, "-cf", "-", "."]);
      const m = byName(await readAll(tar));
      assert.equal(m.get(`./${"d".repeat(120)}/${"f".repeat(150)}.txt`)!.body.toString(), "long\n");
      assert.equal(m.get("./longlink")!.header.linkname, `${"t".repeat(150)}/target`);
    } finally {
      fs.unlinkSync(join(src, "longlink"));
    }
  });

  test("python tarfile: base-256 ids and sizes (GNU), PAX sub-second times, unicode, devices, global headers", async () => {
    const gnu = join(tmp, "py-gnu.tar");
    pythonTar(
      gnu,
      `t = tarfile.open(OUT, "w", format=tarfile.GNU_FORMAT)
ti = tarfile.TarInfo("big-ids"); ti.uid = 10**10; ti.gid = 3000000; ti.size = 3; ti.mtime = 1700000000
t.addfile(ti, io.BytesIO(b"abc"))
ti = tarfile.TarInfo("dev"); ti.type = tarfile.BLKTYPE; ti.devmajor = 259; ti.devminor = 70000
t.addfile(ti)
t.close()`,
    );
    const g = byName(await readAll(fs.readFileSync(gnu)));
    assert.equal(g.get("big-ids")!.header.uid, 10 ** 10);
    assert.equal(g.get("big-ids")!.header.gid, 3000000);
    assert.equal(g.get("big-ids")!.body.toString(), "abc");
    assert.equal(g.get("dev")!.header.type, "block");
    assert.equal(g.get("dev")!.header.devmajor, 259);
    assert.equal(g.get("dev")!.header.devminor, 70000);

    const pax = join(tmp, "py-pax.tar");
    pythonTar(
      pax,
      `t = tarfile.open(OUT, "w", format=tarfile.PAX_FORMAT, pax_headers={"comment": "global"})
ti = tarfile.TarInfo("héllo/日本語.txt"); ti.size = 2; ti.mtime = 1700000000.5
ti.pax_headers = {"SCHILY.xattr.user.k": "v", "mtime": "1700000000.123456789"}
t.addfile(ti, io.BytesIO(b"hi"))
ti = tarfile.TarInfo("fifo"); ti.type = tarfile.FIFOTYPE; t.addfile(ti)
ti = tarfile.TarInfo("dir"); ti.type = tarfile.DIRTYPE; ti.mode = 0o1777; t.addfile(ti)
t.close()`,
    );
    const p = byName(await readAll(fs.readFileSync(pax)));
    const f = p.get("héllo/日本語.txt")!;
    assert.equal(f.header.mtimeNs, 1700000000123456789n);
    assert.equal(f.header.xattrs.get("user.k")!.toString(), "v");
    assert.equal(f.header.pax.get("comment")!.toString(), "global", "global PAX records apply to later entries");
    assert.equal(p.get("fifo")!.header.type, "fifo");
    assert.equal(p.get("dir")!.header.type, "dir");
    assert.equal(p.get("dir")!.header.mode, 0o1777);
  });

  test("a bad header checksum names the offset", async () => {
    const tar = execFileSync("tar", ["--format=ustar", "-C", src, "-cf", "-", "a.txt", "sub"]);
    const bad = Buffer.from(tar);
    bad[1024 + 3] ^= 1; // the second header (a.txt has one body block)
    await assert.rejects(readAll(bad), (e: Error) => {
      assert.equal((e as { code?: string }).code, "DataLoss");
      assert.match(e.message, /invalid header checksum at offset 1024/);
      return true;
    });
  });

  test("truncated archives are errors: inside a body or a header; missing end blocks are not", async () => {
    const tar = execFileSync("tar", ["--format=pax", "-C", src, "-cf", "-", "a.txt", "sub"]);
    await assert.rejects(readAll(tar.subarray(0, 512 * 3 + 2)), /truncated inside the entry at offset/);
    await assert.rejects(readAll(tar.subarray(0, 512 * 4 + 100)), /truncated inside a header block/);
    // whole entries and no end-of-archive blocks, or one: read as GNU tar, Python and Go read them
    const ustar = execFileSync("tar", ["--format=ustar", "-C", src, "-cf", "-", "a.txt"]);
    for (const cut of [1024, 1536]) {
      const entries = await readAll(ustar.subarray(0, cut));
      assert.deepEqual(
        entries.map((e) => [e.header.name, e.body.toString()]),
        [["a.txt", "hello\n"]],
        `cut at ${cut}`,
      );
    }
    assert.equal((await readAll(Buffer.alloc(0))).length, 0, "an empty stream is an empty archive");
  });

  test("sparse files in GNU tar's four formats: data and holes where the file had them", async () => {
    // data at 4 KiB-aligned places (what SEEK_DATA reports), more segments than the old format's header holds
    const sparse = join(tmp, "sparse.bin");
    const fd = fs.openSync(sparse, "w");
    const want = Buffer.alloc(12 << 20);
    for (let i = 0; i < 30; i++) {
      const at = (i * 97 + 5) << 12;
      const piece = Buffer.alloc(4096 * (1 + (i % 3)), 0x41 + (i % 26));
      fs.writeSync(fd, piece, 0, piece.length, at);
      piece.copy(want, at);
    }
    fs.ftruncateSync(fd, want.length); // and a hole at the end
    fs.closeSync(fd);
    const allHole = join(tmp, "hole.bin");
    fs.closeSync(fs.openSync(allHole, "w"));
    fs.truncateSync(allHole, 1 << 20);
    const formats = [
      ["--format=gnu", "--sparse"],
      ["--format=posix", "--sparse-version=0.0"],
      ["--format=posix", "--sparse-version=0.1"],
      ["--format=posix", "--sparse-version=1.0"],
    ];
    for (const args of formats) {
      const tar = execFileSync("tar", [...args, "-C", tmp, "-cf", "-", "sparse.bin", "hole.bin"]);
      for (const chunk of [511, 1 << 20]) {
        const [a, b] = await readAll(tar, chunk);
        assert.equal(a.header.name, "sparse.bin", args.join(" "));
        assert.equal(a.header.type, "file");
        assert.equal(a.header.size, want.length, args.join(" "));
        assert.ok(a.body.equals(want), `${args.join(" ")}: the file's bytes`);
        assert.equal(b.header.name, "hole.bin");
        assert.ok(b.body.equals(Buffer.alloc(1 << 20)), `${args.join(" ")}: all hole`);
      }
      // the applier's handler gets holes, not zeros
      let data = 0;
      let holes = 0;
      const p = new TarParser({
        entry: () => {},
        data: (c) => (data += c.length),
        hole: (n) => (holes += n),
        end: () => {},
      });
      p.push(tar);
      p.finish();
      assert.equal(data + holes, want.length + (1 << 20));
      assert.ok(data < want.length / 4, `${args.join(" ")}: ${data} bytes of data`);
    }
  });

  test("a sparse map out of order, past the file or not covering the stored data is refused", async () => {
    const tar = execFileSync("tar", ["--format=posix", "--sparse-version=0.1", "-C", tmp, "-cf", "-", "sparse.bin"]);
    const text = tar.toString("latin1");
    const at = text.indexOf("GNU.sparse.map=");
    // swap the first two offsets: out of order (the record keeps its length)
    const end = text.indexOf("\n", at);
    const fields = text.slice(at + 15, end).split(",");
    const swapped = [fields[2], fields[1], fields[0], ...fields.slice(3)].join(",");
    if (swapped.length !== end - at - 15) throw new Error("test setup: offsets of unequal length");
    const bad = Buffer.from(text.slice(0, at + 15) + swapped + text.slice(end), "latin1");
    await assert.rejects(readAll(bad), {
      code: "DataLoss",
      message: /sparse map of the entry "sparse.bin".*out of order/,
    });
  });

  test("unknown entry types are refused clearly", async () => {
    const odd = join(tmp, "odd.tar");
    pythonTar(
      odd,
      `t = tarfile.open(OUT, "w", format=tarfile.USTAR_FORMAT)
ti = tarfile.TarInfo("weird"); ti.type = b"Z"; t.addfile(ti)
t.close()`,
    );
    await assert.rejects(readAll(fs.readFileSync(odd)), /unsupported entry type: type "Z" for "weird" at offset 0/);
  });

  test("the push parser stops at the end blocks and ignores what follows", () => {
    const tar = execFileSync("tar", ["--format=ustar", "-C", src, "-cf", "-", "a.txt"]);
    const names: string[] = [];
    const p = new TarParser({ entry: (h) => names.push(h.name), data: () => {}, end: () => {} });
    p.push(Buffer.concat([tar, Buffer.from("trailing garbage after the archive")]));
    p.finish();
    assert.ok(p.done);
    assert.deepEqual(names, ["a.txt"]);
  });
});

describe("tar writer", () => {
  const entries: [TarHeaderInit, Buffer?][] = [
    [{ name: "dir/", type: "dir", mode: 0o1755, mtimeNs: 1700000000n * 1_000_000_000n }],
    [
      {
        name: "dir/file.txt",
        type: "file",
        mode: 0o4755,
        size: 5,
        uid: 1000,
        gid: 1000,
        uname: "u",
        gname: "g",
        mtimeNs: 1700000000123456789n,
      },
      Buffer.from("hello"),
    ],
    [{ name: `${"d".repeat(120)}/${"f".repeat(150)}.txt`, type: "file", size: 0 }],
    [{ name: "ünïcødé/名前.txt", type: "file", size: 0, uid: 5_000_000, gid: 3 }],
    [{ name: "hard", type: "link", linkname: "dir/file.txt" }],
    [{ name: "sym", type: "symlink", linkname: `/${"t".repeat(200)}/target` }],
    [{ name: "null", type: "char", mode: 0o666, devmajor: 1, devminor: 3 }],
    [{ name: "blk", type: "block", mode: 0o660, devmajor: 259, devminor: 70000 }],
    [{ name: "fifo", type: "fifo", mode: 0o644 }],
    [
      {
        name: "xattrs",
        type: "file",
        size: 0,
        xattrs: new Map([
          ["user.bin", Buffer.from([0xff, 0x00, 0xfe, 0x80])],
          ["security.capability", Buffer.from("0100000200200000000000000000000000000000", "hex")],
        ]),
      },
    ],
  ];

  async function write(): Promise<Buffer> {
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on("data", (c: Buffer) => chunks.push(c));
    const w = new TarWriter(out);
    for (const [h, body] of entries) await w.add(h, body);
    await w.finish();
    return Buffer.concat(chunks);
  }

  test("round trip through our reader, binary xattrs and ns times included", async () => {
    const m = byName(await readAll(await write()));
    for (const [h, body] of entries) {
      const got = m.get(h.name.replace(/\/$/, ""))!;
      assert.ok(got, h.name);
      assert.equal(got.header.type, h.type);
      if (h.mode !== undefined) assert.equal(got.header.mode, h.mode);
      if (h.uid !== undefined) assert.equal(got.header.uid, h.uid);
      if (h.mtimeNs !== undefined) assert.equal(got.header.mtimeNs, h.mtimeNs);
      if (h.linkname !== undefined) assert.equal(got.header.linkname, h.linkname);
      if (h.devmajor !== undefined)
        assert.equal(`${got.header.devmajor}:${got.header.devminor}`, `${h.devmajor}:${h.devminor}`);
      for (const [k, v] of h.xattrs ?? []) assert.deepEqual(got.header.xattrs.get(k), Buffer.from(v));
      assert.deepEqual(got.body, body ?? Buffer.alloc(0));
    }
  });

  test("GNU tar and python tarfile read what we write", async () => {
    const file = join(tmp, "ours.tar");
    fs.writeFileSync(file, await write());
    const listing = execFileSync("tar", ["--numeric-owner", "-tvf", file], { encoding: "utf8" });
    assert.match(listing, /^drwxr-xr-t 0\/0 +0 2023-11-14 \d\d:\d\d dir\/$/m);
    assert.match(listing, /^-rwsr-xr-x 1000\/1000 +5 .* dir\/file\.txt$/m);
    assert.match(listing, /ünïcødé\/名前\.txt/);
    assert.match(listing, /^h--------- .* hard link to dir\/file\.txt$/m);
    assert.match(listing, /^crw-rw-rw- 0\/0 +1,3 .* null$/m);
    assert.match(listing, /^brw-rw---- 0\/0 +259,70000 .* blk$/m);
    assert.match(listing, new RegExp(`${"f".repeat(150)}\\.txt$`, "m"));
    const py = execFileSync(
      "python3",
      [
        "-c",
        `import tarfile, sys, json
t = tarfile.open(sys.argv[1])
out = {}
for m in t.getmembers():
    out[m.name] = {"type": m.type.decode(), "uid": m.uid, "mtime": m.pax_headers.get("mtime"), "xattr": m.pax_headers.get("SCHILY.xattr.user.bin", "").encode("utf-8", "surrogateescape").hex(), "link": m.linkname}
print(json.dumps(out))`,
        file,
      ],
      { encoding: "utf8" },
    );
    const m = JSON.parse(py) as Record<
      string,
      { type: string; uid: number; mtime?: string; xattr: string; link: string }
    >;
    assert.equal(m["dir/file.txt"].mtime, "1700000000.123456789");
    assert.equal(m["ünïcødé/名前.txt"].uid, 5_000_000);
    assert.equal(m.sym.link, `/${"t".repeat(200)}/target`);
    assert.equal(m.hard.type, "1");
    assert.equal(m.xattrs.xattr, "ff00fe80", "python sees the binary value unchanged");
  });

  test("a size beyond ustar's 8 GiB goes to a PAX record", () => {
    const size = 9 * 1024 ** 3;
    const block = encodeHeader({ name: "huge.bin", type: "file", size });
    let seen: TarHeader | undefined;
    const p = new TarParser({ entry: (h) => (seen = h), data: () => {}, end: () => {} });
    p.push(block);
    assert.equal(seen?.size, size);
    assert.equal(seen?.pax.get("size")?.toString(), String(size));
  });

  test("a body of the wrong length is refused", async () => {
    const w = new TarWriter(new PassThrough().resume());
    await assert.rejects(
      w.add({ name: "f", type: "file", size: 3 }, Buffer.from("four")),
      /body of "f" is 4 bytes, header says 3/,
    );
  });

  test("addWritten: each chunk is written before the next is asked for, so one buffer can carry them all", async () => {
    // a slow consumer: a chunk still queued when its buffer is refilled would come out wrong
    const out = new PassThrough({ highWaterMark: 1 });
    const chunks: Buffer[] = [];
    out.on("data", (c: Buffer) => {
      out.pause();
      chunks.push(Buffer.from(c));
      setTimeout(() => out.resume(), 1);
    });
    const w = new TarWriter(out);
    const text = "abcdefghij".repeat(100);
    const buf = Buffer.alloc(64);
    await w.addWritten({ name: "reused", type: "file", size: text.length }, async (write) => {
      for (let i = 0; i < text.length; i += buf.length) {
        const n = buf.write(text.slice(i, i + buf.length));
        await write(buf.subarray(0, n));
      }
    });
    await w.finish();
    const m = byName(await readAll(Buffer.concat(chunks)));
    assert.equal(m.get("reused")?.body.toString(), text);

    const w2 = new TarWriter(new PassThrough().resume());
    await assert.rejects(
      w2.addWritten({ name: "g", type: "file", size: 3 }, (write) => write(Buffer.from("four"))),
      /body of "g" is over the 3 bytes of its header/,
    );
    await assert.rejects(
      w2.addWritten({ name: "h", type: "file", size: 3 }, (write) => write(Buffer.from("tw"))),
      /body of "h" is 2 bytes, header says 3/,
    );
  });
});
