/**
 * RemoteUnpacker over a real store and native snapshotter under a temporary root,
 * with an in-memory registry (a Resolver serving a test image's blobs and counting
 * what it serves): the walk from the asked layer up, on the parent the request
 * names, shared by the requests that find it running; refusals; failures; close().
 */
import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, describe, test } from "node:test";
import type { Descriptor } from "../../src/descriptor.ts";
import type { Digest } from "../../src/digest.ts";
import { NotFoundError } from "../../src/errors.ts";
import { closeAllDatabases } from "../../src/metadata/db.ts";
import { openMetadata } from "../../src/metadata/metadata.ts";
import type { Resolver } from "../../src/remotes/remotes.ts";
import type { Snapshotter } from "../../src/snapshots/snapshotter.ts";
import { chainIDs } from "../../src/unpack/chainid.ts";
import { type RemoteLayer, type RemotePlace, RemoteUnpacker } from "../../src/unpack/remote.ts";
import { type Blob, blob, HOST, type TestImage, tempDir, testImage } from "../transfer/fixtures.ts";

const tmp = tempDir("dist-remote-unpack-");
after(() => {
  closeAllDatabases();
  rmSync(tmp, { recursive: true, force: true });
});

/** A registry in memory: serves the blobs, counts each fetch; `stall` holds a blob's stream until aborted. */
function memoryRegistry(blobs: Blob[], opts: { stall?: Digest } = {}) {
  const byDigest = new Map(blobs.map((b) => [b.desc.digest, b]));
  const fetched: string[] = [];
  let resolved = 0;
  const find = (digest: string): Blob => {
    const b = byDigest.get(digest as Digest);
    if (!b) throw new NotFoundError(`${digest}: not in the registry`);
    return b;
  };
  const resolver: Resolver = {
    async resolve(ref) {
      resolved++;
      return { name: ref, desc: find(ref.slice(ref.indexOf("@") + 1)).desc };
    },
    async fetcher() {
      return {
        async fetch(desc: Descriptor, o = {}) {
          const b = find(desc.digest);
          fetched.push(desc.digest);
          if (desc.digest !== opts.stall) return Readable.from([b.bytes.subarray(o.offset ?? 0)]);
          // as a real fetch does, one asked for after the abort fails at once
          o.signal?.throwIfAborted();
          const stalled = new Readable({ read() {} });
          o.signal?.addEventListener("abort", () => stalled.destroy(o.signal?.reason), { once: true });
          return stalled;
        },
      };
    },
    async pusher() {
      throw new Error("read-only");
    },
  };
  return { resolver, fetched, resolved: () => resolved };
}

let roots = 0;
/** A fresh root's namespace "ns": its native snapshotter and a place over it, counting content releases. */
function newPlace() {
  const md = openMetadata(join(tmp, `root-${++roots}`));
  const snapshotter = md.snapshotter("ns", "native");
  let released = 0;
  const place: RemotePlace = {
    id: `ns\0native`,
    snapshotter,
    async openContent() {
      return {
        content: md.content("ns"),
        release: async () => {
          released++;
        },
      };
    },
  };
  return { place, snapshotter, released: () => released };
}

/** The request for layer `i` of `image`, on `parent`. */
function request(image: TestImage, i: number, parent?: string): RemoteLayer {
  const chains = chainIDs(image.layers.map((l) => l.desc.digest));
  return {
    ref: "registry.test/remote/image:1",
    manifest: image.manifest.desc.digest,
    layer: image.layers[i].desc.digest,
    chainID: chains[i],
    parent,
  };
}

/** A committed snapshot named as a client names its own (containerd: `<ns>/<n>/<chainID>`). */
async function clientSnapshot(sn: Snapshotter, name: string): Promise<void> {
  await sn.prepare(`${name}-active`, undefined);
  await sn.commit(name, `${name}-active`);
}

async function snapshots(sn: Snapshotter) {
  const out: { name: string; parent?: string; kind: string; ref?: string }[] = [];
  await sn.walk((i) => {
    out.push({ name: i.name, parent: i.parent, kind: i.kind, ref: i.labels["containerd.io/snapshot.ref"] });
  });
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

describe("RemoteUnpacker", () => {
  test("unpacks the asked layer on the parent the request names and those above in one walk", async () => {
    const image = await testImage(HOST, ["zero", "one", "two"]);
    const chains = chainIDs(image.layers.map((l) => l.desc.digest));
    const reg = memoryRegistry(image.blobs);
    const { place, snapshotter, released } = newPlace();
    await clientSnapshot(snapshotter, "client/1/base");
    const remote = new RemoteUnpacker({ resolver: reg.resolver });
    await remote.unpack(request(image, 1, "client/1/base"), place);
    // containerd asks for the next layer as soon as it has the first: the walk makes it (or made it)
    await remote.unpack(request(image, 2, chains[1]), place);
    assert.equal(reg.resolved(), 1, "one walk");
    await remote.close();
    assert.deepEqual(await snapshots(snapshotter), [
      { name: "client/1/base", parent: undefined, kind: "committed", ref: undefined },
      { name: chains[1], parent: "client/1/base", kind: "committed", ref: chains[1] },
      { name: chains[2], parent: chains[1], kind: "committed", ref: chains[2] },
    ]);
    const [m] = await snapshotter.view("look", chains[2]);
    assert.equal(readFileSync(join(m.source, "file2"), "utf8"), "two");
    assert.equal(readFileSync(join(m.source, "file1"), "utf8"), "one");
    await snapshotter.remove("look");
    const counts = Object.groupBy(reg.fetched, (d) => d);
    assert.equal(counts[image.layers[0].desc.digest], undefined, "the layer below is not fetched");
    for (const b of [image.manifest, image.config, image.layers[1], image.layers[2]]) {
      assert.equal(counts[b.desc.digest]?.length, 1, `${b.desc.digest} fetched once`);
    }
    assert.equal(released(), 1, "the walk's content let go once");
  });

  test("a layer the manifest does not have at that ChainID is refused, and nothing is made", async () => {
    const image = await testImage(HOST, ["a", "b"]);
    const { place, snapshotter } = newPlace();
    const remote = new RemoteUnpacker({ resolver: memoryRegistry(image.blobs).resolver });
    const wrong = { ...request(image, 1), chainID: request(image, 0).chainID };
    await assert.rejects(remote.unpack(wrong, place), { code: "FailedPrecondition", message: /is not in/ });
    await assert.rejects(remote.unpack({ ...request(image, 0), manifest: image.layers[0].desc.digest }, place), {
      code: "FailedPrecondition",
      message: /not an image manifest/,
    });
    assert.deepEqual(await snapshots(snapshotter), []);
  });

  test("a layer that does not match its diff_id fails the walk's requests and leaves no snapshot", async () => {
    const image = await testImage(HOST, ["a", "b"]);
    // the config promises another second layer than the manifest's
    const bad = await testImage(HOST, ["a", "c"]);
    const config = bad.config;
    const manifestJson = JSON.parse(image.manifest.bytes.toString());
    manifestJson.config = config.desc;
    const manifest = blob(JSON.stringify(manifestJson), image.manifest.desc.mediaType);
    const chains = chainIDs(bad.layers.map((l) => l.desc.digest));
    const { place, snapshotter } = newPlace();
    const remote = new RemoteUnpacker({
      resolver: memoryRegistry([manifest, config, ...image.layers]).resolver,
    });
    const req: RemoteLayer = {
      ref: "registry.test/remote/image:1",
      manifest: manifest.desc.digest,
      layer: image.layers[0].desc.digest,
      chainID: chains[0],
    };
    await remote.unpack(req, place);
    const second = { ...req, layer: image.layers[1].desc.digest, chainID: chains[1], parent: chains[0] };
    await assert.rejects(remote.unpack(second, place), /diff_id/);
    await remote.close();
    assert.deepEqual(
      (await snapshots(snapshotter)).map((s) => s.name),
      [chains[0]],
    );
  });

  test("close() stops a walk: its requests fail and its temporary snapshot goes", async () => {
    const image = await testImage(HOST, ["a"]);
    const { place, snapshotter } = newPlace();
    const remote = new RemoteUnpacker({
      resolver: memoryRegistry(image.blobs, { stall: image.layers[0].desc.digest }).resolver,
    });
    const pending = remote.unpack(request(image, 0), place);
    // the walk is applying (its temporary snapshot is there) when the daemon stops
    for (let i = 0; i < 200 && (await snapshots(snapshotter)).length === 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal((await snapshots(snapshotter))[0]?.kind, "active");
    await remote.close();
    await assert.rejects(pending, /stopping/);
    assert.deepEqual(await snapshots(snapshotter), []);
  });

  test("a request's signal ends its wait, not the walk", async () => {
    const image = await testImage(HOST, ["a"]);
    const { place, snapshotter } = newPlace();
    const remote = new RemoteUnpacker({ resolver: memoryRegistry(image.blobs).resolver });
    const ctrl = new AbortController();
    ctrl.abort(new Error("the client went away"));
    await assert.rejects(remote.unpack(request(image, 0), place, ctrl.signal), /went away/);
    await remote.unpack(request(image, 0), place);
    await remote.close();
    assert.deepEqual(
      (await snapshots(snapshotter)).map((s) => s.kind),
      ["committed"],
    );
  });
});
