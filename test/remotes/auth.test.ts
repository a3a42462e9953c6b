// Token caching and credential sources of the Authorizer, against a scripted token server.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Authorizer, splitUser } from "../../src/remotes/docker/auth.ts";
import type { RegistryHost } from "../../src/remotes/docker/hosts.ts";
import { Agent } from "../../src/remotes/docker/http.ts";
import { type Fake, fakeServer, json } from "./fake-registry.ts";

let server: Fake;
const agent = new Agent();
before(async () => {
  server = await fakeServer();
});
after(async () => {
  await server.close();
  await agent.close();
});

const host = (): RegistryHost => ({
  host: "reg.test:5000",
  scheme: "http",
  path: "/v2",
  capabilities: ["pull", "resolve", "push"],
  ca: [],
  client: [],
  skipVerify: false,
  header: {},
  isServer: true,
});
const ctx = { ref: "reg.test:5000/app:v1", what: "resolving" };

function authorizer(now: { t: number }, extra: Partial<ConstructorParameters<typeof Authorizer>[0]> = {}) {
  return new Authorizer({
    userAgent: "test",
    dispatcher: () => agent,
    dockerConfigPath: "/nonexistent/config.json",
    now: () => now.t,
    ...extra,
  });
}

describe("Authorizer", () => {
  it("splitUser", () => {
    assert.deepEqual(splitUser("bob"), { username: "bob" });
    assert.deepEqual(splitUser("bob:pa:ss"), { username: "bob", password: "pa:ss" });
    assert.deepEqual(splitUser("bob:"), { username: "bob", password: "" });
  });

  it("caches tokens per scope until expires_in (default 60 s)", async () => {
    let n = 0;
    let expiresIn: number | undefined = 120;
    server.handle((_req, res) => {
      n++;
      json(res, 200, { token: `t${n}`, ...(expiresIn ? { expires_in: expiresIn } : {}) });
    });
    const now = { t: 1_000_000 };
    const a = authorizer(now);
    const h = host();
    await a.challenged(h, `Bearer realm="http://${server.addr}/token",service="svc"`, ctx);
    const pull = ["repository:app:pull"];
    assert.equal(await a.authorization(h, pull, ctx), "Bearer t1");
    now.t += 100_000;
    assert.equal(await a.authorization(h, pull, ctx), "Bearer t1");
    // another scope is another token
    assert.equal(await a.authorization(h, ["repository:app:pull,push"], ctx), "Bearer t2");
    now.t += 20_000;
    assert.equal(await a.authorization(h, pull, ctx), "Bearer t3");
    expiresIn = undefined;
    now.t += 200_000;
    assert.equal(await a.authorization(h, pull, ctx), "Bearer t4");
    now.t += 50_000;
    assert.equal(await a.authorization(h, pull, ctx), "Bearer t4");
    now.t += 11_000;
    assert.equal(await a.authorization(h, pull, ctx), "Bearer t5");
    // the scope sent is the merged, sorted list; the service is passed on
    const last = new URL(server.requests.at(-1)?.url ?? "", "http://x");
    assert.deepEqual(last.searchParams.getAll("scope"), ["repository:app:pull"]);
    assert.equal(last.searchParams.get("service"), "svc");
  });

  it("concurrent requests share one token fetch", async () => {
    let n = 0;
    server.handle((_req, res) => {
      n++;
      setTimeout(() => json(res, 200, { access_token: "shared", token: "ignored" }), 20);
    });
    const a = authorizer({ t: 0 });
    const h = host();
    await a.challenged(h, `Bearer realm="http://${server.addr}/token"`, ctx);
    const got = await Promise.all([1, 2, 3, 4].map(() => a.authorization(h, ["repository:x:pull"], ctx)));
    assert.deepEqual(got, Array(4).fill("Bearer shared"));
    assert.equal(n, 1);
  });

  it("OAuth2 POST: password grant for --user, refresh-token grant for a config identitytoken", async () => {
    const grants: string[] = [];
    server.handle((req, res, body) => {
      if (req.method !== "POST") {
        json(res, 400, {});
        return;
      }
      const form = new URLSearchParams(body.toString());
      grants.push([form.get("grant_type"), form.get("client_id"), form.get("username") ?? "-"].join(" "));
      json(res, 200, { access_token: `tok-${grants.length}` });
    });
    const h = host();
    const b = authorizer({ t: 0 }, { user: "bob:pw" });
    await b.challenged(h, `Bearer realm="http://${server.addr}/token"`, ctx);
    assert.equal(await b.authorization(h, ["repository:x:pull"], ctx), "Bearer tok-1");
    const dir = mkdtempSync(join(tmpdir(), "dist-auth-"));
    try {
      const cfg = join(dir, "config.json");
      writeFileSync(cfg, JSON.stringify({ auths: { "reg.test:5000": { identitytoken: "id-refresh" } } }));
      const c = authorizer({ t: 0 }, { dockerConfigPath: cfg });
      await c.challenged(h, `Bearer realm="http://${server.addr}/token"`, ctx);
      assert.equal(await c.authorization(h, ["repository:x:pull"], ctx), "Bearer tok-2");
      assert.deepEqual(grants, ["password dist bob", "refresh_token dist -"]);
      assert.equal(new URLSearchParams(server.requests[1].body).get("refresh_token"), "id-refresh");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a Basic challenge without credentials is 'authentication required'; a prompt is asked once", async () => {
    const a = authorizer({ t: 0 });
    await assert.rejects(a.challenged(host(), 'Basic realm="r"', ctx), /authentication required by reg.test:5000/);
    let asked = 0;
    const b = authorizer(
      { t: 0 },
      {
        user: "carol",
        promptPassword: async () => {
          asked++;
          return "typed";
        },
      },
    );
    await b.challenged(host(), 'Basic realm="r"', ctx);
    assert.equal(await b.authorization(host(), [], ctx), `Basic ${Buffer.from("carol:typed").toString("base64")}`);
    assert.equal(await b.authorization(host(), [], ctx), `Basic ${Buffer.from("carol:typed").toString("base64")}`);
    assert.equal(asked, 1);
    const c = authorizer({ t: 0 }, { user: "dave" });
    await assert.rejects(c.challenged(host(), 'Basic realm="r"', ctx), /--user dave: no password given/);
    await assert.rejects(a.challenged(host(), "Negotiate", ctx), /sent no usable challenge/);
    await assert.rejects(a.challenged(host(), "Bearer service=x", ctx), /without a realm/);
  });
});
