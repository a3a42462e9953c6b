/**
 * The daemon's side of containerd's remote-snapshotter protocol (prepareSnapshot)
 * over a real root and native snapshotter, with a stand-in for the RemoteUnpacker;
 * and the snapshotter names a proxy plugin's calls arrive with.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { digestOf } from "../../src/digest.ts";
import { closeAllDatabases } from "../../src/metadata/db.ts";
import type { Backend } from "../../src/services/server/backend.ts";
import { embeddedBackend } from "../../src/services/server/embedded.ts";
import {
  IMAGE_REF_LABEL,
  LAYER_DIGEST_LABEL,
  MANIFEST_DIGEST_LABEL,
  type PrepareContext,
  prepareSnapshot,
  remoteLayerOf,
  TARGET_LABEL,
} from "../../src/services/server/remote-snapshots.ts";
import { parseSnapshotterAliases, resolveSnapshotterName } from "../../src/services/snapshotter-names.ts";
import type { Snapshotter } from "../../src/snapshots/snapshotter.ts";
import type { RemoteLayer, RemotePlace } from "../../src/unpack/remote.ts";
import { tempDir } from "../transfer/fixtures.ts";

const tmp = tempDir("dist-remote-snapshots-");
after(() => {
  closeAllDatabases();
  rmSync(tmp, { recursive: true, force: true });
});

const chain = digestOf("layer one");
const parentChain = digestOf("layer zero");
const manifest = digestOf("manifest");
const layer = digestOf("blob");
const remoteLabels: Record<string, string> = {
  [TARGET_LABEL]: chain,
  [IMAGE_REF_LABEL]: "registry.test/app:1",
  [MANIFEST_DIGEST_LABEL]: manifest,
  [LAYER_DIGEST_LABEL]: layer,
};

let roots = 0;
async function setup(remote?: PrepareContext["remote"]) {
  const backend: Backend = embeddedBackend(join(tmp, `root-${++roots}`), { snapshotterAliases: { dist: "native" } });
  const sn = await backend.snapshotter("dist", "dist");
  const warnings: string[] = [];
  const c: PrepareContext = {
    backend,
    namespace: "dist",
    snapshotter: sn,
    remote,
    log: { info() {}, warn: (fields, msg) => warnings.push(`${msg}: ${JSON.stringify(fields)}`) },
    signal: new AbortController().signal,
  };
  await committed(sn, parentChain);
  return { c, sn, warnings, backend };
}

async function committed(sn: Snapshotter, name: string, parent?: string): Promise<void> {
  await sn.prepare(`${name}-active`, parent);
  await sn.commit(name, `${name}-active`);
}

describe("prepareSnapshot (containerd's remote-snapshotter protocol)", () => {
  test("a Prepare without a target is an ordinary one", async () => {
    const { c, sn } = await setup();
    await prepareSnapshot(c, "k", parentChain, { "containerd.io/snapshot/x": "1" });
    const info = await sn.stat("k");
    assert.deepEqual(
      [info.kind, info.parent, info.labels],
      ["active", parentChain, { "containerd.io/snapshot/x": "1" }],
    );
  });

  test("a target there on that parent is AlreadyExists, labelled so containerd finds it", async () => {
    const { c, sn } = await setup();
    await committed(sn, chain, parentChain);
    await assert.rejects(prepareSnapshot(c, "k", parentChain, { [TARGET_LABEL]: chain }), { code: "AlreadyExists" });
    assert.equal((await sn.stat(chain)).labels[TARGET_LABEL], chain);
    await assert.rejects(sn.stat("k"), { code: "NotFound" });
  });

  test("a target name another snapshot has (on another parent) leaves containerd to unpack the layer", async () => {
    const { c, sn } = await setup();
    await committed(sn, chain);
    await prepareSnapshot(c, "k", parentChain, { [TARGET_LABEL]: chain, "containerd.io/snapshot/x": "1" });
    const info = await sn.stat("k");
    assert.deepEqual([info.kind, info.labels], ["active", { "containerd.io/snapshot/x": "1" }]);
  });

  test("the remote layer made on the asked parent is AlreadyExists; its blobs were on a lease while it ran", async () => {
    const asked: RemoteLayer[] = [];
    let leasesWhileRunning: string[] = [];
    let backend: Backend | undefined;
    const { c, sn } = await setup({
      async unpack(req: RemoteLayer, place: RemotePlace) {
        asked.push(req);
        const { release } = await place.openContent();
        leasesWhileRunning =
          backend
            ?.leases("dist")
            .list()
            .map((l) => l.id) ?? [];
        await committed(place.snapshotter, req.chainID, req.parent);
        await place.snapshotter.update({ name: req.chainID, labels: { [TARGET_LABEL]: req.chainID } });
        await release();
      },
    });
    backend = c.backend;
    await assert.rejects(prepareSnapshot(c, "k", parentChain, remoteLabels), { code: "AlreadyExists" });
    assert.deepEqual(asked, [
      { ref: "registry.test/app:1", manifest, layer, chainID: chain, parent: parentChain },
    ] satisfies RemoteLayer[]);
    assert.equal(leasesWhileRunning.length, 1);
    assert.match(leasesWhileRunning[0], /^dist-remote-/);
    assert.deepEqual(c.backend.leases("dist").list(), [], "the lease went with the walk");
    assert.equal((await sn.stat(chain)).parent, parentChain);
  });

  test("when the remote layer cannot be made the Prepare goes on, and the reason is logged", async () => {
    const { c, sn, warnings } = await setup({
      async unpack() {
        throw new Error("registry.test: 401 Unauthorized");
      },
    });
    await prepareSnapshot(c, "k", parentChain, remoteLabels);
    assert.equal((await sn.stat("k")).labels[TARGET_LABEL], chain);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /the client unpacks it.*401 Unauthorized/);
  });

  test("made on another parent meanwhile (another walk) is not the asked one: containerd unpacks it", async () => {
    const { c, sn } = await setup({
      async unpack(req: RemoteLayer, place: RemotePlace) {
        await committed(place.snapshotter, req.chainID);
      },
    });
    await prepareSnapshot(c, "k", parentChain, remoteLabels);
    assert.equal((await sn.stat("k")).kind, "active");
  });

  test("labels that name no whole remote layer are not sent to the registry", () => {
    assert.equal(remoteLayerOf(remoteLabels, parentChain)?.chainID, chain);
    for (const drop of [IMAGE_REF_LABEL, MANIFEST_DIGEST_LABEL, LAYER_DIGEST_LABEL, TARGET_LABEL]) {
      const { [drop]: _, ...rest } = remoteLabels;
      assert.equal(remoteLayerOf(rest, parentChain), undefined, drop);
    }
    assert.equal(remoteLayerOf({ ...remoteLabels, [LAYER_DIGEST_LABEL]: "sha256:short" }, undefined), undefined);
  });
});

describe("snapshotter names", () => {
  test("--snapshotter-alias NAME=overlay|native; NAME a namespace name, not a snapshotter's own", () => {
    assert.deepEqual(parseSnapshotterAliases(["dist=overlayfs", "dist-native=native", "b=overlay"]), {
      dist: "overlay",
      "dist-native": "native",
      b: "overlay",
    });
    for (const [spec, why] of [
      ["dist", /NAME=overlay/],
      ["-dist=native", /namespace/],
      ["a/b=native", /namespace/],
      ["native=overlay", /own name/],
      ["dist=btrfs", /unknown snapshotter "btrfs"/],
    ] as const) {
      assert.throws(() => parseSnapshotterAliases([spec]), { code: "InvalidArgument", message: why }, spec);
    }
    assert.throws(() => parseSnapshotterAliases(["a=native", "a=overlay"]), /given twice/);
  });

  test("containerd's names and the aliases resolve; nothing else does", () => {
    const aliases = { dist: "native" } as const;
    assert.equal(resolveSnapshotterName("overlayfs", aliases), "overlay");
    assert.equal(resolveSnapshotterName("dist", aliases), "native");
    assert.equal(resolveSnapshotterName("toString", aliases), undefined);
    assert.equal(resolveSnapshotterName("distt", aliases), undefined);
  });

  test("a proxy plugin's calls (no namespace) go to its alias's namespace; other names get none", async () => {
    const backend = embeddedBackend(join(tmp, "names"), { snapshotterAliases: { dist: "native" } });
    assert.equal(backend.proxyNamespace("dist"), "dist");
    assert.equal(backend.proxyNamespace("native"), undefined);
    assert.equal(backend.proxyNamespace("other"), undefined);
    assert.ok(backend.snapshotters().includes("dist"));
    await assert.rejects(backend.snapshotter("dist", "other"), { code: "InvalidArgument", message: /not loaded/ });
  });
});
