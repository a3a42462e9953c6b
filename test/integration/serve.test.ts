/**
 * `dist serve` against real clients: skopeo, podman, ctr (also as a hosts.toml
 * mirror with ?ns=), dist itself and the CNCF registry in proxy mode, each
 * pulling what the store holds; digests and unpacked trees equal those of the
 * original registry. Plus the protocol's edges over raw HTTP.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { request } from "node:http";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { must } from "./fixtures/exec.ts";
import { startRegistry } from "./fixtures/registry.ts";
import { fetchFrom, layoutBlobs, type ServeProcess, startServe } from "./fixtures/serve.ts";
import { type Testbed, testbed } from "./harness.ts";

let tb: Testbed;
let root: string;
let srv: ServeProcess;

const sha256 = (b: Buffer | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

const http = (path: string, init: RequestInit = {}, base = srv.url) => fetchFrom(base, path, init);

/** A GET with the path sent as written (fetch would resolve dot segments first). */
function raw(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(srv.url);
    const req = request({ host: u.hostname, port: u.port, path, headers }, (res) => {
      let body = "";
      res.on("data", (b: Buffer) => {
        body += b.toString();
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

before(async () => {
  tb = await testbed();
  root = tb.newRoot();
  for (const ref of ["tiny/busybox:oci", "tiny/busybox:docker", "multi/busybox:oci", "edge/whiteouts:oci"]) {
    const r = await tb.dist(["fetch", "--plain-http", "--all-platforms", `${tb.plain}/${ref}`], { root });
    assert.equal(r.code, 0, r.stderr);
  }
  srv = await startServe({ root });
});

after(async () => {
  await srv?.stop();
  await tb?.stop();
});

describe("dist serve: the API", () => {
  test("/v2/ answers with the API version header", async () => {
    const r = await http("/v2/");
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("docker-distribution-api-version"), "registry/2.0");
  });

  test("manifests by tag and digest, HEAD and GET, with the stored media type and digest", async () => {
    const info = tb.images["tiny/busybox:oci"];
    const head = await http("/v2/tiny/busybox/manifests/oci", { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("docker-content-digest"), info.digest);
    assert.equal(head.headers.get("content-type"), info.mediaType);
    const get = await http(`/v2/any/repo/manifests/${info.digest}`);
    assert.equal(get.status, 200);
    assert.equal(sha256(get.body), info.digest);
    const docker = await http("/v2/tiny/busybox/manifests/docker");
    assert.equal(docker.headers.get("content-type"), "application/vnd.docker.distribution.manifest.v2+json");
  });

  test("an index goes to a client that accepts no index as its linux/amd64 manifest", async () => {
    const idx = await http("/v2/multi/busybox/manifests/oci");
    assert.equal(idx.headers.get("content-type"), "application/vnd.oci.image.index.v1+json");
    const m = await http("/v2/multi/busybox/manifests/oci", {
      headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
    });
    assert.equal(m.status, 200);
    assert.equal(m.headers.get("content-type"), "application/vnd.oci.image.manifest.v1+json");
    const amd64 = idx
      .json()
      .manifests.find((d: { platform?: { architecture: string } }) => d.platform?.architecture === "amd64");
    assert.equal(m.headers.get("docker-content-digest"), amd64.digest);
  });

  test("blobs stream whole or by one Range, whatever the repository in the path", async () => {
    const manifest = (await http("/v2/tiny/busybox/manifests/oci")).json();
    const layer = manifest.layers[0];
    const whole = await http(`/v2/some/other/blobs/${layer.digest}`);
    assert.equal(whole.status, 200);
    assert.equal(sha256(whole.body), layer.digest);
    assert.equal(whole.headers.get("docker-content-digest"), layer.digest);
    const part = await http(`/v2/tiny/busybox/blobs/${layer.digest}`, { headers: { range: "bytes=10-19" } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get("content-range"), `bytes 10-19/${layer.size}`);
    assert.deepEqual(part.body, whole.body.subarray(10, 20));
    const tail = await http(`/v2/tiny/busybox/blobs/${layer.digest}`, { headers: { range: "bytes=-5" } });
    assert.deepEqual(tail.body, whole.body.subarray(-5));
    const head = await http(`/v2/tiny/busybox/blobs/${layer.digest}`, { method: "HEAD" });
    assert.equal(head.headers.get("content-length"), String(layer.size));
  });

  test("tags/list with n and last, and the catalog", async () => {
    const all = (await http("/v2/tiny/busybox/tags/list")).json();
    assert.deepEqual(all, { name: "tiny/busybox", tags: ["docker", "oci"] });
    const page = await http("/v2/tiny/busybox/tags/list?n=1");
    assert.deepEqual(page.json().tags, ["docker"]);
    assert.match(page.headers.get("link") ?? "", /last=docker.*rel="next"/);
    assert.deepEqual((await http("/v2/tiny/busybox/tags/list?n=1&last=docker")).json().tags, ["oci"]);
    const cat = (await http("/v2/_catalog")).json();
    assert.deepEqual(cat.repositories, ["edge/whiteouts", "multi/busybox", "tiny/busybox"]);
    assert.equal((await http("/v2/nothing/here/tags/list")).status, 404);
  });

  test("mirror requests carry ?ns=: a tag of another registry is a 404 so the client falls back", async () => {
    const ok = await http(`/v2/tiny/busybox/manifests/oci?ns=${tb.plain}`);
    assert.equal(ok.status, 200);
    const other = await http("/v2/tiny/busybox/manifests/oci?ns=docker.io");
    assert.equal(other.status, 404);
    assert.equal(other.json().errors[0].code, "MANIFEST_UNKNOWN");
  });

  test("a blob no image of the namespace references is not served", async () => {
    const data = Buffer.from("a blob of its own\n");
    const r = await tb.dist(["ingest", "stray"], { root, input: data });
    assert.equal(r.code, 0, r.stderr);
    const res = await http(`/v2/tiny/busybox/blobs/${sha256(data)}`);
    assert.equal(res.status, 404);
    assert.equal(res.json().errors[0].code, "BLOB_UNKNOWN");
  });

  test("bad input: clear protocol errors, nothing outside the store", async () => {
    const cases: [string, number, string][] = [
      ["/v2/../../etc/passwd/blobs/sha256:00", 400, "NAME_INVALID"],
      ["/v2/tiny/%2e%2e/blobs/sha256:00", 400, "NAME_INVALID"],
      ["/v2/tiny%2fbusybox/manifests/oci", 400, "NAME_INVALID"],
      ["/v2/tiny/busybox/blobs/sha256:..%2f..%2fetc", 400, "NAME_INVALID"],
      ["/v2/tiny/busybox/blobs/sha256:%2e%2e", 400, "DIGEST_INVALID"],
      [`/v2/tiny/busybox/blobs/md5:${"0".repeat(32)}`, 400, "DIGEST_INVALID"],
      ["/v2/tiny/busybox/blobs/sha256:ABC", 400, "DIGEST_INVALID"],
      [`/v2/tiny/busybox/blobs/sha512:${"0".repeat(128)}`, 404, "BLOB_UNKNOWN"],
      ["/v2/Tiny/busybox/tags/list", 400, "NAME_INVALID"],
      ["/v2/tiny/busybox/manifests/%00", 400, "NAME_INVALID"],
      ["/etc/passwd", 404, "NAME_UNKNOWN"],
    ];
    for (const [path, status, code] of cases) {
      const r = await raw(path);
      assert.equal(r.status, status, path);
      assert.equal(JSON.parse(r.body).errors[0].code, code, path);
    }
    const layer = (await http("/v2/tiny/busybox/manifests/oci")).json().layers[0];
    for (const range of ["bytes=0-1,5-6", `bytes=${layer.size}-`, "items=0-1", "bytes=5-2"]) {
      const r = await http(`/v2/tiny/busybox/blobs/${layer.digest}`, { headers: { range } });
      assert.equal(r.status, 416, range);
      assert.equal(r.json().errors[0].code, "RANGE_INVALID");
      assert.equal(r.headers.get("content-range"), `bytes */${layer.size}`);
    }
    const push = await http("/v2/x/blobs/uploads/", { method: "POST" });
    assert.equal(push.status, 405);
    assert.match(push.json().errors[0].message, /--allow-push/);
  });
});

describe("dist serve: real clients pull what the original registry serves", () => {
  test("skopeo copy: the same blobs as from the registry", async () => {
    for (const ref of ["tiny/busybox:oci", "multi/busybox:oci"]) {
      const fromServe = await tb.skopeoPull(`${srv.addr}/${ref}`, ["--all", "--preserve-digests"]);
      const fromRegistry = await tb.skopeoPull(`${tb.plain}/${ref}`, ["--all", "--preserve-digests"]);
      assert.deepEqual(layoutBlobs(fromServe), layoutBlobs(fromRegistry), ref);
    }
  });

  test("podman pull: the same image digest", async () => {
    const dir = tb.tempDir("podman");
    const base = ["--root", join(dir, "root"), "--runroot", join(dir, "run"), "--storage-driver", "vfs"];
    const pull = async (addr: string) => {
      await must("podman", [...base, "pull", "-q", "--tls-verify=false", `${addr}/tiny/busybox:oci`], {
        timeoutMs: 120_000,
      });
      return (
        await must("podman", [...base, "image", "inspect", "--format", "{{.Digest}}", `${addr}/tiny/busybox:oci`])
      ).trim();
    };
    assert.equal(await pull(srv.addr), tb.images["tiny/busybox:oci"].digest);
    assert.equal(await pull(tb.plain), tb.images["tiny/busybox:oci"].digest);
  });

  test("dist pull from dist serve: the same ChainID as from the registry", async () => {
    const chain = async (addr: string) => {
      const r = await tb.dist(
        ["pull", "--plain-http", "--snapshotter", "native", "--print-chainid", `${addr}/edge/whiteouts:oci`],
        {
          root: tb.newRoot(),
        },
      );
      assert.equal(r.code, 0, r.stderr);
      return /image chain ID: (\S+)/.exec(r.stdout)?.[1];
    };
    const a = await chain(srv.addr);
    assert.ok(a);
    assert.equal(a, await chain(tb.plain));
  });

  test("the CNCF registry in proxy mode with dist serve as its upstream", async () => {
    const dir = tb.tempDir("proxy");
    const proxy = await startRegistry({
      name: "proxy",
      storage: join(dir, "storage"),
      dir,
      proxy: `http://${srv.addr}`,
    });
    try {
      const fromProxy = await tb.skopeoPull(`${proxy.addr}/tiny/busybox:oci`, ["--preserve-digests"]);
      const fromRegistry = await tb.skopeoPull(`${tb.plain}/tiny/busybox:oci`, ["--preserve-digests"]);
      assert.deepEqual(layoutBlobs(fromProxy), layoutBlobs(fromRegistry));
    } finally {
      await proxy.stop();
    }
  });
});
