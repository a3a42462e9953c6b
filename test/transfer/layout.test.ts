/** The pure parts of export and import: layout paths, archive paths, tag names, import names. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Descriptor } from "../../src/descriptor.ts";
import { archivePath, entryPath, linkTarget } from "../../src/transfer/archive-entries.ts";
import { dockerEntry, parseDockerManifest } from "../../src/transfer/docker-archive.ts";
import { defaultBaseName, importNames } from "../../src/transfer/import-names.ts";
import { blobPath, checkLayoutFile, digestOfBlobPath, ociRefName } from "../../src/transfer/oci-layout.ts";

const D = `sha256:${"a".repeat(64)}` as const;
const desc = (annotations?: Record<string, string>, digest: string = D): Descriptor => ({
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  digest: digest as Descriptor["digest"],
  size: 1,
  annotations,
});

describe("layout paths", () => {
  it("blobs/<alg>/<hex> both ways; anything else under blobs/ is refused", () => {
    assert.equal(blobPath(D), `blobs/sha256/${"a".repeat(64)}`);
    assert.equal(digestOfBlobPath(blobPath(D)), D);
    assert.equal(digestOfBlobPath("index.json"), undefined);
    assert.equal(digestOfBlobPath("blobsx/y"), undefined);
    assert.throws(() => digestOfBlobPath("blobs/sha256/ABC"), /not named by a valid digest/);
    assert.throws(() => digestOfBlobPath(`blobs/sha256/${"a".repeat(64)}/x`), /not blobs\/<algorithm>\/<hex>/);
  });

  it("archive paths are relative, without . or .., and never leave the root", () => {
    assert.equal(archivePath("./a//b/"), "a/b");
    assert.equal(archivePath("."), "");
    assert.equal(archivePath("../x/layer.tar", "y"), "x/layer.tar");
    assert.throws(() => archivePath("/etc/passwd"), /absolute path/);
    assert.throws(() => archivePath("../../x", "y"), /escapes the archive root/);
    assert.throws(() => entryPath("a/../b"), /escapes the archive root/);
    assert.equal(
      linkTarget({ path: "b/layer.tar", type: "symlink", size: 0, target: "../a/layer.tar" }),
      "a/layer.tar",
    );
    assert.equal(linkTarget({ path: "b/layer.tar", type: "link", size: 0, target: "a/layer.tar" }), "a/layer.tar");
    assert.throws(() => linkTarget({ path: "b", type: "symlink", size: 0, target: "../../etc" }), /link b: .*escapes/);
  });

  it("oci-layout must say 1.0.0", () => {
    checkLayoutFile(Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
    assert.throws(
      () => checkLayoutFile(Buffer.from('{"imageLayoutVersion":"2.0.0"}')),
      /unsupported OCI layout version/,
    );
    assert.throws(() => checkLayoutFile(Buffer.from("nope")), /not JSON/);
  });

  it("ref.name is the tag part, as containerd's exporter writes it", () => {
    assert.equal(ociRefName("docker.io/library/redis:7"), "7");
    assert.equal(ociRefName("127.0.0.1:5000/a/b:latest"), "latest");
    assert.equal(ociRefName(`example.com/x@${D}`), `@${D}`);
    assert.equal(ociRefName("plain"), "plain");
  });
});

describe("Docker's manifest.json", () => {
  it("entries of names with a tag, in Docker's short form", () => {
    const e = dockerEntry({ schemaVersion: 2, config: desc(undefined, D), layers: [desc(undefined, D)] }, [
      "docker.io/library/redis:7",
      `example.com/x@${D}`,
      "example.com/y:1",
      "not a reference",
    ]);
    assert.deepEqual(e.RepoTags, ["redis:7", "example.com/y:1"]);
    assert.equal(e.Config, blobPath(D));
  });

  it("parsing checks every field", () => {
    assert.deepEqual(
      parseDockerManifest(Buffer.from('[{"Config":"c.json","RepoTags":null,"Layers":["a/layer.tar"]}]')),
      [{ Config: "c.json", RepoTags: [], Layers: ["a/layer.tar"] }],
    );
    assert.throws(() => parseDockerManifest(Buffer.from("{}")), /expected an array/);
    assert.throws(() => parseDockerManifest(Buffer.from('[{"Config":1}]')), /Config is not a file name/);
    assert.throws(
      () => parseDockerManifest(Buffer.from('[{"Config":"c","Layers":[1]}]')),
      /Layers is not an array of strings/,
    );
  });
});

describe("importNames", () => {
  const now = new Date("2024-05-06T00:00:00Z");
  it("containerd's name first, then ref.name under the base", () => {
    const { images } = importNames(
      [
        desc({ "io.containerd.image.name": "example.com/a:1", "org.opencontainers.image.ref.name": "1" }),
        desc({ "org.opencontainers.image.ref.name": "2" }),
        desc({ "org.opencontainers.image.ref.name": `@${D}` }),
      ],
      { now },
    );
    assert.deepEqual(
      images.map((i) => i.name),
      [
        "example.com/a:1",
        `docker.io/library/${defaultBaseName(now)}:2`,
        `docker.io/library/${defaultBaseName(now)}@${D}`,
      ],
    );
  });

  it("a name that is not one (control characters, too long) is left out with a note", () => {
    const { images, notes } = importNames([
      desc({ "io.containerd.image.name": "evil\nname" }),
      desc({ "io.containerd.image.name": "x".repeat(2000) }),
    ]);
    assert.deepEqual(images, []);
    assert.equal(notes.length, 2);
    assert.match(notes[0], /not usable/);
  });
});
