// What a push or copy sends of an index, for the platforms asked and those available.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Descriptor } from "../../src/descriptor.ts";
import { allPlatforms, only } from "../../src/images/platforms.ts";
import { selectPlatforms } from "../../src/transfer/select.ts";
import { addImage, addIndex, MemoryProvider } from "../images/memory.ts";

function multi() {
  const p = new MemoryProvider();
  const amd = addImage(p, { os: "linux", architecture: "amd64" }, ["a"]);
  const arm = addImage(p, { os: "linux", architecture: "arm64" }, ["b"]);
  const entries = [
    { ...amd.manifest, platform: { os: "linux", architecture: "amd64" } },
    { ...arm.manifest, platform: { os: "linux", architecture: "arm64" } },
  ];
  const index = addIndex(p, entries);
  const bytes = p.blobs.get(index.digest) as Buffer;
  const read = async (d: Descriptor) => p.blobs.get(d.digest) as Buffer;
  return { p, amd, arm, index, bytes, read };
}

describe("selectPlatforms", () => {
  it("keeps the index whole when everything goes", async () => {
    const { index, bytes, read } = multi();
    const s = await selectPlatforms(index, bytes, { matchers: [allPlatforms()], named: false, read });
    assert.equal(s.changed, "no");
    assert.equal(s.desc.digest, index.digest);
  });

  it("sends one named platform's manifest alone, noting it", async () => {
    const { index, bytes, read, arm } = multi();
    const notes: string[] = [];
    const s = await selectPlatforms(index, bytes, {
      matchers: [only({ os: "linux", architecture: "arm64" })],
      named: true,
      read,
      onNote: (_d, n) => notes.push(n),
    });
    assert.equal(s.changed, "manifest");
    assert.equal(s.desc.digest, arm.manifest.digest);
    assert.deepEqual(s.bytes, await read(arm.manifest));
    assert.match(notes[0], /sending the platform manifest sha256:\w+ alone, not the index/);
  });

  it("narrows the index to what is available, and refuses when nothing is", async () => {
    const { index, bytes, read, amd } = multi();
    const s = await selectPlatforms(index, bytes, {
      matchers: [allPlatforms()],
      named: false,
      read,
      available: async (d) => d.digest === amd.manifest.digest,
    });
    assert.equal(s.changed, "index");
    assert.deepEqual(
      JSON.parse(s.bytes.toString()).manifests.map((d: Descriptor) => d.digest),
      [amd.manifest.digest],
    );
    assert.equal(s.omitted.length, 1);
    await assert.rejects(
      selectPlatforms(index, bytes, { matchers: [allPlatforms()], named: false, read, available: async () => false }),
      /none of the 2 manifests of index sha256:\w+ is available here/,
    );
  });

  it("refuses when the destination names another digest", async () => {
    const { index, bytes, read } = multi();
    await assert.rejects(
      selectPlatforms(index, bytes, {
        matchers: [allPlatforms()],
        named: false,
        read,
        expected: `sha256:${"0".repeat(64)}`,
      }),
      /the destination names sha256:0+, but what goes is sha256:/,
    );
  });
});
