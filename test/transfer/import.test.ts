/**
 * importImages against a real store: OCI layouts and docker save archives in
 * any entry order, from a pipe, a file or a directory; names; the hostile
 * archives it must refuse without recording anything or leaving blobs behind.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Descriptor } from "../../src/descriptor.ts";
import { allPlatforms, only } from "../../src/images/platforms.ts";
import { closeAllDatabases } from "../../src/metadata/db.ts";
import { type ImportOptions, importImages } from "../../src/transfer/import.ts";
import {
  attestationManifest,
  blob,
  HOST,
  layoutItems,
  named,
  newRoot,
  OTHER,
  pipeOf,
  type Root,
  storeBlobs,
  type TarItem,
  tarOf,
  tempDir,
  testImage,
  testIndex,
} from "./fixtures.ts";

let tmp: string;
before(() => {
  tmp = tempDir();
});
after(() => {
  closeAllDatabases();
  rmSync(tmp, { recursive: true, force: true });
});

async function digests(r: Root): Promise<string[]> {
  const out: string[] = [];
  await r.content.walk((i) => {
    out.push(i.digest);
  });
  return out.sort();
}

async function run(r: Root, source: ImportOptions["source"], opts: Partial<ImportOptions> = {}) {
  const notes: string[] = [];
  const result = await importImages({
    content: r.content,
    images: r.images,
    source,
    onNote: (_d, m) => notes.push(m),
    ...opts,
  });
  return { ...result, notes };
}

/** Refused with a message matching `re`; nothing recorded, no blob and no ingest left behind. */
async function refused(r: Root, source: ImportOptions["source"], re: RegExp, opts: Partial<ImportOptions> = {}) {
  await assert.rejects(run(r, source, opts), (err: Error) => {
    assert.match(err.message, re);
    return true;
  });
  assert.deepEqual(await r.images.list(), [], "no image recorded");
  assert.deepEqual(await digests(r), [], "no blob left in the store");
  assert.deepEqual(await r.content.listStatuses(), [], "no ingest left");
}

describe("importImages: OCI layouts", () => {
  it("reads a pipe whose index.json comes after the blobs, names from the annotations", async () => {
    const img = await testImage();
    const l = layoutItems(img.blobs, [named(img.manifest.desc, "example.com/app:1", "1")]);
    const r = newRoot(tmp);
    const res = await run(r, pipeOf(await tarOf([...l.blobs, l.index, l.layout])));
    assert.deepEqual(
      res.images.map((i) => [i.name, i.target.digest]),
      [["example.com/app:1", img.manifest.desc.digest]],
    );
    assert.deepEqual(await digests(r), img.blobs.map((b) => b.desc.digest).sort());
    assert.equal(res.removed, 0);
  });

  it("puts a tag-only ref.name under the base name, and keeps only full names under a given base", async () => {
    const a = await testImage(HOST, ["a"]);
    const b = await testImage(HOST, ["b"]);
    const entries: Descriptor[] = [
      { ...a.manifest.desc, annotations: { "org.opencontainers.image.ref.name": "v1" } },
      { ...b.manifest.desc, annotations: { "org.opencontainers.image.ref.name": "other.io/x:2" } },
    ];
    const l = layoutItems([...a.blobs, ...b.blobs], entries);
    const archive = await tarOf([l.layout, l.index, ...l.blobs]);
    const r = newRoot(tmp);
    const res = await run(r, pipeOf(archive), { baseName: "registry.example.com/team/app" });
    assert.deepEqual(
      res.images.map((i) => i.name),
      ["registry.example.com/team/app:v1"],
    );
    assert.match(res.notes.join("\n"), /other\.io\/x:2 .* not under registry\.example\.com\/team\/app/);
    // b's blobs came in with the archive but no image reaches them: removed
    assert.equal(res.removed, b.blobs.length);
    assert.deepEqual(await digests(r), a.blobs.map((x) => x.desc.digest).sort());

    const r2 = newRoot(tmp);
    const res2 = await run(r2, pipeOf(archive), { now: new Date("2025-01-31T10:00:00Z") });
    assert.deepEqual(res2.images.map((i) => i.name).sort(), ["docker.io/library/import-2025-01-31:v1", "other.io/x:2"]);
  });

  it("--name names the one image; an archive of two is refused", async () => {
    const a = await testImage(HOST, ["a"]);
    const l = layoutItems(a.blobs, [a.manifest.desc]);
    const r = newRoot(tmp);
    const res = await run(r, pipeOf(await tarOf([l.layout, l.index, ...l.blobs])), { name: "mine:1" });
    assert.deepEqual(
      res.images.map((i) => i.name),
      ["docker.io/library/mine:1"],
    );

    const b = await testImage(HOST, ["b"]);
    const two = layoutItems([...a.blobs, ...b.blobs], [a.manifest.desc, b.manifest.desc]);
    await refused(newRoot(tmp), pipeOf(await tarOf([two.layout, two.index, ...two.blobs])), /archive of one image/, {
      name: "mine:1",
    });
  });

  it("an archive that names no image is refused, and what it brought removed", async () => {
    const a = await testImage();
    const l = layoutItems(a.blobs, [a.manifest.desc]);
    await refused(newRoot(tmp), pipeOf(await tarOf([l.layout, l.index, ...l.blobs])), /names no image/);
  });

  it("--index-name records the layout's index; --digests adds <base>@<digest>", async () => {
    const a = await testImage();
    const l = layoutItems(a.blobs, [a.manifest.desc]);
    const r = newRoot(tmp);
    const res = await run(r, pipeOf(await tarOf([l.layout, l.index, ...l.blobs])), {
      indexName: "all:archive",
      digests: true,
      baseName: "example.com/base",
    });
    const names = res.images.map((i) => i.name).sort();
    assert.deepEqual(names, ["docker.io/library/all:archive", `example.com/base@${a.manifest.desc.digest}`]);
    const idx = res.images.find((i) => i.name === "docker.io/library/all:archive");
    assert.equal(idx?.target.mediaType, "application/vnd.oci.image.index.v1+json");
    assert.ok((await digests(r)).includes(idx?.target.digest ?? ""), "the index blob is stored");
  });

  it("reads a directory layout and a gzip-compressed tar file", async () => {
    const img = await testImage();
    const l = layoutItems(img.blobs, [named(img.manifest.desc, "example.com/dir:1", "1")]);
    const dir = join(tmp, `layout-${Date.now()}`);
    for (const it of [l.layout, l.index, ...l.blobs]) {
      mkdirSync(dirname(join(dir, it.name)), { recursive: true });
      writeFileSync(join(dir, it.name), it.body ?? "");
    }
    const r = newRoot(tmp);
    assert.deepEqual(
      (await run(r, dir)).images.map((i) => i.name),
      ["example.com/dir:1"],
    );

    const { gzipSync } = await import("node:zlib");
    const file = join(tmp, `layout-${Date.now()}.tar.gz`);
    writeFileSync(file, gzipSync(await tarOf([l.layout, l.index, ...l.blobs])));
    const r2 = newRoot(tmp);
    assert.deepEqual(
      (await run(r2, file)).images.map((i) => i.name),
      ["example.com/dir:1"],
    );
  });

  it("an index some of whose platforms are not in the archive: accepted, unless those platforms are asked for", async () => {
    const host = await testImage(HOST, ["h"]);
    const other = await testImage(OTHER, ["o"]);
    const idx = testIndex([
      { image: host, platform: HOST },
      { image: other, platform: OTHER },
    ]);
    const l = layoutItems([idx, ...host.blobs], [named(idx.desc, "example.com/multi:1", "1")]);
    const archive = await tarOf([l.layout, l.index, ...l.blobs]);
    const r = newRoot(tmp);
    const res = await run(r, pipeOf(archive));
    assert.deepEqual(
      res.images.map((i) => i.target.digest),
      [idx.desc.digest],
    );

    await refused(newRoot(tmp), pipeOf(archive), /incomplete: manifest .* not in the archive/, {
      platforms: [only(OTHER)],
    });
    await refused(newRoot(tmp), pipeOf(archive), /incomplete/, { platforms: [allPlatforms()] });
    // one platform asked: the others' blobs are left out of the store
    const r2 = newRoot(tmp);
    const both = layoutItems([idx, ...host.blobs, ...other.blobs], [named(idx.desc, "example.com/multi:1", "1")]);
    const res2 = await run(r2, pipeOf(await tarOf([both.layout, both.index, ...both.blobs])), {
      platforms: [only(HOST)],
    });
    assert.equal(res2.removed, other.blobs.length);
    assert.deepEqual(await digests(r2), [idx, ...host.blobs].map((b) => b.desc.digest).sort());
  });

  it("missing attestation blobs are left out with a note (containerd #11344)", async () => {
    const host = await testImage(HOST, ["h"]);
    const att = attestationManifest();
    const idx = testIndex([{ image: host, platform: HOST }], att.manifest);
    const l = layoutItems([idx, ...host.blobs], [named(idx.desc, "example.com/att:1", "1")]);
    const r = newRoot(tmp);
    const res = await run(r, pipeOf(await tarOf([l.layout, l.index, ...l.blobs])), { platforms: [allPlatforms()] });
    assert.equal(res.images.length, 1);
    assert.match(res.notes.join("\n"), new RegExp(`attestation ${att.manifest.desc.digest} is not in the archive`));
  });

  it("a blob already in the store stays when the import fails", async () => {
    const img = await testImage();
    const r = newRoot(tmp);
    await storeBlobs(r.content, [img.config]);
    const l = layoutItems([img.manifest, img.config], [named(img.manifest.desc, "example.com/x:1", "1")]);
    await assert.rejects(run(r, pipeOf(await tarOf([l.layout, l.index, ...l.blobs]))), /incomplete: layer/);
    assert.deepEqual(await digests(r), [img.config.desc.digest]);
  });
});

describe("importImages: docker save archives", () => {
  async function dockerItems(order: "manifest-first" | "manifest-last") {
    const img = await testImage(HOST, ["one", "two"], { docker: true });
    const [l1, l2] = img.layers;
    const cfgName = `${img.config.desc.digest.slice(7)}.json`;
    const manifestJson: TarItem = {
      name: "manifest.json",
      body: JSON.stringify([
        {
          Config: cfgName,
          RepoTags: ["busybox:latest", "example.com/b:2"],
          Layers: ["aaa/layer.tar", "bbb/layer.tar"],
        },
      ]),
    };
    const repositories: TarItem = { name: "repositories", body: JSON.stringify({ busybox: { latest: "bbb" } }) };
    const files: TarItem[] = [
      { name: "aaa/", type: "dir" },
      { name: "aaa/VERSION", body: "1.0" },
      { name: "aaa/json", body: "{}" },
      { name: "aaa/layer.tar", body: l1.bytes },
      { name: "ccc/layer.tar", body: l2.bytes },
      // docker save's symlink for a layer it wrote once
      { name: "bbb/layer.tar", type: "symlink", linkname: "../ccc/layer.tar" },
      { name: cfgName, body: img.config.bytes },
    ];
    const items =
      order === "manifest-first" ? [manifestJson, repositories, ...files] : [...files, repositories, manifestJson];
    return { img, items };
  }

  for (const order of ["manifest-first", "manifest-last"] as const) {
    it(`makes Docker schema 2 manifests named by RepoTags (${order})`, async () => {
      const { img, items } = await dockerItems(order);
      const r = newRoot(tmp);
      const res = await run(r, pipeOf(await tarOf(items)));
      assert.deepEqual(res.images.map((i) => i.name).sort(), ["docker.io/library/busybox:latest", "example.com/b:2"]);
      const target = res.images[0].target;
      assert.equal(target.mediaType, "application/vnd.docker.distribution.manifest.v2+json");
      assert.deepEqual(target.platform, HOST);
      const stored = await digests(r);
      for (const b of [img.config, ...img.layers]) assert.ok(stored.includes(b.desc.digest), b.desc.digest);
      assert.ok(stored.includes(target.digest), "the made manifest is stored");
      assert.equal(stored.length, 4, "config, two layers, manifest: nothing else");
    });
  }

  it("a layer that is not the one the config lists is refused", async () => {
    const { items } = await dockerItems("manifest-first");
    const swapped = items.map((i) => (i.name === "aaa/layer.tar" ? { ...i, body: Buffer.from("not the layer") } : i));
    await refused(newRoot(tmp), pipeOf(await tarOf(swapped)), /layer aaa\/layer\.tar is sha256:.*diff_ids\[0\]/);
  });

  it("a manifest.json naming a file outside the archive is refused", async () => {
    const { items } = await dockerItems("manifest-first");
    const evil = items.map((i) =>
      i.name === "manifest.json"
        ? { ...i, body: JSON.stringify([{ Config: "../../etc/passwd", RepoTags: ["x:1"], Layers: [] }]) }
        : i,
    );
    await refused(newRoot(tmp), pipeOf(await tarOf(evil)), /escapes the archive root/);
  });
});

describe("importImages: hostile archives", () => {
  const base = async () => {
    const img = await testImage();
    return { img, l: layoutItems(img.blobs, [named(img.manifest.desc, "example.com/h:1", "1")]) };
  };

  it("an entry climbing out of the root is refused and nothing is written outside", async () => {
    const { l } = await base();
    const dir = tempDir();
    const r = newRoot(dir);
    await refused(
      r,
      pipeOf(await tarOf([l.layout, { name: "../../evil", body: "x" }, l.index, ...l.blobs])),
      /escapes the archive root/,
    );
    await refused(r, pipeOf(await tarOf([{ name: "/etc/evil", body: "x" }])), /absolute path/);
    assert.deepEqual(readdirSync(dir), [r.dir.slice(dir.length + 1)], "nothing beside the root");
    assert.ok(!existsSync(join(dirname(dir), "evil")));
    rmSync(dir, { recursive: true, force: true });
  });

  it("a blob whose bytes do not match its name is refused", async () => {
    const { img, l } = await base();
    const bad = l.blobs.map((b, i) => (i === 2 ? { ...b, body: Buffer.from("tampered") } : b));
    await refused(
      newRoot(tmp),
      pipeOf(await tarOf([l.layout, l.index, ...bad])),
      new RegExp(`blobs/sha256/${img.layers[0].desc.digest.slice(7)}: the blob's bytes do not match its name`),
    );
  });

  it("duplicate entries are refused", async () => {
    const { l } = await base();
    await refused(
      newRoot(tmp),
      pipeOf(await tarOf([l.layout, l.index, l.index, ...l.blobs])),
      /duplicate entry index\.json/,
    );
  });

  it("an index.json over 4 MiB is refused before it is read", async () => {
    const { l } = await base();
    const giant = { name: "index.json", body: Buffer.alloc((4 << 20) + 1, 0x20) };
    await refused(
      newRoot(tmp),
      pipeOf(await tarOf([l.layout, giant, ...l.blobs])),
      /index\.json of 4194305 bytes exceeds/,
    );
  });

  it("links inside blobs/ or in place of index.json are refused", async () => {
    const { l } = await base();
    await refused(
      newRoot(tmp),
      pipeOf(
        await tarOf([
          l.layout,
          l.index,
          { name: `blobs/sha256/${"a".repeat(64)}`, type: "symlink", linkname: "/etc/shadow" },
        ]),
      ),
      /is a link/,
    );
    await refused(
      newRoot(tmp),
      pipeOf(await tarOf([l.layout, { name: "index.json", type: "symlink", linkname: "x" }])),
      /index\.json is a link/,
    );
  });

  it("a symlinked blobs/ in a directory layout is refused", async () => {
    const { l } = await base();
    const dir = join(tmp, `symlinked-${Date.now()}`);
    const elsewhere = join(tmp, `elsewhere-${Date.now()}`);
    for (const it of l.blobs) {
      mkdirSync(dirname(join(elsewhere, it.name)), { recursive: true });
      writeFileSync(join(elsewhere, it.name), it.body ?? "");
    }
    mkdirSync(dir);
    writeFileSync(join(dir, "oci-layout"), l.layout.body ?? "");
    writeFileSync(join(dir, "index.json"), l.index.body ?? "");
    symlinkSync(join(elsewhere, "blobs"), join(dir, "blobs"));
    await refused(newRoot(tmp), dir, /blobs is a link/);
  });

  it("an entry under blobs/ not named by a digest is refused", async () => {
    const { l } = await base();
    await refused(
      newRoot(tmp),
      pipeOf(await tarOf([l.layout, { name: "blobs/sha256/../../../x", body: "x" }])),
      /escapes the archive root/,
    );
    await refused(
      newRoot(tmp),
      pipeOf(await tarOf([l.layout, { name: "blobs/sha256/xyz", body: "x" }])),
      /not named by a valid digest/,
    );
    await refused(
      newRoot(tmp),
      pipeOf(await tarOf([l.layout, { name: "blobs/md5/abc", body: "x" }])),
      /not named by a valid digest/,
    );
  });

  it("a descriptor whose size is not the blob's is refused", async () => {
    const { img } = await base();
    const manifest = JSON.parse(img.manifest.bytes.toString());
    manifest.layers[0].size += 1000;
    const m = blob(JSON.stringify(manifest), img.manifest.desc.mediaType);
    const ll = layoutItems([m, img.config, ...img.layers], [named(m.desc, "example.com/s:1", "1")]);
    await refused(
      newRoot(tmp),
      pipeOf(await tarOf([ll.layout, ll.index, ...ll.blobs])),
      /holds \d+ bytes, but its descriptor says/,
    );
  });

  it("an entry claiming more bytes than the archive file holds is refused at once", async () => {
    const { l } = await base();
    const file = join(tmp, `absurd-${Date.now()}.tar`);
    writeFileSync(file, await tarOf([l.layout, { name: `blobs/sha256/${"b".repeat(64)}`, claimedSize: 2 ** 40 }]));
    await refused(newRoot(tmp), file, /claims 1099511627776 bytes, more than the \d+-byte archive holds/);
  });

  it("an archive that is neither a layout nor a docker archive is refused", async () => {
    await refused(newRoot(tmp), pipeOf(await tarOf([{ name: "hello.txt", body: "hi" }])), /not an image archive/);
  });

  it("a truncated archive is refused", async () => {
    const { l } = await base();
    const whole = await tarOf([l.layout, l.index, ...l.blobs]);
    await refused(newRoot(tmp), pipeOf(whole.subarray(0, whole.length - 2048)), /truncated/);
  });
});
