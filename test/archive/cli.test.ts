import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as zlib from "node:zlib";
import { pythonLayers, removeDir, sha256, tempDir } from "./helpers.ts";

const DIST = join(import.meta.dirname, "../../bin/dist");
const tmp = tempDir();
after(() => removeDir(tmp));
pythonLayers("edge", join(tmp, "layers"));
const tar = fs.readFileSync(join(tmp, "layers/content.tar"));

function dist(args: string[], input: Buffer) {
  return spawnSync(DIST, args, { input, encoding: "utf8" });
}

describe("dist apply", () => {
  test("applies a gzip layer from stdin into a new directory, silently", () => {
    const dir = join(tmp, "a/rootfs");
    const r = dist(["apply", dir], zlib.gzipSync(tar));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "");
    assert.equal(fs.statSync(join(dir, "data/random-1m.bin")).size, 1 << 20);
  });

  test("--print-diffid prints the digest of the uncompressed tar", () => {
    const r = dist(["apply", "--print-diffid", join(tmp, "b")], zlib.zstdCompressSync(tar));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `sha256:${sha256(tar)}\n`);
  });

  test("stdin redirected from a file is applied from its current position (read by the worker)", () => {
    const f = join(tmp, "padded.tar.gz");
    const gz = zlib.gzipSync(tar);
    fs.writeFileSync(f, Buffer.concat([Buffer.alloc(512, 0x41), gz]));
    const dir = join(tmp, "from-file");
    // head consumes the 512 bytes of padding from the shared descriptor first
    const r = spawnSync("bash", ["-c", 'head -c 512 >/dev/null; "$0" apply --print-diffid "$1"', DIST, dir], {
      stdio: [fs.openSync(f, "r"), "pipe", "pipe"],
      encoding: "utf8",
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `sha256:${sha256(tar)}\n`);
    assert.equal(fs.statSync(join(dir, "data/random-1m.bin")).size, 1 << 20);
  });

  test("a truncated layer fails with one clear line and exit 1", () => {
    const gz = zlib.gzipSync(tar);
    const r = dist(["apply", join(tmp, "c")], gz.subarray(0, gz.length >> 1));
    assert.equal(r.status, 1);
    assert.equal(r.stderr, "dist: layer: gzip stream is truncated (unexpected end of data)\n");
  });

  test("--help shows examples", () => {
    const r = dist(["apply", "--help"], Buffer.alloc(0));
    assert.equal(r.status, 0);
    assert.match(r.stdout, /Examples:\n {2}dist apply \.\/rootfs < layer\.tar/);
  });
});
