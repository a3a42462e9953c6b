/**
 * `dist push` against the real registry (plain, basic, TLS, token, and a second
 * empty one), with skopeo as the oracle (`inspect --raw` of what dist pushed,
 * `copy` of it to an OCI layout) and the registry's own log showing the mounts
 * and the blobs skipped. Also the pusher's chunked upload and its recovery from
 * a cut PATCH, which distribution 2.8 answers by dropping the session.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import type { Descriptor } from "../../src/descriptor.ts";
import { digestOf } from "../../src/digest.ts";
import { createResolver } from "../../src/remotes/docker/index.ts";
import { must } from "./fixtures/exec.ts";
import { lineCount, loggedRequests } from "./fixtures/registry.ts";
import { assertOneLineError } from "./fixtures/store.ts";
import { type ImageInfo, type Registry, type Testbed, testbed } from "./harness.ts";

let tb: Testbed;
let second: Registry;
before(async () => {
  tb = await testbed();
  second = await tb.registry({ name: "second" });
});
after(() => tb?.stop());

const img = (ref: string): ImageInfo => {
  const i = tb.images[ref];
  assert.ok(i, `the test bed has no image ${ref}`);
  return i;
};

const repo = (what: string) => `scratch/push-${what}-${process.pid}`;

async function dist(args: string[], opts: Parameters<Testbed["dist"]>[1] = {}) {
  const r = await tb.dist(args, opts);
  assert.equal(r.code, 0, `dist ${args.join(" ")} failed (exit ${r.code}):\n${r.stderr}\n${r.stdout}`);
  return r;
}

/** The manifest bytes a registry serves for a reference, as skopeo reads them. */
async function rawManifest(ref: string, args: string[] = ["--tls-verify=false"]): Promise<Buffer> {
  return Buffer.from(await must("skopeo", ["inspect", "--raw", ...args, `docker://${ref}`]), "utf8");
}

/** The final state of each object in plain progress output: key → state. */
function finalStates(stdout: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of stdout.split("\n")) {
    const m = /^((?:layer|config|manifest|index)-sha256:[0-9a-f]{64}): (\S+)/.exec(line);
    if (m) out.set(m[1], m[2]);
  }
  return out;
}

/** The registry log's requests since `from` lines: "METHOD URI STATUS". */
function requests(log: string, from = 0): string[] {
  return loggedRequests(log, from).map((q) => `${q.method} ${q.uri} ${q.status}`);
}

describe("dist push", () => {
  it("mounts what fetch brought from the same registry, skips what is there, and skopeo reads the result", async () => {
    const info = img("tiny/busybox:oci");
    const root = tb.newRoot();
    await dist(["fetch", "--plain-http", `${tb.plain}/${info.ref}`], { root });
    const dest = `${tb.plain}/${repo("mount")}:1`;
    const mark = lineCount(tb.logs.plain);
    const r = await dist(["push", "--plain-http", dest, `${tb.plain}/${info.ref}`], { root });
    assert.match(r.stdout, new RegExp(`${dest}: digest: ${info.digest} size: ${info.size}\\n$`));
    const states = finalStates(r.stdout);
    for (const l of info.layers ?? []) assert.equal(states.get(`layer-${l.digest}`), "mounted");
    assert.equal(states.get(`config-${info.config?.digest}`), "mounted");
    assert.equal(states.get(`manifest-${info.digest}`), "done");
    const log = requests(tb.logs.plain, mark);
    for (const l of info.layers ?? []) {
      assert.ok(
        log.some(
          (q) =>
            q.startsWith("POST ") &&
            q.includes("from=tiny%2Fbusybox") &&
            q.includes(`mount=${encodeURIComponent(l.digest)}`) &&
            q.endsWith(" 201"),
        ),
        `no mount of ${l.digest} in the registry log:\n${log.join("\n")}`,
      );
    }
    assert.ok(!log.some((q) => q.startsWith("PATCH")), "nothing uploaded");
    assert.deepEqual(await rawManifest(dest), await rawManifest(`${tb.plain}/${info.ref}`));

    // again: everything is there (HEAD 200), nothing is sent
    const mark2 = lineCount(tb.logs.plain);
    const again = await dist(["push", "--plain-http", dest, `${tb.plain}/${info.ref}`], { root });
    assert.ok(
      [...finalStates(again.stdout).values()].every((s) => s === "exists"),
      again.stdout,
    );
    const log2 = requests(tb.logs.plain, mark2);
    assert.ok(
      log2.filter((q) => q.startsWith("HEAD")).every((q) => q.endsWith(" 200")),
      log2.join("\n"),
    );
    assert.ok(!log2.some((q) => q.startsWith("POST") || q.startsWith("PUT") || q.startsWith("PATCH")), log2.join("\n"));
  });

  it("uploads to another registry (a multi-platform image whole, digest kept), and skopeo copies it back", async () => {
    const info = img("multi/busybox:oci");
    const root = tb.newRoot();
    await dist(["fetch", "--plain-http", "--all-platforms", `${tb.plain}/${info.ref}`], { root });
    const dest = `${second.addr}/${repo("multi")}:all`;
    const r = await dist(["push", "--plain-http", dest, `${tb.plain}/${info.ref}`], { root });
    assert.match(r.stdout, new RegExp(`digest: ${info.digest} `));
    const states = [...finalStates(r.stdout).values()];
    assert.ok(
      states.every((s) => s === "done"),
      r.stdout,
    );
    assert.deepEqual(await rawManifest(dest), await rawManifest(`${tb.plain}/${info.ref}`));
    const layout = tb.tempDir("skopeo-back");
    await tb.skopeoCopy(`docker://${dest}`, `oci:${layout}:t`, ["--all", "--preserve-digests"]);
    const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
    assert.equal(index.manifests[0].digest, info.digest);
  });

  it("pushes what is present: a narrowed index, or one platform's manifest alone", async () => {
    const info = img("multi/busybox:oci");
    const arm = info.manifests?.find((m) => m.platform?.architecture === "arm64");
    assert.ok(arm);
    const root = tb.newRoot();
    await dist(["fetch", "--plain-http", "--platform", "linux/arm64", `${tb.plain}/${info.ref}`], { root });
    const local = `${tb.plain}/${info.ref}`;
    const narrowed = await dist(["push", "--plain-http", `${second.addr}/${repo("present")}:some`, local], { root });
    assert.match(
      narrowed.stderr,
      /sending a new index sha256:[0-9a-f]{64} of sha256:[0-9a-f]{64}'s manifests without \d+ of them/,
    );
    const index = JSON.parse((await rawManifest(`${second.addr}/${repo("present")}:some`)).toString());
    assert.deepEqual(
      index.manifests.map((m: Descriptor) => m.digest),
      [arm.digest],
    );
    const one = await dist(
      ["push", "--plain-http", "--platform", "linux/arm64", `${second.addr}/${repo("present")}:arm`, local],
      { root },
    );
    assert.match(one.stdout, new RegExp(`digest: ${arm.digest} size: ${arm.size}`));
    const missing = await tb.dist(
      ["push", "--plain-http", "--all-platforms", `${second.addr}/${repo("present")}:all`, local],
      { root },
    );
    assert.equal(missing.code, 1);
    assertOneLineError(missing, /is not in the content store \(fetch the image again\)/);
    const unknown = await tb.dist(["push", "--plain-http", `${second.addr}/${repo("present")}:x`, "no/such/image:1"], {
      root,
    });
    assertOneLineError(unknown, /image docker\.io\/no\/such\/image:1 not found/);
  });

  it("authenticates: basic, bearer tokens with push and mount scopes, docker's config, TLS", async () => {
    const info = img("tiny/busybox:docker");
    const root = tb.newRoot();
    const local = `${tb.plain}/${info.ref}`;
    await dist(["fetch", "--plain-http", local], { root });
    const creds = `${tb.user}:${tb.password}`;
    await dist(["push", "--plain-http", "-u", creds, `${tb.basic}/${repo("basic")}:1`, local], { root });
    assert.deepEqual(
      await rawManifest(`${tb.basic}/${repo("basic")}:1`, ["--tls-verify=false", "--creds", creds]),
      await rawManifest(local),
    );

    // token: anonymous is refused in one line naming the repository and the action
    const anon = await tb.dist(["push", "--plain-http", `${tb.token}/${repo("token")}:1`, local], { root });
    assert.equal(anon.code, 1);
    assertOneLineError(
      anon,
      new RegExp(`${tb.token}/${repo("token")}:1: .*(mounting|starting upload of|checking).*authentication required`),
    );
    // docker's config.json supplies the user
    const cfg = tb.tempDir("docker-config");
    writeFileSync(
      join(cfg, "config.json"),
      JSON.stringify({ auths: { [tb.token]: { auth: Buffer.from(creds).toString("base64") } } }),
    );
    const before = tb.tokenRequests.length;
    await dist(["push", "--plain-http", `${tb.token}/${repo("token")}:1`, local], {
      root,
      env: { DOCKER_CONFIG: cfg },
    });
    const scopes = tb.tokenRequests
      .slice(before)
      .map((q) => q.form?.scope ?? new URL(q.url, "http://x").searchParams.getAll("scope").join(" "));
    assert.ok(
      scopes.some((s) => s.includes(`repository:${repo("token")}:pull,push`)),
      scopes.join("\n"),
    );
    // the blobs came from tiny/busybox on the plain registry: another host, so no mount scope here
    assert.ok(!scopes.some((s) => s.includes("repository:tiny/busybox:pull")), scopes.join("\n"));

    // a mount within the token registry asks pull on the source too
    const fromToken = tb.newRoot();
    await dist(["fetch", "--plain-http", `${tb.token}/${info.ref}`], { root: fromToken });
    const mark = tb.tokenRequests.length;
    const m = await dist(
      ["push", "--plain-http", "-u", creds, `${tb.token}/${repo("token-mount")}:1`, `${tb.token}/${info.ref}`],
      {
        root: fromToken,
      },
    );
    assert.ok([...finalStates(m.stdout).values()].includes("mounted"), m.stdout);
    const s2 = tb.tokenRequests.slice(mark).map((q) => q.form?.scope ?? "");
    assert.ok(
      s2.some(
        (s) => s.includes("repository:tiny/busybox:pull") && s.includes(`repository:${repo("token-mount")}:pull,push`),
      ),
      s2.join("\n"),
    );

    await dist(["push", "--tlscacert", tb.caFile, `${tb.tls}/${repo("tls")}:1`, local], { root });
    assert.deepEqual(
      await rawManifest(`${tb.tls}/${repo("tls")}:1`, ["--cert-dir", tb.caDir]),
      await rawManifest(local),
    );
  });
});

describe("the pusher against distribution 2.8", () => {
  const resolver = () =>
    createResolver({ plainHttp: true, backoffBaseMs: 5, dockerConfigPath: "/nonexistent/config.json", proxy: {} });

  it("sends a large blob in PATCH chunks that the registry accepts", async () => {
    const bytes = randomBytes(5 << 20);
    const desc: Descriptor = {
      mediaType: "application/vnd.oci.image.layer.v1.tar",
      digest: digestOf(bytes),
      size: bytes.length,
    };
    const r = resolver();
    try {
      const ref = `${tb.plain}/${repo("chunks")}:x`;
      const p = await r.pusher(ref);
      const mark = lineCount(tb.logs.plain);
      const status = await p.pushBlob(desc, async (o) => Readable.from([bytes.subarray(o)]), { chunkSize: 2 << 20 });
      assert.equal(status, "pushed");
      const patches = requests(tb.logs.plain, mark).filter((q) => q.startsWith("PATCH"));
      assert.equal(patches.length, 3, patches.join("\n"));
      const f = await r.fetcher(ref);
      const back: Buffer[] = [];
      for await (const c of await f.fetch(desc)) back.push(c as Buffer);
      assert.ok(Buffer.concat(back).equals(bytes));
    } finally {
      await r.close();
    }
  });

  it("recovers from a PATCH cut mid-way: the registry drops the session, the upload starts over", async () => {
    const bytes = randomBytes(6 << 20);
    const desc: Descriptor = {
      mediaType: "application/vnd.oci.image.layer.v1.tar",
      digest: digestOf(bytes),
      size: bytes.length,
    };
    const cutter = await tb.proxy(tb.plain, "cut-upload", { cutAfter: 3 << 20 });
    const warnings: string[] = [];
    const r = createResolver({
      plainHttp: true,
      backoffBaseMs: 5,
      dockerConfigPath: "/nonexistent/config.json",
      proxy: {},
      onWarning: (w) => warnings.push(w),
    });
    try {
      const opens: number[] = [];
      const status = await (await r.pusher(`${cutter}/${repo("cut")}:x`)).pushBlob(desc, async (o) => {
        opens.push(o);
        return Readable.from([bytes.subarray(o, o + (1 << 20)), bytes.subarray(o + (1 << 20))]);
      });
      assert.equal(status, "pushed");
      assert.deepEqual(opens, [0, 0]);
      assert.match(
        warnings.join("\n"),
        /the chunk from byte \d+ failed .*the registry dropped the upload, starting over/,
      );
      const log = requests(tb.logs.plain).filter((q) => q.includes(repo("cut")));
      assert.ok(
        log.some((q) => /^GET \/v2\/.*\/blobs\/uploads\/.* (400|404)$/.test(q)),
        log.join("\n"),
      );
      const f = await r.fetcher(`${tb.plain}/${repo("cut")}:x`);
      const back: Buffer[] = [];
      for await (const c of await f.fetch(desc)) back.push(c as Buffer);
      assert.ok(Buffer.concat(back).equals(bytes));
    } finally {
      await r.close();
    }
  });
});
