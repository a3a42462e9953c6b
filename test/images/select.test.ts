import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Descriptor, Platform } from "../../src/descriptor.ts";
import { check } from "../../src/images/check.ts";
import { childrenHandler, filterPlatforms } from "../../src/images/children.ts";
import { walk } from "../../src/images/handlers.ts";
import { selectManifest } from "../../src/images/lookup.ts";
import { MediaType } from "../../src/images/mediatypes.ts";
import { allPlatforms, only } from "../../src/images/platforms.ts";
import { MAX_INDEX_DEPTH, MAX_INDEXES, selectManifests } from "../../src/images/select.ts";
import { addImage, addIndex, MemoryProvider } from "./memory.ts";

const amd64 = { os: "linux", architecture: "amd64" };
const arm64 = { os: "linux", architecture: "arm64" };
const v3 = { os: "linux", architecture: "amd64", variant: "v3" };

/** An image manifest for `platform`, its descriptor carrying `declared` (none when null). */
function image(p: MemoryProvider, platform: Platform, declared: Platform | null = platform, tag = ""): Descriptor {
  const { manifest } = addImage(p, platform, [`${platform.architecture}${platform.variant ?? ""}${tag}`]);
  return declared ? { ...manifest, platform: declared } : manifest;
}

function index(p: MemoryProvider, manifests: Descriptor[], platform?: Platform): Descriptor {
  const d = addIndex(p, manifests);
  return platform ? { ...d, platform } : d;
}

/** Counts the reads of each index. */
function counted(p: MemoryProvider) {
  const reads = new Map<string, number>();
  const h = childrenHandler(p);
  const children = (d: Descriptor, s: AbortSignal) => {
    reads.set(d.digest, (reads.get(d.digest) ?? 0) + 1);
    return h(d, s);
  };
  return { reads, children };
}

describe("selectManifests", () => {
  it("finds a platform inside an index nested without a platform, and follows only the way to it", async () => {
    const p = new MemoryProvider();
    const arm = image(p, arm64);
    const amd = image(p, amd64);
    const inner = index(p, [amd]);
    const outer = index(p, [arm, inner]);
    const { children } = counted(p);
    const sel = await selectManifests(children, outer, [only(amd64)]);
    assert.deepEqual(sel.manifests, [amd]);
    assert.deepEqual([...(sel.follow.get(outer.digest) ?? [])], [inner.digest]);
    assert.deepEqual([...(sel.follow.get(inner.digest) ?? [])], [amd.digest]);
    assert.deepEqual((await selectManifests(children, outer, [only(arm64)])).manifests, [arm]);
    const both = await selectManifests(children, outer, [only(arm64), only(amd64)]);
    assert.deepEqual(both.manifests, [arm, amd]);
  });

  it("ranks with the matcher's order across every level; ties go to the first in the walk", async () => {
    const p = new MemoryProvider();
    const plain = image(p, amd64);
    const better = image(p, v3);
    const first = image(p, amd64, amd64, "first");
    const outer = index(p, [index(p, [first]), plain, index(p, [better])]);
    const h = childrenHandler(p);
    assert.deepEqual((await selectManifests(h, outer, [only(v3)])).manifests, [better], "v3 preferred on a v3 host");
    assert.deepEqual((await selectManifests(h, outer, [only(amd64)])).manifests, [first], "depth-first order");
  });

  it("leaves out attestations and artifacts (noted), ranks manifests without a platform last", async () => {
    const p = new MemoryProvider();
    const att = {
      ...image(p, amd64, { os: "unknown", architecture: "unknown" }, "att"),
      annotations: { "vnd.docker.reference.type": "attestation-manifest" },
    };
    const artifact = {
      ...image(p, amd64, null, "sig"),
      artifactType: "application/vnd.dev.cosign.artifact.sig.v1+json",
    };
    const bare = image(p, amd64, null, "bare");
    const amd = image(p, amd64);
    const notes: string[] = [];
    const outer = index(p, [att, artifact, bare, amd]);
    const sel = await selectManifests(childrenHandler(p), outer, [only(amd64)], { note: (_d, m) => notes.push(m) });
    assert.deepEqual(sel.manifests, [amd]);
    assert.deepEqual(
      notes.map((n) => n.split(" ")[1]),
      ["attestation", "artifact"],
    );
    const noMatch = await selectManifests(childrenHandler(p), index(p, [bare, image(p, arm64)]), [only(amd64)]);
    assert.deepEqual(noMatch.manifests, [bare], "without a match, the first manifest that declares no platform");
  });

  it("does not read a nested index whose platform does not match; its platform holds for what it has", async () => {
    const p = new MemoryProvider();
    const bare = image(p, arm64, null);
    const armIndex = index(p, [bare], arm64);
    const amd = image(p, amd64);
    const outer = index(p, [armIndex, amd]);
    const { reads, children } = counted(p);
    assert.deepEqual((await selectManifests(children, outer, [only(amd64)])).manifests, [amd]);
    assert.equal(reads.get(armIndex.digest), undefined);
    assert.deepEqual((await selectManifests(children, outer, [only(arm64)])).manifests, [bare]);
  });

  it("fails naming what is on offer; an index of no image manifest selects nothing", async () => {
    const p = new MemoryProvider();
    const outer = index(p, [image(p, arm64), index(p, [image(p, v3)])]);
    await assert.rejects(selectManifests(childrenHandler(p), outer, [only({ os: "linux", architecture: "s390x" })]), {
      code: "NotFound",
      message:
        /no manifest for platform linux\/s390x in index sha256:[0-9a-f]+ \(it has: linux\/arm64, linux\/amd64\/v3\)/,
    });
    const blob = p.add("not an image", "application/vnd.example.thing");
    const sel = await selectManifests(childrenHandler(p), index(p, [blob]), [only(amd64)]);
    assert.deepEqual(sel.manifests, []);
  });

  it(`refuses indexes nested over ${MAX_INDEX_DEPTH} deep and over ${MAX_INDEXES} indexes`, async () => {
    const p = new MemoryProvider();
    let deepest = index(p, [image(p, amd64)]);
    for (let i = 1; i < MAX_INDEX_DEPTH; i++) deepest = index(p, [deepest]);
    const h = childrenHandler(p);
    assert.equal((await selectManifests(h, deepest, [only(amd64)])).manifests.length, 1, "at the limit");
    await assert.rejects(selectManifests(h, index(p, [deepest]), [only(amd64)]), {
      code: "InvalidArgument",
      message: new RegExp(`indexes nested more than ${MAX_INDEX_DEPTH} deep`),
    });
    // with every platform there is no selection, but the walk is bounded alike
    const all = filterPlatforms(childrenHandler(p), [allPlatforms()]);
    await assert.rejects(walk(all, [index(p, [deepest])]), {
      code: "InvalidArgument",
      message: new RegExp(`indexes nested more than ${MAX_INDEX_DEPTH} deep`),
    });
    await walk(filterPlatforms(childrenHandler(p), [allPlatforms()]), [deepest]);
    const wide = index(
      p,
      Array.from({ length: MAX_INDEXES }, (_, i) => index(p, [], { ...amd64, variant: `v${i}` })),
    );
    await assert.rejects(selectManifests(h, index(p, [wide]), [allVariants()]), {
      code: "InvalidArgument",
      message: new RegExp(`more than ${MAX_INDEXES} indexes below it`),
    });
  });
});

/** Matches every linux/amd64 variant: makes the selection read every index of the wide bomb. */
function allVariants() {
  return { match: (pl: Platform) => pl.architecture === "amd64", less: () => false, toString: () => "amd64/*" };
}

describe("the platform filter and its users go through the same selection", () => {
  function nested() {
    const p = new MemoryProvider();
    const arm = addImage(p, arm64, ["arm"]);
    const amd = addImage(p, amd64, ["amd"]);
    const inner = index(p, [{ ...amd.manifest, platform: amd64 }]);
    const outer = index(p, [{ ...arm.manifest, platform: arm64 }, inner]);
    return { p, amd, arm, inner, outer };
  }

  it("a walk with the filter visits the way to the match and reads each index once", async () => {
    const { p, amd, inner, outer } = nested();
    const { reads, children } = counted(p);
    const seen: string[] = [];
    const filter = filterPlatforms(children, [only(amd64)]);
    await walk(
      async (d, s) => {
        seen.push(d.digest);
        return filter(d, s);
      },
      [outer],
    );
    assert.deepEqual(seen, [outer.digest, inner.digest, amd.manifest.digest, amd.config.digest, amd.layers[0].digest]);
    assert.equal(reads.get(outer.digest), 1);
    assert.equal(reads.get(inner.digest), 1);
    const everything: string[] = [];
    const all = filterPlatforms(childrenHandler(p), [allPlatforms()]);
    await walk(
      async (d, s) => {
        everything.push(d.digest);
        return all(d, s);
      },
      [outer],
    );
    assert.equal(everything.length, 8, "both images and both indexes with allPlatforms");
  });

  it("selectManifest (bundle, run, rootfs unpack) and check (images check, sizes) see through the nesting", async () => {
    const { p, amd, inner, outer } = nested();
    const bytes = p.blobs.get(outer.digest) ?? Buffer.alloc(0);
    const chosen = await selectManifest(p, outer, bytes, only(amd64));
    assert.equal(chosen.desc.digest, amd.manifest.digest);
    assert.deepEqual(chosen.manifest.layers, amd.layers);
    const r = await check(p, outer, only(amd64));
    assert.equal(r.complete, true);
    assert.deepEqual(
      r.required.map((d) => d.digest),
      [outer.digest, inner.digest, amd.manifest.digest, amd.config.digest, amd.layers[0].digest],
    );
    p.blobs.delete(inner.digest);
    const gone = await check(p, outer, only(amd64));
    assert.equal(gone.known, false, "the nested index is missing: what it holds is unknown");
    assert.deepEqual(
      gone.missing.map((d) => d.digest),
      [inner.digest],
    );
  });

  it("the filter keeps an index's blobs that are neither manifests nor indexes", async () => {
    const p = new MemoryProvider();
    const blob = p.add("an attached thing", "application/vnd.example.thing");
    const amd = image(p, amd64);
    const kids = await filterPlatforms(childrenHandler(p), [only(amd64)])(
      index(p, [image(p, arm64), blob, amd]),
      new AbortController().signal,
    );
    assert.deepEqual(kids, [blob, amd]);
  });
});

describe("media types", () => {
  it("a Docker manifest list nests like an OCI index", async () => {
    const p = new MemoryProvider();
    const amd = image(p, amd64);
    const list = addIndex(p, [addIndex(p, [amd], { docker: true })], { docker: true });
    assert.equal(list.mediaType, MediaType.DockerManifestList);
    assert.deepEqual((await selectManifests(childrenHandler(p), list, [only(amd64)])).manifests, [amd]);
  });
});
