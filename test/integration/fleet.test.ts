/**
 * A fleet of four nodes in network namespaces, each running `dist serve` with
 * the peers before the upstream (see fixtures/fleet.ts), fetching one image at
 * once: every node gets it whole and verified, and the upstream sends each blob
 * once, not four times. Then with the CNCF registry in proxy mode as the
 * fleet's cache and one peer dead from the start: the others finish by falling
 * back. Small images only (the 1 GiB rollout is bench/suites/fleet.ts).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type Fleet, startFleet } from "./fixtures/fleet.ts";
import { type Testbed, testbed } from "./harness.ts";

let tb: Testbed;
let ref: string;

before(async () => {
  tb = await testbed();
  ref = tb.hasDebian ? "debian/bookworm:minbase" : "multi/busybox:oci";
});

after(async () => {
  await tb?.stop();
});

/** Bytes of the blobs a host-platform fetch of the image needs (config and layers; manifests are not blobs). */
function imageBlobBytes(): number {
  const info = tb.images[ref];
  const m = info.manifests?.find((x) => x.platform?.architecture === "amd64") ?? info;
  return (m.config?.size ?? 0) + (m.layers ?? []).reduce((n, l) => n + l.size, 0);
}

/** How many blobs (config and layers) a host-platform fetch of the image needs. */
function blobCount(): number {
  const info = tb.images[ref];
  const m = info.manifests?.find((x) => x.platform?.architecture === "amd64") ?? info;
  return (m.config ? 1 : 0) + (m.layers ?? []).length;
}

async function rollout(fleet: Fleet, nodes = fleet.nodes) {
  const results = await Promise.all(nodes.map((n) => fleet.client(n, ["fetch", `${fleet.upstream}/${ref}`])));
  results.forEach((r, i) => {
    assert.equal(
      r.code,
      0,
      `${nodes[i].name}: ${r.stderr.toString()}\nserve log:\n${nodes[i].serve.logs().slice(-2000)}`,
    );
  });
  for (const n of nodes) {
    const check = await fleet.client(n, ["images", "check", `${fleet.upstream}/${ref}`]);
    assert.match(check.stdout.toString(), /complete/, `${n.name}: ${check.stdout}${check.stderr}`);
    const ls = await fleet.client(n, ["images", "ls", "--output", "json"]);
    const images = JSON.parse(ls.stdout.toString()) as { name: string; digest: string }[];
    const mine = images.find((i) => i.name === `${fleet.upstream}/${ref}`);
    assert.equal(mine?.digest, tb.images[ref].digest, n.name);
  }
}

describe("a fleet of dist serve nodes", { skip: process.getuid?.() !== 0 && "network namespaces need root" }, () => {
  test("four nodes fetch at once: each blob leaves the upstream once", async () => {
    const fleet = await startFleet({ nodes: 4, storage: tb.storage, dir: tb.tempDir("fleet") });
    try {
      await rollout(fleet);
      assert.equal(fleet.upstreamBlobBytes(), imageBlobBytes());
    } finally {
      await fleet.stop();
    }
  });

  test("with the CNCF registry as the fleet's cache and a peer dead: the others finish by fallback", async () => {
    const fleet = await startFleet({ nodes: 4, storage: tb.storage, dir: tb.tempDir("fleet"), cache: true });
    try {
      await fleet.nodes[1].serve.stop();
      await rollout(fleet, [fleet.nodes[0], fleet.nodes[2], fleet.nodes[3]]);
      // the fleet asks its cache once per blob (the CNCF registry's proxy then downloads
      // a miss twice itself: once for the client, once into its storage)
      const gets = fleet.cacheBlobGets().map((p) => p.replace(/\?.*$/, ""));
      assert.equal(gets.length, new Set(gets).size, gets.join("\n"));
      assert.equal(gets.length, blobCount());
    } finally {
      await fleet.stop();
    }
  });
});
