/**
 * dist export and dist import against their oracles: skopeo writes oci:,
 * oci-archive: and docker-archive: that dist imports, and reads what dist
 * exported in those forms (its docker-archive reader being what `podman load`
 * uses, the stand-in for `docker load` here); umoci unpacks dist's layout to
 * the tree it makes of the original; ctr's export goes into dist and dist's
 * into ctr (a private containerd 1.6), both then unpacked and compared path
 * for path; and a pipe from dist export to dist import.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type Containerd, startContainerd } from "./fixtures/containerd.ts";
import { run } from "./fixtures/exec.ts";
import { type Testbed, testbed } from "./harness.ts";
import { compare, pullImage, scan, umociScan, viewOf } from "./trees.ts";

const isRoot = process.getuid?.() === 0;

let tb: Testbed;
before(async () => {
  tb = await testbed();
});
after(async () => {
  await tb?.stop();
});

async function dist(args: string[], root: string, input?: Buffer) {
  const r = await tb.dist(args, { root, input });
  assert.equal(r.code, 0, `dist ${args.join(" ")} failed: ${r.stderr}`);
  return r;
}

/** The digest index.json gives a tag in an OCI layout directory. */
function layoutDigest(dir: string, tag: string): string {
  const index = JSON.parse(readFileSync(join(dir, "index.json"), "utf8")) as {
    manifests: { digest: string; annotations?: Record<string, string> }[];
  };
  const m = index.manifests.find((x) => x.annotations?.["org.opencontainers.image.ref.name"] === tag);
  assert.ok(m, `no ${tag} in ${dir}/index.json`);
  return m.digest;
}

/** The config of the manifest `digest` in a layout directory, parsed. */
function layoutConfig(dir: string, digest: string): unknown {
  const blob = (d: string) => readFileSync(join(dir, "blobs", "sha256", d.slice(7)), "utf8");
  const m = JSON.parse(blob(digest)) as { config: { digest: string } };
  return JSON.parse(blob(m.config.digest));
}

/** Imports with --unpack into a fresh root; returns the root and the ChainID of the one image. */
async function importUnpacked(source: string, extra: string[] = [], input?: Buffer) {
  const root = tb.newRoot();
  const r = await dist(["import", "--unpack", "--snapshotter", "native", ...extra, source], root, input);
  const m = /image chain ID: (sha256:[0-9a-f]{64})/.exec(r.stdout);
  assert.ok(m, `no chain ID in: ${r.stdout}`);
  return { root, chainID: m[1], stdout: r.stdout };
}

/** The unpacked tree of an import against umoci's of the test layout's tag. */
async function matchesUmoci(p: { root: string; chainID: string }, tag: string): Promise<void> {
  const v = await viewOf(tb, p, "native");
  try {
    assert.deepEqual(compare(scan(v.dir), await umociScan(tb, tag)), []);
  } finally {
    await v.done();
  }
}

describe("skopeo writes, dist imports", () => {
  test("oci-archive: the same manifest, named from ref.name under --base-name, unpacked like umoci", async () => {
    const ref = "tiny/busybox:oci";
    const file = join(tb.tempDir("sk"), "busybox.tar");
    await tb.skopeoCopy(`docker://${tb.plain}/${ref}`, `oci-archive:${file}:v1`);
    const p = await importUnpacked(file, ["--base-name", "example.com/bb"]);
    assert.match(p.stdout, new RegExp(`imported example\\.com/bb:v1 ${tb.images[ref].digest}`));
    await matchesUmoci(p, "busybox");
  });

  test("docker-archive (legacy layout, layer symlinks): Docker manifests made, layers checked against diff_ids, unpacked like umoci", async () => {
    const ref = "edge/whiteouts:oci";
    const file = join(tb.tempDir("sk"), "whiteouts.tar");
    await tb.skopeoCopy(`docker://${tb.plain}/${ref}`, `docker-archive:${file}:example.com/wh:docker`);
    const p = await importUnpacked(file);
    assert.match(p.stdout, /imported example\.com\/wh:docker sha256:/);
    const v = await viewOf(tb, p, "native");
    try {
      assert.deepEqual(
        compare(scan(v.dir), await umociScan(tb, "edge-whiteouts"), ["data/implicit", "data/implicit/parent"]),
        [],
      );
    } finally {
      await v.done();
    }
  });

  test("oci: a layout directory; every image of it under the base name", async () => {
    const dir = await tb.skopeoPull(`${tb.plain}/multi/busybox:oci`, ["--all"]);
    const root = tb.newRoot();
    const r = await dist(["import", "--base-name", "example.com/multi", dir], root);
    assert.match(r.stdout, new RegExp(`imported example\\.com/multi:t ${tb.images["multi/busybox:oci"].digest}`));
    const check = await dist(["images", "check", "--all-platforms"], root);
    assert.match(check.stdout, /complete/);
  });
});

describe("dist exports, skopeo and umoci read", () => {
  let root: string;
  const ref = "tiny/busybox:oci";
  const multi = "multi/busybox:oci";
  before(async () => {
    root = tb.newRoot();
    await dist(["fetch", "--plain-http", `${tb.plain}/${ref}`], root);
    await dist(["fetch", "--plain-http", "--all-platforms", `${tb.plain}/${multi}`], root);
  });

  test("oci-archive: skopeo copies the image out with its digest", async () => {
    const d = tb.tempDir("ex");
    const tar = join(d, "x.tar");
    await dist(["export", tar, `${tb.plain}/${ref}`, `${tb.plain}/${multi}`], root);
    const out = join(d, "out");
    await tb.skopeoCopy(`oci-archive:${tar}:oci`, `oci:${out}:t`);
    assert.equal(layoutDigest(out, "t"), tb.images[ref].digest);
  });

  test("docker-archive: skopeo (podman load's reader) finds each image by its RepoTag", async () => {
    const d = tb.tempDir("ex");
    const tar = join(d, "x.tar");
    await dist(["export", tar, `${tb.plain}/${ref}`], root);
    const out = join(d, "out");
    await tb.skopeoCopy(`docker-archive:${tar}:${tb.plain}/${ref}`, `oci:${out}:t`);
    // skopeo writes the config again (as OCI) and compresses the layers again: the image is the same
    const original = JSON.parse((await dist(["get", tb.images[ref].config?.digest ?? ""], root)).stdout);
    assert.deepEqual(layoutConfig(out, layoutDigest(out, "t")), original);
  });

  test("--all-platforms to a directory: skopeo copies the whole index", async () => {
    const dir = `${tb.tempDir("ex")}/layout/`;
    await dist(["export", "--all-platforms", dir, `${tb.plain}/${multi}`], root);
    const out = join(tb.tempDir("ex"), "out");
    await tb.skopeoCopy(`oci:${dir}:oci`, `oci:${out}:t`, ["--all"]);
    assert.equal(layoutDigest(out, "t"), tb.images[multi].digest);
  });

  test("umoci unpacks dist's layout to the tree it makes of the original", async () => {
    const r2 = tb.newRoot();
    await dist(["fetch", "--plain-http", `${tb.plain}/edge/whiteouts:oci`], r2);
    const dir = join(tb.tempDir("ex"), "layout");
    await dist(["export", `${dir}/`, `${tb.plain}/edge/whiteouts:oci`], r2);
    const bundle = join(tb.tempDir("umoci"), "bundle");
    await tb.umociUnpack(`${dir}:oci`, bundle);
    const diffs = compare(scan(join(bundle, "rootfs")), await umociScan(tb, "edge-whiteouts"), [
      "data/implicit",
      "data/implicit/parent",
    ]);
    assert.deepEqual(diffs, []);
  });

  test("dist export - | dist import -: the same images, from a pipe", async () => {
    const out = await tb.dist(["export", "-", `${tb.plain}/${multi}`], { root });
    assert.equal(out.code, 0, out.stderr);
    const r2 = tb.newRoot();
    const r = await dist(["import", "-"], r2, out.stdoutBytes);
    assert.match(
      r.stdout,
      new RegExp(`imported ${tb.plain.replace(/\./g, "\\.")}/multi/busybox:oci ${tb.images[multi].digest}`),
    );
  });

  test("a hostile archive: one line on stderr, exit status 1, nothing recorded", async () => {
    const tar = join(tb.tempDir("ex"), "evil.tar");
    // a tar whose one entry climbs out of the root (python's tarfile writes it as asked)
    await run("python3", [
      "-c",
      "import tarfile,io,sys\nt=tarfile.open(sys.argv[1],'w')\ni=tarfile.TarInfo('../../evil')\ni.size=1\nt.addfile(i,io.BytesIO(b'x'))\nt.close()",
      tar,
    ]);
    const r2 = tb.newRoot();
    const r = await tb.dist(["import", tar], { root: r2 });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^dist: entry "\.\.\/\.\.\/evil" escapes the archive root[^\n]*\n$/);
    assert.equal((await dist(["images", "ls", "-q"], r2)).stdout, "");
  });
});

describe("ctr and dist, each importing the other's export", { skip: !isRoot && "containerd needs root" }, () => {
  let ctrd: Containerd;
  const ref = () => `${tb.plain}/tiny/busybox:oci`;
  const ctr = async (args: string[]) => {
    const r = await run("ctr", ["--address", ctrd.sock, ...args], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, `ctr ${args.join(" ")}: ${r.stderr.toString()}`);
    return r.stdout.toString();
  };
  /** The tree ctr unpacked for an image, through `ctr images mount` (native: a bind mount). */
  const ctrTree = async (name: string) => {
    const target = tb.tempDir("ctr-mnt");
    await ctr(["images", "mount", "--snapshotter", "native", name, target]);
    try {
      return scan(target);
    } finally {
      await ctr(["images", "unmount", "--rm", target]);
    }
  };

  before(async () => {
    ctrd = await startContainerd(tb.tempDir("containerd"));
  });
  after(async () => {
    await ctrd?.stop();
  });

  test("ctr images export → dist import --unpack: the same tree as ctr's", async () => {
    await ctr(["images", "pull", "--plain-http", "--snapshotter", "native", ref()]);
    const tar = join(tb.tempDir("ctr"), "ctr.tar");
    await ctr(["images", "export", tar, ref()]);
    const p = await importUnpacked(tar);
    assert.match(
      p.stdout,
      new RegExp(`imported ${ref().replace(/\./g, "\\.")} ${tb.images["tiny/busybox:oci"].digest}`),
    );
    const v = await viewOf(tb, p, "native");
    try {
      // the snapshot's own root directory is made by each snapshotter, at its own time
      assert.deepEqual(compare(scan(v.dir), await ctrTree(ref()), ["."]), []);
    } finally {
      await v.done();
    }
  });

  test("dist export → ctr images import: ctr unpacks the tree dist unpacked", async () => {
    const p = await pullImage(tb, "edge/whiteouts:oci", "native");
    const tar = join(tb.tempDir("ex"), "dist.tar");
    await dist(["export", tar, `${tb.plain}/edge/whiteouts:oci`], p.root);
    const out = await ctr(["images", "import", "--snapshotter", "native", tar]);
    assert.match(out, /unpacking .*edge\/whiteouts:oci .*done/);
    const v = await viewOf(tb, p, "native");
    try {
      const implicit = [".", "data/implicit", "data/implicit/parent"];
      assert.deepEqual(compare(scan(v.dir), await ctrTree(`${tb.plain}/edge/whiteouts:oci`), implicit), []);
    } finally {
      await v.done();
    }
  });
});
