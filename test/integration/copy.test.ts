/**
 * `dist copy` between two real registries and within one: digests kept (skopeo
 * `inspect --raw` on both ends), platforms chosen, mounts within a registry (its
 * log), token scopes, and OCI 1.1 referrers through the tag schema, which is all
 * distribution 2.8 has (the referrers API path is covered by test/remotes/push.test.ts).
 */
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import type { Descriptor } from "../../src/descriptor.ts";
import { digestOf } from "../../src/digest.ts";
import { createResolver } from "../../src/remotes/docker/index.ts";
import { must } from "./fixtures/exec.ts";
import { loggedRequests } from "./fixtures/registry.ts";
import { type ImageInfo, type Registry, type Testbed, testbed } from "./harness.ts";

let tb: Testbed;
let second: Registry;
before(async () => {
  tb = await testbed();
  second = await tb.registry({ name: "copy-dest" });
});
after(() => tb?.stop());

const img = (ref: string): ImageInfo => {
  const i = tb.images[ref];
  assert.ok(i, `the test bed has no image ${ref}`);
  return i;
};
const repo = (what: string) => `scratch/copy-${what}-${process.pid}`;

async function dist(args: string[]) {
  const r = await tb.dist(args);
  assert.equal(r.code, 0, `dist ${args.join(" ")} failed (exit ${r.code}):\n${r.stderr}\n${r.stdout}`);
  return r;
}

async function raw(ref: string): Promise<string> {
  return must("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${ref}`]);
}

function requests(log: string): string[] {
  return loggedRequests(log).map((q) => `${q.method} ${q.uri} ${q.status}`);
}

describe("dist copy", () => {
  it("copies an index whole between registries, byte for byte, and skopeo reads it", async () => {
    const info = img("multi/busybox:oci");
    const dst = `${second.addr}/${repo("all")}:1`;
    const r = await dist(["copy", "--plain-http", "--all-platforms", `${tb.plain}/${info.ref}`, dst]);
    assert.match(r.stdout, new RegExp(`${dst}: digest: ${info.digest} size: ${info.size}\\n$`));
    assert.equal(await raw(dst), await raw(`${tb.plain}/${info.ref}`));
    for (const m of info.manifests ?? []) {
      assert.equal(
        await raw(`${second.addr}/${repo("all")}@${m.digest}`),
        await raw(`${tb.plain}/${info.repo}@${m.digest}`),
      );
    }
    const layout = tb.tempDir("copy-back");
    await tb.skopeoCopy(`docker://${dst}`, `oci:${layout}:t`, ["--all", "--preserve-digests"]);
  });

  it("copies one platform's manifest alone, a Docker image as it is, and skips what the destination has", async () => {
    const info = img("multi/busybox:oci");
    const arm = info.manifests?.find((m) => m.platform?.architecture === "arm64");
    assert.ok(arm);
    const dst = `${second.addr}/${repo("arm")}:1`;
    const r = await dist(["copy", "--plain-http", "--platform", "linux/arm64", `${tb.plain}/${info.ref}`, dst]);
    assert.match(r.stdout, new RegExp(`digest: ${arm.digest} size: ${arm.size}`));
    assert.match(r.stderr, /sending the platform manifest sha256:[0-9a-f]{64} alone/);
    const docker = img("tiny/busybox:docker");
    const ddst = `${second.addr}/${repo("docker")}:1`;
    await dist(["copy", "--plain-http", `${tb.plain}/${docker.ref}`, ddst]);
    assert.equal(await raw(ddst), await raw(`${tb.plain}/${docker.ref}`));
    const again = await dist(["copy", "--plain-http", `${tb.plain}/${docker.ref}`, ddst]);
    assert.doesNotMatch(again.stdout, /: (done|mounted)/);
    assert.match(again.stdout, /layer-sha256:[0-9a-f]{64}: exists/);
  });

  it("mounts within one registry, asking the token server for pull on the source", async () => {
    const info = img("tiny/busybox:oci");
    const mark = tb.tokenRequests.length;
    const dst = `${tb.token}/${repo("mount")}:1`;
    const r = await dist(["copy", "--plain-http", "-u", `${tb.user}:${tb.password}`, `${tb.token}/${info.ref}`, dst]);
    assert.match(r.stdout, /layer-sha256:[0-9a-f]{64}: mounted/);
    const scopes = tb.tokenRequests.slice(mark).map((q) => q.form?.scope ?? "");
    assert.ok(
      scopes.some(
        (s) => s.includes("repository:tiny/busybox:pull") && s.includes(`repository:${repo("mount")}:pull,push`),
      ),
      scopes.join("\n"),
    );
    const log = requests(tb.logs.token).filter((q) => q.includes(repo("mount")));
    assert.ok(
      log.some((q) => q.startsWith("POST") && q.includes("from=tiny%2Fbusybox") && q.endsWith(" 201")),
      log.join("\n"),
    );
    assert.ok(!log.some((q) => q.startsWith("PATCH")), log.join("\n"));
  });

  it("copies referrers found through the tag schema, and lists them in the destination's", async () => {
    const info = img("tiny/busybox:oci");
    const srcRepo = repo("signed");
    // a signed image on the source: the image, a signature artifact naming it as its subject,
    // listed in the sha256-<hex> tag (distribution 2.8 has no referrers API)
    await dist(["copy", "--plain-http", `${tb.plain}/${info.ref}`, `${tb.plain}/${srcRepo}:1`]);
    const r = createResolver({ plainHttp: true, dockerConfigPath: "/nonexistent/config.json", proxy: {} });
    const subject: Descriptor = {
      mediaType: info.mediaType,
      digest: info.digest as Descriptor["digest"],
      size: info.size,
    };
    const payload = Buffer.from('{"critical":{"image":{"docker-manifest-digest":"x"}}}');
    const layer: Descriptor = {
      mediaType: "application/vnd.dev.cosign.simplesigning.v1+json",
      digest: digestOf(payload),
      size: payload.length,
    };
    const empty: Descriptor = { mediaType: "application/vnd.oci.empty.v1+json", digest: digestOf("{}"), size: 2 };
    const sigBytes = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        artifactType: "application/vnd.dev.cosign.artifact.sig.v1+json",
        config: empty,
        layers: [layer],
        subject,
      }),
    );
    const sig: Descriptor = {
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: digestOf(sigBytes),
      size: sigBytes.length,
    };
    try {
      const p = await r.pusher(`${tb.plain}/${srcRepo}:1`);
      await p.pushBlob(empty, async () => Readable.from([Buffer.from("{}")]));
      await p.pushBlob(layer, async () => Readable.from([payload]));
      await p.pushManifest(sig, sigBytes);
      const f = await r.fetcher(`${tb.plain}/${srcRepo}:1`);
      const listed = await f.referrers(subject.digest);
      assert.equal(listed.api, false, "distribution 2.8 has no referrers API");
      await p.addReferrerToTag(
        subject,
        { ...sig, artifactType: "application/vnd.dev.cosign.artifact.sig.v1+json" },
        listed.manifests,
      );
    } finally {
      await r.close();
    }

    const dst = `${second.addr}/${repo("signed")}:1`;
    const out = await dist(["copy", "--plain-http", "--referrers", `${tb.plain}/${srcRepo}:1`, dst]);
    assert.match(out.stdout, /referrers copied: 1\n$/);
    assert.equal(await raw(`${second.addr}/${repo("signed")}@${sig.digest}`), sigBytes.toString());
    const tag = JSON.parse(await raw(`${second.addr}/${repo("signed")}:sha256-${subject.digest.slice(7)}`));
    assert.deepEqual(
      tag.manifests.map((d: Descriptor) => [d.digest, d.artifactType]),
      [[sig.digest, "application/vnd.dev.cosign.artifact.sig.v1+json"]],
    );
    // once more: nothing new, and the tag lists it once
    await dist(["copy", "--plain-http", "--referrers", `${tb.plain}/${srcRepo}:1`, dst]);
    const again = JSON.parse(await raw(`${second.addr}/${repo("signed")}:sha256-${subject.digest.slice(7)}`));
    assert.equal(again.manifests.length, 1);
  });

  it("fails in one line naming both ends", async () => {
    const r = await tb.dist(["copy", "--plain-http", `${tb.plain}/no/such:1`, `${second.addr}/${repo("none")}:1`]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`^dist: ${tb.plain}/no/such:1 → ${second.addr}/${repo("none")}:1: .*(not found|unknown)`),
    );
  });
});
