/**
 * `dist pull`, `dist rootfs` and `dist snapshots` against the real registry:
 * tiny images in every format, re-pulls that extract nothing, crafted bad
 * images (wrong diff_id, truncated layer, malformed or missing config) that
 * must fail clearly without committing a partial snapshot, a non-root pull
 * with the native snapshotter, and two pulls of one image at once.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type Testbed, testbed } from "./harness.ts";

const isRoot = process.getuid?.() === 0;

let tb: Testbed;
before(async () => {
  tb = await testbed();
});
after(async () => {
  await tb?.stop();
});

const sha256 = (b: Buffer | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** ChainID computed here independently from a config's diff_ids. */
function chainOf(diffIDs: string[]): string {
  let c = diffIDs[0];
  for (const d of diffIDs.slice(1)) c = sha256(`${c} ${d}`);
  return c;
}

function blobPath(layout: string, digest: string): string {
  return join(layout, "blobs", digest.replace(":", "/"));
}

/** The ChainID the registry's image should unpack to, from the config in the built layout. */
function expectedChain(ref: string): string {
  const img = tb.images[ref];
  const cfg = img.config ?? img.manifests?.find((m) => m.platform?.architecture === "amd64")?.config;
  assert.ok(cfg, `no config for ${ref}`);
  const c = JSON.parse(readFileSync(blobPath(tb.layout, cfg.digest), "utf8"));
  return chainOf(c.rootfs.diff_ids);
}

async function snapshotNames(root: string, snapshotter: string): Promise<{ name: string; kind: string }[]> {
  const r = await tb.dist(["snapshots", "--snapshotter", snapshotter, "ls", "--output", "json"], { root });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const defaultSnapshotter = isRoot ? "overlay" : "native";

describe("dist pull of tiny images", () => {
  const cases: [string, string][] = [
    ["tiny/busybox:oci", defaultSnapshotter],
    ["tiny/busybox:docker", "native"],
    ["tiny/busybox:zstd", defaultSnapshotter],
    ["tiny/busybox:uncompressed", "native"],
    ["multi/busybox:oci", defaultSnapshotter],
    ["multi/busybox:docker", "native"],
  ];
  for (const [ref, snapshotter] of cases) {
    test(`${ref} (${snapshotter})`, async () => {
      const root = tb.newRoot();
      const r = await tb.dist(
        ["pull", "--plain-http", "--print-chainid", "--snapshotter", snapshotter, `${tb.plain}/${ref}`],
        { root },
      );
      assert.equal(r.code, 0, r.stderr);
      const want = expectedChain(ref);
      assert.match(r.stdout, /^unpacking linux\/amd64 sha256:[0-9a-f]{64}\.\.\.$/m);
      assert.match(r.stdout, new RegExp(`^image chain ID: ${want}$`, "m"));
      assert.match(r.stdout, /^done: \d+\.\d+s$/m);
      const snaps = await snapshotNames(root, snapshotter);
      assert.ok(
        snaps.some((s) => s.name === want && s.kind === "committed"),
        JSON.stringify(snaps),
      );
      assert.ok(!snaps.some((s) => s.name.startsWith("extract-")), "no temporary snapshot left");
      if (ref !== "tiny/busybox:oci") return;
      // containerd's labels: diffIDs on layer blobs, the GC edge from the config to the snapshot
      const labelled = await tb.dist(["content", "ls", "-q", "--label", "containerd.io/uncompressed"], { root });
      assert.ok(labelled.stdout.trim().length > 0, "layer blobs carry containerd.io/uncompressed");
      const cfg = await tb.dist(
        ["content", "ls", "-q", "--label", `containerd.io/gc.ref.snapshot.${snapshotter}=${want}`],
        { root },
      );
      assert.equal(cfg.stdout.trim().split("\n").length, 1, "the config points at the top snapshot");
      // the image is recorded
      const imgs = await tb.dist(["images", "ls", "-q"], { root });
      assert.ok(imgs.stdout.includes(`${tb.plain}/${ref}`), imgs.stdout);
    });
  }

  test("a second pull extracts nothing; rootfs unpack and prepare work from the store", async () => {
    const root = tb.newRoot();
    const ref = `${tb.plain}/tiny/busybox:oci`;
    let r = await tb.dist(["pull", "--plain-http", "--snapshotter", "native", ref], { root });
    assert.equal(r.code, 0, r.stderr);
    const before = await snapshotNames(root, "native");
    r = await tb.dist(["pull", "--plain-http", "--snapshotter", "native", ref], { root });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /layer-sha256:[0-9a-f]{64}: exists/);
    assert.doesNotMatch(r.stdout, /extracting/);
    assert.deepEqual(await snapshotNames(root, "native"), before);

    const digest = tb.images["tiny/busybox:oci"].digest;
    r = await tb.dist(["rootfs", "--snapshotter", "native", "unpack", digest], { root });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), expectedChain("tiny/busybox:oci"));
    // the target names the snapshot and where the printed command mounts it: a directory of this test's own
    const target = join(tb.tempDir("rootfs"), "rootfs");
    r = await tb.dist(["rootfs", "--snapshotter", "native", "prepare", r.stdout.trim(), target], { root });
    assert.equal(r.code, 0, r.stderr);
    const m = /^mount -t bind (\S+) (\S+) -o rw,rbind$/.exec(r.stdout.trim());
    assert.ok(m, r.stdout);
    assert.equal(m[2], target);
    assert.ok(existsSync(join(m[1], "bin/busybox")), "the prepared snapshot holds the image's files");
    r = await tb.dist(["rootfs", "--snapshotter", "native", "prepare", expectedChain("tiny/busybox:oci"), target], {
      root,
    });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /already exists/);
    r = await tb.dist(["snapshots", "--snapshotter", "native", "usage", "-b", target], { root });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(
      r.stdout.split("\n").some((l) => /^(\S+)\s+\d+\s+\d+/.exec(l)?.[1] === target),
      `no usage line for ${target}:\n${r.stdout}`,
    );
    r = await tb.dist(["snapshots", "--snapshotter", "native", "rm", expectedChain("tiny/busybox:oci")], { root });
    assert.equal(r.code, 1, "a parent with a child is not removed");
    assert.match(r.stderr, /child/);
    r = await tb.dist(["snapshots", "--snapshotter", "native", "rm", target], { root });
    assert.equal(r.code, 0, r.stderr);
  });

  test("two pulls of one image at once both succeed and share the snapshots", async () => {
    const root = tb.newRoot();
    const ref = `${tb.plain}/edge/whiteouts:oci`;
    const [a, b] = await Promise.all([
      tb.dist(["pull", "--plain-http", "--snapshotter", "native", ref], { root }),
      tb.dist(["pull", "--plain-http", "--snapshotter", "native", ref], { root }),
    ]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const snaps = await snapshotNames(root, "native");
    assert.equal(snaps.length, 4, JSON.stringify(snaps));
    assert.ok(snaps.every((s) => s.kind === "committed"));
  });
});

interface CraftDesc {
  mediaType: string;
  digest: string;
  size: number;
}
interface CraftConfig {
  rootfs?: { type: string; diff_ids: string[] };
}

/**
 * Copies busybox out of the built layout, lets `mutate` change the manifest, the
 * config or the layer bytes, and pushes the result to scratch/NAME with skopeo.
 */
async function crafted(
  name: string,
  mutate: (img: { config: CraftConfig; layer: Buffer }) => {
    config?: Buffer;
    layer?: Buffer;
  },
): Promise<string> {
  const layout = tb.tempDir("craft");
  await tb.skopeoCopy(`oci:${tb.layout}:busybox`, `oci:${layout}:t`);
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
  const mdesc = index.manifests[0];
  const manifest = JSON.parse(readFileSync(blobPath(layout, mdesc.digest), "utf8")) as {
    config: CraftDesc;
    layers: CraftDesc[];
  };
  const config = JSON.parse(readFileSync(blobPath(layout, manifest.config.digest), "utf8")) as CraftConfig;
  const layer = readFileSync(blobPath(layout, manifest.layers[0].digest));
  const out = mutate({ config, layer });
  const cfgBytes = out.config ?? Buffer.from(JSON.stringify(config));
  writeFileSync(blobPath(layout, sha256(cfgBytes)), cfgBytes);
  manifest.config = { ...manifest.config, digest: sha256(cfgBytes), size: cfgBytes.length };
  if (out.layer) {
    writeFileSync(blobPath(layout, sha256(out.layer)), out.layer);
    manifest.layers[0] = { ...manifest.layers[0], digest: sha256(out.layer), size: out.layer.length };
  }
  const mBytes = Buffer.from(JSON.stringify(manifest));
  writeFileSync(blobPath(layout, sha256(mBytes)), mBytes);
  index.manifests[0] = { ...mdesc, digest: sha256(mBytes), size: mBytes.length };
  writeFileSync(join(layout, "index.json"), JSON.stringify(index));
  await tb.skopeoCopy(`oci:${layout}:t`, `docker://${tb.plain}/scratch/${name}:t`, ["--preserve-digests"]);
  return `${tb.plain}/scratch/${name}:t`;
}

describe("bad input: clear errors, no partial snapshot, fetched blobs kept", () => {
  const expectFailure = async (ref: string, pattern: RegExp, snapshotter = "native") => {
    const root = tb.newRoot();
    const r = await tb.dist(["pull", "--plain-http", "--snapshotter", snapshotter, ref], { root });
    assert.equal(r.code, 1, `pull of ${ref} should fail:\n${r.stdout}`);
    assert.match(r.stderr, pattern);
    assert.equal(
      r.stderr
        .trim()
        .split("\n")
        .filter((l) => l.startsWith("dist: ") && !l.includes("warning")).length,
      1,
    );
    assert.deepEqual(await snapshotNames(root, snapshotter), [], "nothing committed, no temporary snapshot left");
    return root;
  };

  test("a diff_id that does not match the layer", async () => {
    const ref = await crafted("bad-diffid", ({ config }) => {
      config.rootfs!.diff_ids[0] = sha256("not the layer");
      return {};
    });
    const root = await expectFailure(ref, /does not match the config's diff_id/);
    // the layer blob was fetched and verified: it stays for the next attempt
    const c = await tb.dist(["content", "ls", "-q"], { root });
    assert.ok(c.stdout.includes(tb.images["tiny/busybox:oci"].layers![0].digest), c.stdout);
    if (isRoot) await expectFailure(ref, /does not match the config's diff_id/, "overlay");
  });

  test("a truncated gzip layer", async () => {
    const ref = await crafted("truncated", ({ layer }) => ({ layer: layer.subarray(0, layer.length >> 1) }));
    await expectFailure(ref, /sha256:[0-9a-f]{64}.*(unexpected end|truncated|end of file)/i);
  });

  test("a config without rootfs", async () => {
    const ref = await crafted("no-rootfs", ({ config }) => {
      delete config.rootfs;
      return {};
    });
    await expectFailure(ref, /image config sha256:[0-9a-f]{64} has no rootfs/);
  });

  test("a config that is not JSON", async () => {
    const ref = await crafted("bad-config", () => ({ config: Buffer.from("{not json") }));
    await expectFailure(ref, /image config sha256:[0-9a-f]{64} is not JSON/);
  });

  test("a full disk (ENOSPC): reported, nothing committed, the fetched blobs kept", {
    skip: !isRoot && "mounting a small tmpfs needs root",
  }, async () => {
    const dir = tb.tempDir("small");
    const m = spawnSync("mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", dir]);
    assert.equal(m.status, 0, String(m.stderr));
    try {
      const root = join(dir, "root");
      // the blobs fit; their unpacked tree does not
      const f = await tb.dist(["fetch", "--plain-http", `${tb.plain}/edge/whiteouts:oci`], { root });
      assert.equal(f.code, 0, f.stderr);
      const r = await tb.dist(["pull", "--plain-http", "--snapshotter", "native", `${tb.plain}/edge/whiteouts:oci`], {
        root,
      });
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /unpacking layer sha256:[0-9a-f]{64}: no space left on device/);
      assert.deepEqual(await snapshotNames(root, "native"), []);
      const c = await tb.dist(["content", "ls", "-q"], { root });
      for (const b of tb.images["edge/whiteouts:oci"].blobs) assert.ok(c.stdout.includes(b), `blob ${b} kept`);
    } finally {
      spawnSync("umount", [dir]);
    }
  });

  test("rootfs unpack of a manifest whose config is missing from the store", async () => {
    const root = tb.newRoot();
    const ref = `${tb.plain}/tiny/busybox:oci`;
    let r = await tb.dist(["fetch", "--plain-http", ref], { root });
    assert.equal(r.code, 0, r.stderr);
    const img = tb.images["tiny/busybox:oci"];
    r = await tb.dist(["content", "rm", img.config!.digest], { root });
    assert.equal(r.code, 0, r.stderr);
    r = await tb.dist(["rootfs", "--snapshotter", "native", "unpack", img.digest], { root });
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`image config ${img.config!.digest} is not in the content store`));
    assert.deepEqual(await snapshotNames(root, "native"), []);
  });
});

describe("as an unprivileged user", { skip: !isRoot && "needs root to switch to nobody" }, () => {
  test("a native pull works and skips devices and ownership with warnings", async () => {
    // a root of nobody's own, in a directory nobody can reach (the harness's is root-only)
    const parent = mkdtempSync(join(tmpdir(), "dist-nobody-"));
    after(() => rmSync(parent, { recursive: true, force: true }));
    chmodSync(parent, 0o755);
    const root = join(parent, "root");
    mkdirSync(root, { mode: 0o700 });
    chownSync(root, 65534, 65534);
    const r = await tb.dist(["pull", "--plain-http", "--print-chainid", `${tb.plain}/edge/whiteouts:oci`], {
      root,
      user: "nobody",
      env: { HOME: root },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warning/i);
    const chain = /image chain ID: (sha256:[0-9a-f]{64})/.exec(r.stdout)?.[1];
    assert.ok(chain);
    // without root the default is native
    const ls = await tb.dist(["snapshots", "ls", "--output", "json"], { root, user: "nobody", env: { HOME: root } });
    assert.equal(ls.code, 0, ls.stderr);
    const snaps = JSON.parse(ls.stdout) as { name: string }[];
    assert.ok(snaps.some((s) => s.name === chain));
    const m = await tb.dist(["snapshots", "--snapshotter", "native", "prepare", "work", chain!, "--target", "/x"], {
      root,
      user: "nobody",
      env: { HOME: root },
    });
    assert.equal(m.code, 0, m.stderr);
    const dir = /^mount -t bind (\S+) \/x/.exec(m.stdout)![1];
    assert.match(readFileSync(join(dir, "data/keep.txt"), "utf8"), /^keep: overwritten in layer B/);
    assert.equal(existsSync(join(dir, "data/null-dev")), false, "no device node without privileges");
  });
});
