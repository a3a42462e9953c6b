/**
 * `dist fetch` and `dist fetch-object` against the real registry (issue 3): what fetch
 * stores is compared blob by blob with what `skopeo copy` writes to an OCI layout;
 * the auth flavours, TLS, hosts.toml mirrors, and bad input from a corrupting proxy.
 */
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  assertOneLineError,
  attestationBlobs,
  configAndLayers,
  expectedBlobs,
  layoutBlob,
  sha256,
  storedDigests,
  verifiedStore,
} from "./fixtures/store.ts";
import { type ImageInfo, type Testbed, testbed } from "./harness.ts";

let tb: Testbed;
before(async () => {
  tb = await testbed();
});
after(() => tb?.stop());

const img = (ref: string): ImageInfo => {
  const i = tb.images[ref];
  assert.ok(i, `the test bed has no image ${ref}`);
  return i;
};

/** Fetches into a fresh root and checks the exit status; returns the root. */
async function fetchOk(ref: string, args: readonly string[] = ["--plain-http"], input?: string): Promise<string> {
  const root = tb.newRoot();
  const r = await tb.dist(["fetch", ...args, ref], { root, input });
  assert.equal(r.code, 0, `dist fetch ${ref} failed (exit ${r.code}):\n${r.stderr}`);
  return root;
}

/**
 * The fetch stored exactly `expected` (plus, optionally, `optional`), every blob hashes to
 * its digest, and every config and layer is byte-identical to skopeo's copy.
 */
async function compareWithSkopeo(
  root: string,
  image: ImageInfo,
  which: "host" | "all" | string,
  skopeoArgs: string[],
  optional: string[] = [],
) {
  // Docker images go to a `dir:` copy (an OCI layout would hold skopeo's OCI conversion);
  // --preserve-digests keeps skopeo from compressing an uncompressed layer
  const docker = image.mediaType.includes("docker");
  const skopeo = docker
    ? tb.skopeoPull(`${tb.plain}/${image.ref}`, skopeoArgs, "dir")
    : tb.skopeoPull(`${tb.plain}/${image.ref}`, [...skopeoArgs, "--preserve-digests"]);
  skopeo.catch(() => {}); // awaited below
  const stored = await verifiedStore(tb, root);
  const expected = expectedBlobs(image, which);
  const extra = [...stored.keys()].filter((d) => !expected.includes(d) && !optional.includes(d));
  const missing = expected.filter((d) => !stored.has(d));
  assert.deepEqual(missing, [], `${image.ref}: blobs missing from the store`);
  assert.deepEqual(extra, [], `${image.ref}: unexpected blobs in the store`);

  const layout = await skopeo;
  const mustMatch = configAndLayers(image, which);
  for (const [digest, bytes] of stored) {
    const theirs = layoutBlob(layout, digest);
    if (mustMatch.includes(digest)) assert.ok(theirs, `skopeo's layout has no ${digest}`);
    if (theirs) assert.ok(theirs.equals(bytes), `${digest}: dist's bytes differ from skopeo's`);
  }
}

describe("dist fetch stores what skopeo copies", () => {
  const single: [string, string][] = [
    ["tiny/busybox:oci", "OCI manifest, gzip layer"],
    ["tiny/busybox:docker", "Docker schema 2 manifest"],
    ["tiny/busybox:zstd", "zstd layer"],
    ["tiny/busybox:uncompressed", "uncompressed layer"],
    ["edge/whiteouts:oci", "4 layers, one of them empty"],
  ];
  for (const [ref, what] of single) {
    it(`${ref} (${what})`, async () => {
      const root = await fetchOk(`${tb.plain}/${ref}`);
      await compareWithSkopeo(root, img(ref), "host", []);
    });
  }

  it("multi/busybox:oci: the host's platform from the index, nothing else", async () => {
    const root = await fetchOk(`${tb.plain}/multi/busybox:oci`);
    await compareWithSkopeo(root, img("multi/busybox:oci"), "host", []);
  });

  it("multi/busybox:oci --platform linux/arm64 selects linux/arm64/v8", async () => {
    const root = await fetchOk(`${tb.plain}/multi/busybox:oci`, ["--plain-http", "--platform", "linux/arm64"]);
    await compareWithSkopeo(root, img("multi/busybox:oci"), "arm64", ["--override-arch", "arm64"]);
  });

  it("multi/busybox:oci --all-platforms: every platform, the attestation skipped without failing", async () => {
    const image = img("multi/busybox:oci");
    const root = await fetchOk(`${tb.plain}/multi/busybox:oci`, ["--plain-http", "--all-platforms"]);
    // the attestation manifest may be stored or skipped, but its in-toto layer is no image layer
    await compareWithSkopeo(root, image, "all", ["--all"], attestationBlobs(image));
  });

  it("multi/busybox:docker (Docker manifest list)", async () => {
    const root = await fetchOk(`${tb.plain}/multi/busybox:docker`);
    await compareWithSkopeo(root, img("multi/busybox:docker"), "host", []);
  });

  it("a second fetch into the same root finds everything there and succeeds", async () => {
    const ref = `${tb.plain}/tiny/busybox:oci`;
    const root = await fetchOk(ref);
    const before = await storedDigests(tb, root);
    const r = await tb.dist(["fetch", "--plain-http", ref], { root });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await storedDigests(tb, root), before);
  });

  it("prints one progress line per object when stdout is not a TTY", async () => {
    const image = img("edge/whiteouts:oci");
    const root = tb.newRoot();
    const r = await tb.dist(["fetch", "--plain-http", "--max-concurrent-downloads", "1", `${tb.plain}/${image.ref}`], {
      root,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.includes(`manifest-${image.digest}`), `no manifest line in:\n${r.stdout}`);
    assert.ok(r.stdout.includes(`config-${image.config?.digest}`), `no config line in:\n${r.stdout}`);
    for (const l of image.layers ?? [])
      assert.ok(r.stdout.includes(`layer-${l.digest}`), `no line for layer ${l.digest}`);
    assert.match(r.stdout, /elapsed/);
    assert.doesNotMatch(r.stdout, /\x1b\[/, "escape sequences written to a pipe");
  });
});

describe("dist fetch-object", () => {
  for (const ref of ["tiny/busybox:oci", "tiny/busybox:docker", "multi/busybox:oci"]) {
    it(`writes the bytes of ${ref} to stdout`, async () => {
      const r = await tb.dist(["fetch-object", "--plain-http", `${tb.plain}/${ref}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha256(r.stdoutBytes), img(ref).digest);
    });
  }

  it("accepts a media type hint", async () => {
    const image = img("tiny/busybox:oci");
    const r = await tb.dist([
      "fetch-object",
      "--plain-http",
      `${tb.plain}/${image.ref}`,
      "mediatype:application/vnd.oci.image.manifest.v1+json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha256(r.stdoutBytes), image.digest);
  });

  it("fetches a layer blob by digest", async () => {
    const layer = img("tiny/busybox:oci").layers![0];
    const r = await tb.dist([
      "fetch-object",
      "--plain-http",
      `${tb.plain}/tiny/busybox@${layer.digest}`,
      `mediatype:${layer.mediaType}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdoutBytes.length, layer.size);
    assert.equal(sha256(r.stdoutBytes), layer.digest);
  });

  it("fetches any object by digest without a hint, as the seed's pipeline does", async () => {
    const image = img("tiny/busybox:oci");
    for (const d of [image.layers![0].digest, image.config!.digest, image.digest]) {
      const r = await tb.dist(["fetch-object", "--plain-http", `${tb.plain}/tiny/busybox@${d}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha256(r.stdoutBytes), d);
    }
    const missing = `sha256:${"0".repeat(64)}`;
    const r = await tb.dist(["fetch-object", "--plain-http", `${tb.plain}/tiny/busybox@${missing}`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^dist: .*not found\n$/);
  });
});

describe("registry auth and TLS", () => {
  const ref = "tiny/busybox:oci";

  it("basic auth: the right password, on stdin, pulls", async () => {
    const root = await fetchOk(
      `${tb.basic}/${ref}`,
      ["--plain-http", "-u", tb.user, "--password-stdin"],
      `${tb.password}\n`,
    );
    assert.deepEqual(await storedDigests(tb, root), expectedBlobs(img(ref)));
  });

  it("basic auth: --user user:password on the command line pulls, with a warning", async () => {
    const root = tb.newRoot();
    const r = await tb.dist(["fetch", "--plain-http", "--user", `${tb.user}:${tb.password}`, `${tb.basic}/${ref}`], {
      root,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^dist: warning: a password on the command line can be seen by other users/);
    assert.ok(!r.stderr.includes(tb.password), "the warning repeats the password");
    assert.deepEqual(await storedDigests(tb, root), expectedBlobs(img(ref)));
  });

  it("basic auth: a wrong password is one clear line, nothing stored", async () => {
    const root = tb.newRoot();
    const secret = "Not-The-Passw0rd";
    const r = await tb.dist(["fetch", "--plain-http", "-u", tb.user, "--password-stdin", `${tb.basic}/${ref}`], {
      root,
      input: `${secret}\n`,
    });
    const line = assertOneLineError(r, `${tb.basic}/tiny/busybox`);
    assert.ok(!line.includes(secret), "the password is printed");
    assert.deepEqual(await storedDigests(tb, root), []);
  });

  it("basic auth: no credentials gives 401 as one clear line", async () => {
    const root = tb.newRoot();
    const r = await tb.dist(["fetch", "--plain-http", `${tb.basic}/${ref}`], { root });
    assertOneLineError(r, `${tb.basic}/tiny/busybox`, /401|unauthori[sz]ed|authenticat|credential/i);
    assert.deepEqual(await storedDigests(tb, root), []);
  });

  it("basic auth: credentials from docker's config.json (auths, base64 auth)", async () => {
    const dir = tb.tempDir("docker-config");
    const auth = Buffer.from(`${tb.user}:${tb.password}`).toString("base64");
    writeFileSync(join(dir, "config.json"), JSON.stringify({ auths: { [tb.basic]: { auth } } }));
    const root = tb.newRoot();
    const r = await tb.dist(["fetch", "--plain-http", `${tb.basic}/${ref}`], { root, env: { DOCKER_CONFIG: dir } });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await storedDigests(tb, root), expectedBlobs(img(ref)));
  });

  it("token auth: anonymous pull gets a token and pulls", async () => {
    const seen = tb.tokenRequests.length;
    const root = await fetchOk(`${tb.token}/${ref}`);
    assert.deepEqual(await storedDigests(tb, root), expectedBlobs(img(ref)));
    const asked = tb.tokenRequests.slice(seen);
    assert.ok(asked.length > 0, "the token server was never asked");
    assert.ok(
      asked.some(
        (q) =>
          q.url.includes("repository%3Atiny%2Fbusybox%3Apull") ||
          q.url.includes("repository:tiny/busybox:pull") ||
          q.form?.scope?.includes("repository:tiny/busybox:pull"),
      ),
      `no token request for the pull scope: ${JSON.stringify(asked)}`,
    );
  });

  it("token auth: with a user the token server sees the user", async () => {
    const seen = tb.tokenRequests.length;
    await fetchOk(`${tb.token}/${ref}`, ["--plain-http", "-u", `${tb.user}:${tb.password}`]);
    const asked = tb.tokenRequests.slice(seen);
    assert.ok(
      asked.some((q) => q.user === tb.user),
      `no token request as ${tb.user}: ${JSON.stringify(asked)}`,
    );
  });

  it("token auth: a wrong password is one clear line", async () => {
    const root = tb.newRoot();
    const r = await tb.dist(["fetch", "--plain-http", "-u", tb.user, "--password-stdin", `${tb.token}/${ref}`], {
      root,
      input: "wrong",
    });
    assertOneLineError(r, `${tb.token}/tiny/busybox`);
    assert.deepEqual(await storedDigests(tb, root), []);
  });

  it("TLS with --tlscacert", async () => {
    const root = await fetchOk(`${tb.tls}/${ref}`, ["--tlscacert", tb.caFile]);
    await compareWithSkopeo(root, img(ref), "host", []);
  });

  it("TLS with -k (skip verification)", async () => {
    await fetchOk(`${tb.tls}/${ref}`, ["-k"]);
  });

  it("TLS without the CA fails with one clear line", async () => {
    const root = tb.newRoot();
    const r = await tb.dist(["fetch", `${tb.tls}/${ref}`], { root });
    assertOneLineError(r, `${tb.tls}/tiny/busybox`, /certificate|tls|ssl|verify/i);
    assert.deepEqual(await storedDigests(tb, root), []);
  });
});

describe("hosts.toml mirrors", () => {
  it("falls back to the next mirror when the first one is dead", async () => {
    const dead1 = await tb.deadAddr();
    const dead2 = await tb.deadAddr();
    const hosts = tb.tempDir("hosts");
    const name = "registry.invalid";
    mkdirSync(join(hosts, name));
    writeFileSync(
      join(hosts, name, "hosts.toml"),
      [
        `server = "http://${dead2}"`,
        "",
        `[host."http://${dead1}"]`,
        `  capabilities = ["pull", "resolve"]`,
        "",
        `[host."http://${tb.plain}"]`,
        `  capabilities = ["pull", "resolve"]`,
        "",
      ].join("\n"),
    );
    const root = await fetchOk(`${name}/tiny/busybox:oci`, ["--hosts-dir", hosts]);
    await compareWithSkopeo(root, img("tiny/busybox:oci"), "host", []);
  });
});

// independent cases, most of them waiting out dist's retries: run them side by side
describe("bad input: one clear line naming the reference, nothing wrong stored", { concurrency: 4 }, () => {
  const ref = "tiny/busybox:oci";

  /** After a failure, the store holds only verified blobs of the real image, and a retry works. */
  async function storeIsClean(root: string, retry = true) {
    const image = img(ref);
    const stored = await verifiedStore(tb, root);
    for (const d of stored.keys()) assert.ok(image.blobs.includes(d), `a blob not of the image was stored: ${d}`);
    if (!retry) return;
    const r = await tb.dist(["fetch", "--plain-http", `${tb.plain}/${ref}`], { root });
    assert.equal(r.code, 0, `a retry from the good registry failed: ${r.stderr}`);
    assert.deepEqual([...(await verifiedStore(tb, root)).keys()].sort(), expectedBlobs(image));
  }

  it("a flipped byte in a layer names the layer digest", async () => {
    const layer = img(ref).layers![0].digest;
    const proxy = await tb.proxy(tb.plain, "flip", { only: layer });
    const root = tb.newRoot();
    const r = await tb.dist(["fetch", "--plain-http", `${proxy}/${ref}`], { root });
    assertOneLineError(r, `${proxy}/tiny/busybox`, layer);
    assert.ok(!(await storedDigests(tb, root)).includes(layer), "the corrupt layer was stored");
    // an ingest holding the wrong bytes would be resumed from its end by a retry:
    // whatever is left must start over from zero
    const active = await tb.dist(["active", "--output", "json"], { root });
    assert.equal(active.code, 0, active.stderr);
    for (const ingest of JSON.parse(active.stdout) as { ref: string; offset: number }[]) {
      assert.equal(ingest.offset, 0, `ingest ${ingest.ref} kept ${ingest.offset} unverified bytes`);
    }
    await storeIsClean(root);
  });

  it("a flipped byte in the config names the config digest", async () => {
    const config = img(ref).config!.digest;
    const proxy = await tb.proxy(tb.plain, "flip", { only: config });
    const root = tb.newRoot();
    const r = await tb.dist(["fetch", "--plain-http", `${proxy}/${ref}`], { root });
    assertOneLineError(r, `${proxy}/tiny/busybox`, config);
    await storeIsClean(root);
  });

  it("a truncated body", async () => {
    const layer = img(ref).layers![0].digest;
    const proxy = await tb.proxy(tb.plain, "truncate", { only: layer });
    const root = tb.newRoot();
    const r = await tb.dist(["fetch", "--plain-http", `${proxy}/${ref}`], { root, timeoutMs: 120_000 });
    assertOneLineError(r, `${proxy}/tiny/busybox`);
    assert.ok(!(await storedDigests(tb, root)).includes(layer), "the truncated layer was stored");
    await storeIsClean(root);
  });

  it("an oversized manifest is refused before parsing", async () => {
    const proxy = await tb.proxy(tb.plain, "oversize");
    const root = tb.newRoot();
    const r = await tb.dist(["fetch", "--plain-http", `${proxy}/${ref}`], { root });
    assertOneLineError(r, `${proxy}/tiny/busybox`, /size|large|limit|exceed|MiB/i);
    await storeIsClean(root, false);
    assert.deepEqual(await storedDigests(tb, root), []);
  });

  it("a malformed JSON manifest", async () => {
    const proxy = await tb.proxy(tb.plain, "malformed");
    const root = tb.newRoot();
    const r = await tb.dist(["fetch", "--plain-http", `${proxy}/${ref}`], { root });
    assertOneLineError(r, `${proxy}/tiny/busybox`, /json|parse|malformed|invalid/i);
    await storeIsClean(root, false);
    assert.deepEqual(await storedDigests(tb, root), []);
  });

  it("a manifest with invalid digests in it", async () => {
    const proxy = await tb.proxy(tb.plain, "bad-digests");
    const root = tb.newRoot();
    const r = await tb.dist(["fetch", "--plain-http", `${proxy}/${ref}`], { root });
    assertOneLineError(r, `${proxy}/tiny/busybox`, /digest/i);
    await storeIsClean(root, false);
    assert.deepEqual(await storedDigests(tb, root), []);
  });

  it("an index with invalid digests in it", async () => {
    const proxy = await tb.proxy(tb.plain, "bad-digests");
    const root = tb.newRoot();
    const r = await tb.dist(["fetch", "--plain-http", `${proxy}/multi/busybox:oci`], { root });
    assertOneLineError(r, `${proxy}/multi/busybox`, /digest/i);
    assert.deepEqual(await storedDigests(tb, root), []);
  });

  it("an unknown host", async () => {
    const root = tb.newRoot();
    const r = await tb.dist(["fetch", "no-such-host.invalid/tiny/busybox:oci"], { root });
    assertOneLineError(r, "no-such-host.invalid/tiny/busybox");
    assert.deepEqual(await storedDigests(tb, root), []);
  });

  it("connection refused", async () => {
    const dead = await tb.deadAddr();
    const root = tb.newRoot();
    const r = await tb.dist(["fetch", "--plain-http", `${dead}/tiny/busybox:oci`], { root, timeoutMs: 120_000 });
    assertOneLineError(r, `${dead}/tiny/busybox`, /refused|connect|unavailable/i);
    assert.deepEqual(await storedDigests(tb, root), []);
  });

  it("a missing tag", async () => {
    const root = tb.newRoot();
    const r = await tb.dist(["fetch", "--plain-http", `${tb.plain}/tiny/busybox:no-such-tag`], { root });
    assertOneLineError(r, `${tb.plain}/tiny/busybox`, /not found|unknown|no-such-tag/i);
    assert.deepEqual(await storedDigests(tb, root), []);
  });

  it("a missing repository", async () => {
    const root = tb.newRoot();
    const r = await tb.dist(["fetch", "--plain-http", `${tb.plain}/no/such-repo:latest`], { root });
    assertOneLineError(r, `${tb.plain}/no/such-repo`, /not found|unknown/i);
  });
});
