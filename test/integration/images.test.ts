/**
 * `dist images ls|rm|tag|check` and `dist rmi` on images fetched from the real registry
 * (issue 3): the listing's columns and real sizes, tagging, removal, and what check
 * reports present and missing once a layer blob is deleted.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { expectedBlobs, hostArch, selectedManifests } from "./fixtures/store.ts";
import { type ImageInfo, type Testbed, testbed } from "./harness.ts";

let tb: Testbed;
let root: string;
const single = "tiny/busybox:oci";
const multi = "multi/busybox:oci";
const docker = "tiny/busybox:docker";

before(async () => {
  tb = await testbed();
  root = tb.newRoot();
  for (const ref of [single, multi, docker]) {
    const r = await tb.dist(["fetch", "--plain-http", `${tb.plain}/${ref}`], { root });
    assert.equal(r.code, 0, `dist fetch ${ref} failed:\n${r.stderr}`);
  }
});
after(() => tb?.stop());

const img = (ref: string): ImageInfo => {
  const i = tb.images[ref];
  assert.ok(i, `the test bed has no image ${ref}`);
  return i;
};

/** Sum of the distinct blobs a fetch of the host platform reaches: manifests, config, layers. */
function packedSize(image: ImageInfo): number {
  const sizes = new Map<string, number>([[image.digest, image.size]]);
  const add = (m: { config?: { digest: string; size: number }; layers?: { digest: string; size: number }[] }) => {
    if (m.config) sizes.set(m.config.digest, m.config.size);
    for (const l of m.layers ?? []) sizes.set(l.digest, l.size);
  };
  if (image.manifests) {
    for (const m of selectedManifests(image, "host")) {
      sizes.set(m.digest, m.size);
      add(m);
    }
  } else add(image);
  assert.equal(sizes.size, expectedBlobs(image).length);
  return [...sizes.values()].reduce((a, b) => a + b, 0);
}

const UNITS: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

/** "1.0 MiB" → bytes, and how coarse the printed figure is. */
function parseSize(text: string): { bytes: number; step: number } {
  const m = /^(\d+(?:\.(\d+))?)\s*([KMG]i?B|B)$/.exec(text.trim());
  assert.ok(m, `not a size: ${JSON.stringify(text)}`);
  const unit = UNITS[m[3]];
  const decimals = m[2]?.length ?? 0;
  return { bytes: Number(m[1]) * unit, step: unit / 10 ** decimals };
}

interface Row {
  ref: string;
  type: string;
  digest: string;
  platforms: string;
  size: string;
}

/** `dist images ls` parsed by its header's column positions. */
async function list(r = root): Promise<{ header: string[]; rows: Row[] }> {
  const res = await tb.dist(["images", "ls"], { root: r });
  assert.equal(res.code, 0, res.stderr);
  const lines = res.stdout.split("\n").filter((l) => l.trim());
  assert.ok(lines.length > 0, "no header");
  const header = lines[0].trim().split(/\s+/);
  // aligned columns: cut each row at the header's column starts
  const starts = header.map((h) => lines[0].indexOf(h));
  const rows = lines.slice(1).map((line) => {
    const f = starts.map((s, i) => line.slice(s, starts[i + 1]).trim());
    return { ref: f[0], type: f[1], digest: f[2], platforms: f[3], size: f[4] };
  });
  return { header, rows };
}

const rowOf = (rows: Row[], ref: string) => {
  const row = rows.find((r) => r.ref === ref);
  assert.ok(row, `no row for ${ref} in ${JSON.stringify(rows.map((r) => r.ref))}`);
  return row;
};

describe("dist images ls", () => {
  it("has the columns REF TYPE DIGEST PLATFORMS SIZE and a row per fetched image", async () => {
    const { header, rows } = await list();
    assert.deepEqual(header, ["REF", "TYPE", "DIGEST", "PLATFORMS", "SIZE"]);
    for (const ref of [single, multi, docker]) {
      const row = rowOf(rows, `${tb.plain}/${ref}`);
      assert.equal(row.digest, img(ref).digest);
      assert.equal(row.type, img(ref).mediaType);
    }
  });

  it("lists the platforms of a single image and of an index", async () => {
    const { rows } = await list();
    assert.equal(rowOf(rows, `${tb.plain}/${single}`).platforms, "linux/amd64");
    const platforms = rowOf(rows, `${tb.plain}/${multi}`).platforms.split(/,\s*/).sort();
    assert.deepEqual(platforms, ["linux/amd64", "linux/arm64/v8"]);
  });

  it("prints the real size: manifests, config and layers of the host platform", async () => {
    const { rows } = await list();
    for (const ref of [single, multi, docker]) {
      const printed = parseSize(rowOf(rows, `${tb.plain}/${ref}`).size);
      const want = packedSize(img(ref));
      assert.ok(
        Math.abs(printed.bytes - want) <= printed.step,
        `${ref}: SIZE ${printed.bytes} is not ${want} bytes (±${printed.step})`,
      );
    }
  });

  it("is empty in a fresh root", async () => {
    const { rows } = await list(tb.newRoot());
    assert.deepEqual(rows, []);
  });
});

describe("dist images tag, rm and rmi", () => {
  it("tag makes a second name for the same target", async () => {
    const src = `${tb.plain}/${single}`;
    const dst = "example.test/copies/busybox:v1";
    const r = await tb.dist(["images", "tag", src, dst], { root });
    assert.equal(r.code, 0, r.stderr);
    const { rows } = await list();
    assert.equal(rowOf(rows, dst).digest, img(single).digest);
    assert.equal(rowOf(rows, src).digest, img(single).digest);
  });

  it("tag of an image that does not exist fails with one line naming it", async () => {
    const r = await tb.dist(["images", "tag", "example.test/none:1", "example.test/other:1"], { root });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr.trim(), /^dist: .*example\.test\/none/);
    assert.equal(r.stderr.trim().split("\n").length, 1);
  });

  it("rm removes only the named image", async () => {
    const name = "example.test/copies/busybox:rm-me";
    assert.equal((await tb.dist(["images", "tag", `${tb.plain}/${single}`, name], { root })).code, 0);
    const r = await tb.dist(["images", "rm", name], { root });
    assert.equal(r.code, 0, r.stderr);
    const { rows } = await list();
    assert.ok(!rows.some((x) => x.ref === name), `${name} still listed`);
    rowOf(rows, `${tb.plain}/${single}`);
  });

  it("rmi is rm, and takes several names", async () => {
    const a = "example.test/copies/busybox:a";
    const b = "example.test/copies/busybox:b";
    for (const n of [a, b])
      assert.equal((await tb.dist(["images", "tag", `${tb.plain}/${single}`, n], { root })).code, 0);
    const r = await tb.dist(["rmi", a, b], { root });
    assert.equal(r.code, 0, r.stderr);
    const { rows } = await list();
    assert.ok(!rows.some((x) => x.ref === a || x.ref === b), "rmi left an image");
  });

  it("images delete is an alias of rm", async () => {
    const name = "example.test/copies/busybox:del";
    assert.equal((await tb.dist(["images", "tag", `${tb.plain}/${single}`, name], { root })).code, 0);
    const r = await tb.dist(["images", "delete", name], { root });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!(await list()).rows.some((x) => x.ref === name));
  });
});

describe("dist images check", () => {
  it("reports a fetched image complete", async () => {
    const r = await tb.dist(["images", "check", `${tb.plain}/${single}`], { root });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /complete/i);
    assert.doesNotMatch(r.stdout, /incomplete|missing/i);
  });

  it("reports the missing layer once its blob is deleted", async () => {
    const own = tb.newRoot();
    const ref = `${tb.plain}/${single}`;
    assert.equal((await tb.dist(["fetch", "--plain-http", ref], { root: own })).code, 0);
    const layer = img(single).layers![0].digest;
    const del = await tb.dist(["delete", layer], { root: own });
    assert.equal(del.code, 0, del.stderr);
    const r = await tb.dist(["images", "check", ref], { root: own });
    const out = r.stdout + r.stderr;
    assert.match(out, /incomplete|missing/i, `check did not report the missing layer:\n${out}`);
    assert.ok(out.includes(layer) || out.includes(layer.slice(0, 19)), `check does not name ${layer}:\n${out}`);
  });

  it(`checks the host platform (${hostArch()}) of an index`, async () => {
    const r = await tb.dist(["images", "check", `${tb.plain}/${multi}`], { root });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /complete/i);
    assert.doesNotMatch(r.stdout, /incomplete|missing/i);
  });
});
