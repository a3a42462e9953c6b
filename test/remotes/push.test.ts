// The pusher's transfer path against an in-process registry that speaks the upload
// protocol edges distribution 2.8 lacks: a session's Range after an interrupted PATCH,
// Content-Range checks (416), the referrers API. (The real registry covers the rest.)
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, beforeEach, describe, it } from "node:test";
import type { Descriptor } from "../../src/descriptor.ts";
import { digestOf } from "../../src/digest.ts";
import { isErrorCode } from "../../src/errors.ts";
import { createResolver, type DockerResolver } from "../../src/remotes/docker/index.ts";
import { parseUploadRange } from "../../src/remotes/docker/upload.ts";
import { OCI_INDEX, OCI_MANIFEST, UploadRegistry } from "./upload-registry.ts";

const reg = new UploadRegistry();
let resolver: DockerResolver;
const warnings: string[] = [];
before(async () => {
  await reg.start();
  resolver = createResolver({
    plainHttp: true,
    retries: 3,
    backoffBaseMs: 1,
    dockerConfigPath: join(tmpdir(), "dist-no-such-config.json"),
    proxy: {},
    onWarning: (w) => warnings.push(w),
  });
});
after(async () => {
  await resolver.close();
  await reg.close();
});
beforeEach(() => {
  reg.reset();
  warnings.length = 0;
});

function blob(size: number): {
  bytes: Buffer;
  desc: Descriptor;
  opens: number[];
  open: (o: number) => Promise<Readable>;
} {
  const bytes = randomBytes(size);
  const opens: number[] = [];
  return {
    bytes,
    desc: { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: digestOf(bytes), size },
    opens,
    // in 1000-byte pieces, like a network stream
    open: async (o) => {
      opens.push(o);
      const parts: Buffer[] = [];
      for (let i = o; i < size; i += 1000) parts.push(bytes.subarray(i, Math.min(size, i + 1000)));
      return Readable.from(parts);
    },
  };
}

const pusher = () => resolver.pusher(`${reg.addr}/app:v1`);

describe("pushBlob", () => {
  it("sends a small blob in one PUT, and skips one the registry has", async () => {
    const b = blob(3000);
    const progress: number[] = [];
    const p = await pusher();
    assert.equal(await p.pushBlob(b.desc, b.open, { onProgress: (o) => progress.push(o) }), "pushed");
    assert.deepEqual(reg.blobs.get(b.desc.digest), b.bytes);
    assert.deepEqual(reg.log, [
      `HEAD /v2/app/blobs/${b.desc.digest}`,
      "POST /v2/app/blobs/uploads/",
      `PUT /v2/app/blobs/uploads/u1?digest=${encodeURIComponent(b.desc.digest)}`,
    ]);
    assert.deepEqual(progress, [0, 3000]);
    reg.log = [];
    assert.equal(await p.pushBlob(b.desc, b.open), "exists");
    assert.deepEqual(reg.log, [`HEAD /v2/app/blobs/${b.desc.digest}`]);
  });

  it("sends a large blob in PATCH chunks with Content-Range, then PUT ?digest=", async () => {
    const b = blob(10_000);
    const progress: number[] = [];
    const p = await pusher();
    const status = await p.pushBlob(b.desc, b.open, {
      monolithicMax: 1000,
      chunkSize: 4096,
      onProgress: (o) => progress.push(o),
    });
    assert.equal(status, "pushed");
    assert.deepEqual(reg.blobs.get(b.desc.digest), b.bytes);
    assert.deepEqual(reg.log.slice(1), [
      "POST /v2/app/blobs/uploads/",
      "PATCH /v2/app/blobs/uploads/u1 [0-4095]",
      "PATCH /v2/app/blobs/uploads/u1 [4096-8191]",
      "PATCH /v2/app/blobs/uploads/u1 [8192-9999]",
      `PUT /v2/app/blobs/uploads/u1?digest=${encodeURIComponent(b.desc.digest)}`,
    ]);
    assert.equal(progress.at(-1), 10_000);
    assert.deepEqual(b.opens, [0], "one pass over the source");
  });

  it("resumes an interrupted upload from the offset the registry reports, reopening the source there", async () => {
    const b = blob(10_000);
    reg.cutAt = 6000; // inside the second chunk: the registry keeps 6000 bytes
    const p = await pusher();
    assert.equal(await p.pushBlob(b.desc, b.open, { monolithicMax: 1000, chunkSize: 4096 }), "pushed");
    assert.deepEqual(reg.blobs.get(b.desc.digest), b.bytes);
    assert.deepEqual(b.opens, [0, 6000]);
    assert.deepEqual(reg.log.slice(1), [
      "POST /v2/app/blobs/uploads/",
      "PATCH /v2/app/blobs/uploads/u1 [0-4095]",
      "PATCH /v2/app/blobs/uploads/u1 [4096-8191]",
      "GET /v2/app/blobs/uploads/u1",
      "PATCH /v2/app/blobs/uploads/u1 [6000-9999]",
      `PUT /v2/app/blobs/uploads/u1?digest=${encodeURIComponent(b.desc.digest)}`,
    ]);
    assert.match(warnings.join("\n"), /the chunk from byte \d+ failed .*resuming from the registry's offset 6000/);
  });

  it("starts over when the registry dropped the session", async () => {
    const b = blob(10_000);
    reg.cutAt = 5000;
    reg.dropOnStatus = true;
    const p = await pusher();
    assert.equal(await p.pushBlob(b.desc, b.open, { monolithicMax: 1000, chunkSize: 4096 }), "pushed");
    assert.deepEqual(reg.blobs.get(b.desc.digest), b.bytes);
    assert.deepEqual(b.opens, [0, 0]);
    assert.ok(reg.log.includes("POST /v2/app/blobs/uploads/"));
    assert.equal(reg.log.filter((l) => l.startsWith("POST")).length, 2);
    assert.match(warnings.join("\n"), /the registry dropped the upload, starting over/);
  });

  it("mounts from another repository, and uploads when the mount is refused", async () => {
    const b = blob(3000);
    const p = await pusher();
    assert.equal(await p.pushBlob(b.desc, b.open, { mountFrom: "has/it" }), "mounted");
    assert.deepEqual(reg.log.slice(1), [
      `POST /v2/app/blobs/uploads/?mount=${encodeURIComponent(b.desc.digest)}&from=has%2Fit`,
    ]);
    reg.reset();
    reg.refuseMounts = true;
    assert.equal(await p.pushBlob(b.desc, b.open, { mountFrom: "private/repo" }), "pushed");
    assert.deepEqual(reg.blobs.get(b.desc.digest), b.bytes);
    assert.deepEqual(
      reg.log.filter((l) => l.startsWith("POST")),
      [
        `POST /v2/app/blobs/uploads/?mount=${encodeURIComponent(b.desc.digest)}&from=private%2Frepo`,
        "POST /v2/app/blobs/uploads/",
      ],
    );
  });

  it("refuses a source that is not the blob, and cancels the session", async () => {
    const b = blob(3000);
    const other = blob(3000);
    const p = await pusher();
    await assert.rejects(p.pushBlob(b.desc, other.open), (err: Error) => {
      assert.ok(isErrorCode(err, "DataLoss"), err.message);
      assert.match(err.message, /digest mismatch/);
      return true;
    });
    assert.equal(reg.blobs.size, 0);
    assert.ok(reg.log.at(-1)?.startsWith("DELETE /v2/app/blobs/uploads/u1"));
    const short = { ...b.desc, size: 20_000 };
    await assert.rejects(
      p.pushBlob(short, b.open, { monolithicMax: 1000, chunkSize: 4096 }),
      /the source ended early \(the blob is 20000 bytes\)/,
    );
  });
});

describe("refusals", () => {
  it("say in one line which repository refused which action, and why", async () => {
    const b = blob(3000);
    const p = await pusher();
    reg.deny = { on: "POST", status: 403, code: "DENIED", message: "requested access to the resource is denied" };
    await assert.rejects(p.pushBlob(b.desc, b.open), (err: Error) => {
      assert.ok(isErrorCode(err, "PermissionDenied"), err.name);
      assert.equal(
        err.message,
        `${reg.addr}/app:v1: starting upload of ${b.desc.digest}: denied: requested access to the resource is denied (HTTP 403)`,
      );
      return true;
    });
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [] }));
    const idx: Descriptor = { mediaType: OCI_INDEX, digest: digestOf(body), size: body.length };
    reg.deny = { on: "PUT", status: 403, code: "DENIED", message: "quota exceeded: 10.0 GiB of 10.0 GiB used" };
    await assert.rejects(p.pushManifest(idx, body, { tag: "v1" }), (err: Error) => {
      assert.equal(
        err.message,
        `${reg.addr}/app:v1: tagging ${idx.digest} as v1: denied: quota exceeded: 10.0 GiB of 10.0 GiB used (HTTP 403)`,
      );
      assert.ok(!err.message.includes("\n"));
      return true;
    });
  });
});

describe("pushManifest and referrers", () => {
  const manifestOf = (extra: object) => {
    const body = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: "application/vnd.oci.empty.v1+json", digest: digestOf("{}"), size: 2 },
        layers: [],
        ...extra,
      }),
    );
    return { body, desc: { mediaType: OCI_MANIFEST, digest: digestOf(body), size: body.length } as Descriptor };
  };

  it("PUTs by digest or under a tag, and only when the registry lacks it there", async () => {
    const m = manifestOf({});
    const p = await pusher();
    assert.equal(await p.pushManifest(m.desc, m.body), "pushed");
    assert.equal(await p.pushManifest(m.desc, m.body), "exists");
    assert.equal(await p.pushManifest(m.desc, m.body, { tag: "v1" }), "pushed");
    assert.equal(await p.pushManifest(m.desc, m.body, { tag: "v1" }), "exists");
    assert.deepEqual(
      reg.log.filter((l) => l.startsWith("PUT")),
      [`PUT /v2/app/manifests/${m.desc.digest}`, "PUT /v2/app/manifests/v1"],
    );
    await assert.rejects(p.pushManifest(m.desc, Buffer.from("{}")), /bytes do not match the descriptor/);
    await assert.rejects(p.pushManifest(m.desc, m.body, { tag: "no/slash" }), /invalid tag "no\/slash"/);
  });

  it("lists referrers through the API, page by page, and through the tag schema without it", async () => {
    const subject = manifestOf({});
    const sig = manifestOf({ artifactType: "application/vnd.dev.cosign", subject: subject.desc });
    const sbom = manifestOf({ artifactType: "application/spdx+json", subject: subject.desc });
    const p = await pusher();
    for (const m of [subject, sig, sbom]) await p.pushManifest(m.desc, m.body);
    const f = await resolver.fetcher(`${reg.addr}/app:v1`);
    const viaApi = await f.referrers(subject.desc.digest);
    assert.equal(viaApi.api, true);
    assert.deepEqual(viaApi.manifests.map((d) => d.digest).sort(), [sig.desc.digest, sbom.desc.digest].sort());
    assert.deepEqual(viaApi.manifests.map((d) => d.artifactType).sort(), [
      "application/spdx+json",
      "application/vnd.dev.cosign",
    ]);

    reg.referrersApi = false;
    assert.deepEqual(await f.referrers(subject.desc.digest), { manifests: [], api: false });
    const first = await f.referrers(subject.desc.digest);
    assert.equal(
      await p.addReferrerToTag(
        subject.desc,
        { ...sig.desc, artifactType: "application/vnd.dev.cosign" },
        first.manifests,
      ),
      true,
    );
    const second = await f.referrers(subject.desc.digest);
    assert.deepEqual(
      second.manifests.map((d) => [d.digest, d.artifactType]),
      [[sig.desc.digest, "application/vnd.dev.cosign"]],
    );
    assert.equal(await p.addReferrerToTag(subject.desc, sig.desc, second.manifests), false, "listed once");
    await p.addReferrerToTag(subject.desc, sbom.desc, second.manifests);
    const third = await f.referrers(subject.desc.digest);
    assert.deepEqual(
      third.manifests.map((d) => d.digest),
      [sig.desc.digest, sbom.desc.digest],
    );
    assert.ok(reg.log.includes(`PUT /v2/app/manifests/sha256-${subject.desc.digest.slice(7)}`));
  });
});

describe("upload Range", () => {
  it("reads 0-<last> as last + 1 bytes, 0-0 as none", () => {
    assert.equal(parseUploadRange("0-4095"), 4096);
    assert.equal(parseUploadRange("bytes=0-99"), 100);
    assert.equal(parseUploadRange("0-0"), 0);
    assert.equal(parseUploadRange(undefined), undefined);
    assert.equal(parseUploadRange("5-9"), undefined);
    assert.equal(parseUploadRange("0-x"), undefined);
  });
});
