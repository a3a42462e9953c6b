/**
 * The fetch flow against the real local content store, with an in-memory
 * fetcher standing in for the network (the registry itself is covered by
 * test/integration): verification, resume, existing blobs, platforms, tee.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { text } from "node:stream/consumers";
import { after, describe, it } from "node:test";
import type { Descriptor } from "../../src/descriptor.ts";
import { DataLossError, NotFoundError } from "../../src/errors.ts";

import { allPlatforms, only } from "../../src/images/platforms.ts";
import type { NamespacedContentStore } from "../../src/metadata/content.ts";
import { closeAllDatabases } from "../../src/metadata/db.ts";
import { namespacedContentStore, openSqliteImageStore } from "../../src/metadata/metadata.ts";
import { ProgressTracker } from "../../src/progress/tracker.ts";
import { FetchGroup, fetchBlob, fetchImage } from "../../src/remotes/handlers.ts";
import type { Fetcher, Resolver } from "../../src/remotes/remotes.ts";
import { addImage, addIndex, MemoryProvider } from "../images/memory.ts";

const roots = new Map<NamespacedContentStore, string>();
function store(): NamespacedContentStore {
  const root = mkdtempSync(join(tmpdir(), "dist-fetch-"));
  const s = namespacedContentStore(root);
  roots.set(s, root);
  return s;
}
/** The image store next to a content store of store(). */
const imagesOf = (s: NamespacedContentStore) => openSqliteImageStore(roots.get(s) as string, "default");
after(() => {
  closeAllDatabases();
  for (const r of roots.values()) rmSync(r, { recursive: true, force: true });
});

/** Serves blobs from a MemoryProvider; `corrupt` flips a byte of the named digests, `fail` errors midway. */
class MemoryFetcher implements Fetcher {
  readonly calls: Array<{ digest: string; offset: number }> = [];
  readonly corrupt = new Set<string>();
  readonly failAfter = new Map<string, number>();
  readonly p: MemoryProvider;
  constructor(p: MemoryProvider) {
    this.p = p;
  }
  async fetch(desc: Descriptor, opts: { offset?: number } = {}): Promise<Readable> {
    const offset = opts.offset ?? 0;
    this.calls.push({ digest: desc.digest, offset });
    const b = this.p.blobs.get(desc.digest);
    if (!b) throw new NotFoundError(`blob ${desc.digest} not found`);
    let bytes = Buffer.from(b.subarray(offset));
    if (this.corrupt.has(desc.digest)) bytes[bytes.length - 1] ^= 1;
    const cut = this.failAfter.get(desc.digest);
    if (cut !== undefined) {
      this.failAfter.delete(desc.digest);
      bytes = bytes.subarray(0, cut);
      return Readable.from(
        (async function* () {
          yield bytes;
          throw new Error("connection reset");
        })(),
      );
    }
    return Readable.from([bytes]);
  }
}

function resolverFor(
  p: MemoryProvider,
  root: Descriptor,
  fetcher = new MemoryFetcher(p),
): Resolver & { fetcherImpl: MemoryFetcher } {
  return {
    fetcherImpl: fetcher,
    resolve: async (ref) => ({ name: ref, desc: root }),
    fetcher: async () => fetcher,
    pusher: async () => assert.fail("no push"),
  };
}

describe("fetchBlob", () => {
  it("writes, verifies and then reports an existing blob as exists", async () => {
    const p = new MemoryProvider();
    const layer = p.add("layer bytes", "application/vnd.oci.image.layer.v1.tar+gzip");
    const s = store();
    const f = new MemoryFetcher(p);
    const progress = new ProgressTracker();
    assert.equal(await fetchBlob(s, f, layer, { progress }), "done");
    assert.equal(await text(await s.openRead(layer.digest)), "layer bytes");
    assert.equal(progress.get(`layer-${layer.digest}`)?.state, "done");
    assert.equal(await fetchBlob(s, f, layer, { progress }), "exists");
    assert.equal(f.calls.length, 1);
  });

  it("commits nothing when the bytes fail verification, and does not resume them", async () => {
    const p = new MemoryProvider();
    const layer = p.add("some layer content", "application/vnd.oci.image.layer.v1.tar");
    const s = store();
    const f = new MemoryFetcher(p);
    f.corrupt.add(layer.digest);
    // this fetcher does not hash: the store's writer catches the bad bytes on commit
    await assert.rejects(fetchBlob(s, f, layer), (err: Error) => {
      assert.ok(err instanceof DataLossError, err.message);
      assert.match(err.message, new RegExp(`^layer-${layer.digest}: digest mismatch`));
      return true;
    });
    await assert.rejects(s.info(layer.digest), { code: "NotFound" });
    assert.deepEqual(await s.listStatuses(), [], "the bad ingest is discarded");
    f.corrupt.clear();
    assert.equal(await fetchBlob(s, f, layer), "done");
    assert.deepEqual(f.calls.at(-1), { digest: layer.digest, offset: 0 });
  });

  it("refuses more bytes than the descriptor says", async () => {
    const p = new MemoryProvider();
    const layer = p.add("0123456789", "application/vnd.oci.image.layer.v1.tar");
    const s = store();
    await assert.rejects(fetchBlob(s, new MemoryFetcher(p), { ...layer, size: 5 }), DataLossError);
    await assert.rejects(s.info(layer.digest), { code: "NotFound" });
  });

  it("resumes an interrupted download at the writer's offset", async () => {
    const p = new MemoryProvider();
    const layer = p.add("x".repeat(10_000), "application/vnd.oci.image.layer.v1.tar");
    const s = store();
    const f = new MemoryFetcher(p);
    f.failAfter.set(layer.digest, 4000);
    await assert.rejects(fetchBlob(s, f, layer), /connection reset/);
    assert.equal(await fetchBlob(s, f, layer), "done");
    assert.deepEqual(f.calls, [
      { digest: layer.digest, offset: 0 },
      { digest: layer.digest, offset: 4000 },
    ]);
    assert.equal((await s.info(layer.digest)).size, 10_000);
  });

  it("stores no manifest that names invalid digests or is malformed", async () => {
    const p = new MemoryProvider();
    const s = store();
    const bad = p.addJson(
      {
        schemaVersion: 2,
        config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: "sha256:nothex", size: 2 },
        layers: [],
      },
      "application/vnd.oci.image.manifest.v1+json",
    );
    await assert.rejects(fetchBlob(s, new MemoryFetcher(p), bad), /invalid manifest .*config\.digest/);
    await assert.rejects(s.info(bad.digest), { code: "NotFound" });
    const broken = p.add("{", "application/vnd.oci.image.index.v1+json");
    await assert.rejects(fetchBlob(s, new MemoryFetcher(p), broken), /malformed JSON/);
    await assert.rejects(s.info(broken.digest), { code: "NotFound" });
    assert.deepEqual(await s.listStatuses(), []);
  });

  it("tees the bytes to a consumer, ending only after the commit", async () => {
    const p = new MemoryProvider();
    const layer = p.add("tee me", "application/vnd.oci.image.layer.v1.tar");
    const s = store();
    let got: Promise<string> | undefined;
    await fetchBlob(s, new MemoryFetcher(p), layer, {
      tee: () => {
        const stream = new PassThrough();
        got = text(stream);
        return stream;
      },
    });
    assert.equal(await got, "tee me");
  });
});

describe("fetchImage", () => {
  function multi() {
    const p = new MemoryProvider();
    const amd = addImage(p, { os: "linux", architecture: "amd64" }, ["amd1", "shared"]);
    const arm = addImage(p, { os: "linux", architecture: "arm64" }, ["arm1", "shared"]);
    const att = p.addJson(
      { schemaVersion: 2, config: p.addJson({}, "application/vnd.oci.image.config.v1+json"), layers: [] },
      "application/vnd.oci.image.manifest.v1+json",
    );
    const index = addIndex(p, [
      { ...amd.manifest, platform: { os: "linux", architecture: "amd64" } },
      { ...arm.manifest, platform: { os: "linux", architecture: "arm64" } },
      {
        ...att,
        platform: { os: "unknown", architecture: "unknown" },
        annotations: { "vnd.docker.reference.type": "attestation-manifest" },
      },
    ]);
    return { p, amd, arm, att, index };
  }

  it("fetches one platform, notes the attestation, records the image and shows progress", async () => {
    const { p, amd, arm, index } = multi();
    const s = store();
    const images = imagesOf(s);
    const progress = new ProgressTracker();
    const notes: string[] = [];
    const r = await fetchImage({
      resolver: resolverFor(p, index),
      store: s,
      ref: "example.com/app:1",
      platforms: [only({ os: "linux", architecture: "arm64" })],
      progress,
      onNote: (_d, m) => notes.push(m),
      images,
    });
    assert.equal(r.name, "example.com/app:1");
    assert.deepEqual(r.manifests, [{ ...arm.manifest, platform: { os: "linux", architecture: "arm64" } }]);
    for (const d of [index, arm.manifest, arm.config, ...arm.layers])
      assert.equal((await s.info(d.digest)).size, d.size);
    await assert.rejects(s.info(amd.manifest.digest), { code: "NotFound" });
    await assert.rejects(s.info(amd.layers[0].digest), { code: "NotFound" });
    assert.equal(notes.length, 1);
    assert.deepEqual((await images.get("example.com/app:1")).target, index);
    assert.deepEqual(
      progress.entries().map((e) => [e.key.split(":")[0], e.state]),
      [
        ["example.com/app", "resolved"],
        ["index-sha256", "done"],
        ["manifest-sha256", "done"],
        ["config-sha256", "done"],
        ["layer-sha256", "done"],
        ["layer-sha256", "done"],
      ],
    );
    // a second fetch finds everything present
    const again = new ProgressTracker();
    await fetchImage({
      resolver: resolverFor(p, index),
      store: s,
      ref: "example.com/app:1",
      platforms: [only({ os: "linux", architecture: "arm64" })],
      progress: again,
    });
    assert.ok(
      again
        .entries()
        .slice(1)
        .every((e) => e.state === "exists"),
    );
    assert.equal(again.transferred(), 0);
  });

  it("fetches every platform and the attestation with allPlatforms, the shared layer once", async () => {
    const { p, amd, arm, index } = multi();
    assert.equal(amd.layers[1].digest, arm.layers[1].digest);
    const s = store();
    const resolver = resolverFor(p, index);
    await fetchImage({ resolver, store: s, ref: "example.com/app:1", platforms: [allPlatforms()], limit: 2 });
    for (const digest of p.blobs.keys()) assert.ok(await s.info(digest as Descriptor["digest"]));
    const shared = resolver.fetcherImpl.calls.filter((c) => c.digest === amd.layers[1].digest);
    assert.equal(shared.length, 1);
  });

  it("fetches non-distributable layers the registry has; skips one it lacks with a note, not its urls", async () => {
    const p = new MemoryProvider();
    const nd = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    const here = p.add("in the registry", nd);
    const gone = { ...p.add("only at a url", nd), urls: ["https://example.com/layer"] };
    p.blobs.delete(gone.digest);
    const config = p.addJson({ rootfs: { type: "layers", diff_ids: [] } }, "application/vnd.oci.image.config.v1+json");
    const manifest = p.addJson(
      { schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config, layers: [here, gone] },
      "application/vnd.oci.image.manifest.v1+json",
    );
    const s = store();
    const notes: string[] = [];
    const progress = new ProgressTracker();
    const resolver = resolverFor(p, manifest);
    await fetchImage({ resolver, store: s, ref: "example.com/nd:1", progress, onNote: (_d, m) => notes.push(m) });
    assert.equal(await text(await s.openRead(here.digest)), "in the registry");
    assert.equal(progress.get(`layer-${here.digest}`)?.state, "done");
    assert.equal(progress.get(`layer-${gone.digest}`)?.state, "skipped");
    assert.deepEqual(notes, [
      `skipped non-distributable layer ${gone.digest}: not in the registry (its urls are not fetched from: https://example.com/layer)`,
    ]);
    assert.deepEqual(
      resolver.fetcherImpl.calls.map((c) => c.digest).filter((d) => d === gone.digest),
      [gone.digest],
      "asked of the registry only",
    );
  });

  it("fails naming the missing platform and records nothing", async () => {
    const { p, index } = multi();
    const s = store();
    const images = imagesOf(s);
    await assert.rejects(
      fetchImage({
        resolver: resolverFor(p, index),
        store: s,
        ref: "example.com/app:1",
        platforms: [only({ os: "linux", architecture: "s390x" })],
        images,
      }),
      /no manifest for platform linux\/s390x/,
    );
    assert.deepEqual(await images.list(), []);
  });

  it("fails when a layer is corrupt, leaving no blob and no image", async () => {
    const { p, amd, index } = multi();
    const s = store();
    const images = imagesOf(s);
    const resolver = resolverFor(p, index);
    resolver.fetcherImpl.corrupt.add(amd.layers[0].digest);
    await assert.rejects(
      fetchImage({
        resolver,
        store: s,
        ref: "example.com/app:1",
        platforms: [only({ os: "linux", architecture: "amd64" })],
        images,
      }),
      /digest/,
    );
    await assert.rejects(s.info(amd.layers[0].digest), { code: "NotFound" });
    assert.deepEqual(await images.list(), []);
  });

  it("lets a wrapper see every descriptor after its fetch", async () => {
    const { p, arm, index } = multi();
    const s = store();
    const seen: string[] = [];
    await fetchImage({
      resolver: resolverFor(p, index),
      store: s,
      ref: "example.com/app:1",
      platforms: [only({ os: "linux", architecture: "arm64" })],
      limit: 1,
      handlerWrapper: (h) => async (desc, signal) => {
        const children = await h(desc, signal);
        await s.info(desc.digest); // present by now
        seen.push(desc.digest);
        return children;
      },
    });
    assert.deepEqual(new Set(seen), new Set([index, arm.manifest, arm.config, ...arm.layers].map((d) => d.digest)));
  });

  it("labels every blob with the repository it came from, as containerd does", async () => {
    const { p, arm, index } = multi();
    const s = store();
    const key = "containerd.io/distribution.source.reg.example.com";
    const fetch = (ref: string) =>
      fetchImage({
        resolver: resolverFor(p, index),
        store: s,
        ref,
        platforms: [only({ os: "linux", architecture: "arm64" })],
        sourceLabels: s,
      });
    await fetch("reg.example.com:5000/team/app:1");
    for (const d of [index, arm.manifest, arm.config, ...arm.layers]) {
      assert.equal((await s.info(d.digest)).labels[key], "team/app", d.digest);
    }
    await fetch("reg.example.com:5000/base/app:1");
    await fetch("reg.example.com:5000/team/app:2");
    assert.equal((await s.info(arm.layers[0].digest)).labels[key], "base/app,team/app");
  });
});

describe("FetchGroup", () => {
  it("fetches the blobs two images share once, the progress of each object shown once", async () => {
    const p = new MemoryProvider();
    const a = addImage(p, { os: "linux", architecture: "amd64" }, ["base", "a"]);
    const b = addImage(p, { os: "linux", architecture: "amd64" }, ["base", "b"]);
    const fetcher = new MemoryFetcher(p);
    const resolver: Resolver = {
      resolve: async (ref) => ({ name: ref, desc: ref.endsWith("a") ? a.manifest : b.manifest }),
      fetcher: async () => fetcher,
      pusher: async () => assert.fail("no push"),
    };
    const s = store();
    const progress = new ProgressTracker();
    const waitingAgain: string[] = [];
    progress.on("change", (e, changed) => {
      if (changed && e.state === "waiting" && e.offset === e.total && e.total > 0) waitingAgain.push(e.key);
    });
    const group = new FetchGroup(2);
    const [ra, rb] = await Promise.all(
      ["example.com/a", "example.com/b"].map((ref) => fetchImage({ resolver, store: s, ref, group, progress })),
    );
    assert.deepEqual(ra.manifests, [a.manifest]);
    assert.deepEqual(rb.manifests, [b.manifest]);
    const base = a.layers[0].digest;
    assert.equal(b.layers[0].digest, base);
    assert.equal(fetcher.calls.filter((c) => c.digest === base).length, 1);
    assert.equal(fetcher.calls.length, new Set(fetcher.calls.map((c) => c.digest)).size, "every blob fetched once");
    const keys = progress.entries().map((e) => e.key);
    assert.equal(keys.length, new Set(keys).size);
    assert.ok(progress.entries().every((e) => e.state === "done" || e.state === "resolved"));
    assert.deepEqual(waitingAgain, [], "no finished object shown as waiting again");
  });

  it("fetches again what another walk started and gave up when it was stopped", async () => {
    const group = new FetchGroup();
    const stopped = new AbortController();
    const other = group.once("sha256:x", stopped.signal, () => {
      stopped.abort(new Error("that walk failed elsewhere"));
      return Promise.reject(stopped.signal.reason);
    });
    await assert.rejects(other, /that walk failed elsewhere/);
    let mine = 0;
    const children = await group.once("sha256:x", new AbortController().signal, async () => {
      mine++;
      return [];
    });
    assert.deepEqual(children, []);
    assert.equal(mine, 1);
  });

  it("shares a real failure instead of fetching again", async () => {
    const group = new FetchGroup();
    let calls = 0;
    const fail = async (): Promise<Descriptor[]> => {
      calls++;
      await new Promise((r) => setTimeout(r, 5));
      throw new DataLossError("digest mismatch");
    };
    const results = await Promise.allSettled([
      group.once("sha256:y", new AbortController().signal, fail),
      group.once("sha256:y", new AbortController().signal, fail),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ["rejected", "rejected"],
    );
    assert.equal(calls, 1);
  });
});
