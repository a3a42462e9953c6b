// Which proxy a registry URL goes through: Go's rules (what containerd, docker and skopeo read).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ProxyRules, parseProxyUrl, proxyConfigFromEnv, redactProxy } from "../../src/remotes/docker/proxy.ts";

const HTTP = "http://proxy.corp:3128";
const HTTPS = "http://sproxy.corp:3129";

function via(noProxy: string, url: string): string | undefined {
  return new ProxyRules({ httpProxy: HTTP, httpsProxy: HTTPS, noProxy }).proxyFor(new URL(url))?.host;
}

describe("proxy rules", () => {
  it("reads the environment as Go does: upper case first, HTTP_PROXY ignored under CGI", () => {
    assert.deepEqual(proxyConfigFromEnv({ HTTP_PROXY: "a:1", http_proxy: "b:2", https_proxy: "c:3", no_proxy: "x" }), {
      httpProxy: "a:1",
      httpsProxy: "c:3",
      noProxy: "x",
    });
    assert.deepEqual(proxyConfigFromEnv({ http_proxy: "b:2", NO_PROXY: "y", no_proxy: "x" }), {
      httpProxy: "b:2",
      noProxy: "y",
    });
    assert.deepEqual(proxyConfigFromEnv({ HTTP_PROXY: "evil:1", REQUEST_METHOD: "GET" }), {});
    assert.deepEqual(proxyConfigFromEnv({ HTTP_PROXY: "" }), {});
  });

  it("picks the proxy by scheme, with no fallback from https to HTTP_PROXY", () => {
    assert.equal(via("", "https://reg.example.com/v2/"), "sproxy.corp:3129");
    assert.equal(via("", "http://reg.example.com/v2/"), "proxy.corp:3128");
    const onlyHttp = new ProxyRules({ httpProxy: HTTP });
    assert.equal(onlyHttp.proxyFor(new URL("https://reg.example.com/")), undefined);
    assert.equal(new ProxyRules({}).enabled, false);
    assert.equal(onlyHttp.enabled, true);
  });

  it("never proxies loopback", () => {
    for (const u of ["http://localhost:5000/", "http://127.0.0.1:5000/", "http://127.9.9.9/", "https://[::1]:5000/"]) {
      assert.equal(via("", u), undefined, u);
    }
    assert.equal(via("", "http://[::ffff:127.0.0.1]:80/"), undefined);
    assert.equal(via("", "http://10.0.0.1/"), "proxy.corp:3128");
  });

  it("matches domains (with subdomains), leading-dot and *. forms (subdomains only), and ports", () => {
    assert.equal(via("example.com", "https://example.com/"), undefined);
    assert.equal(via("example.com", "https://reg.example.com/"), undefined);
    assert.equal(via("example.com", "https://badexample.com/"), "sproxy.corp:3129");
    assert.equal(via(".example.com", "https://example.com/"), "sproxy.corp:3129");
    assert.equal(via(".example.com", "https://a.b.example.com/"), undefined);
    assert.equal(via("*.example.com", "https://example.com/"), "sproxy.corp:3129");
    assert.equal(via("*.example.com", "https://reg.example.com/"), undefined);
    assert.equal(via("Example.COM.", "https://reg.example.com/"), "sproxy.corp:3129");
    assert.equal(via("example.com", "https://REG.Example.com./"), undefined);
    // ports: an entry with a port matches only that port; no port in the URL is the scheme's default
    assert.equal(via("example.com:5000", "https://example.com:5000/"), undefined);
    assert.equal(via("example.com:5000", "https://example.com/"), "sproxy.corp:3129");
    assert.equal(via("example.com:443", "https://example.com/"), undefined);
    assert.equal(via("example.com:443", "http://example.com/"), "proxy.corp:3128");
  });

  it("matches IPs, with ports, and CIDR ranges (v4 and v6), in a list of commas and spaces", () => {
    const list = "foo.test, 10.1.2.3 192.168.0.0/16,[fd00::1]:8443 ,2001:db8::/32,172.16.0.9:5000";
    assert.equal(via(list, "http://10.1.2.3/"), undefined);
    assert.equal(via(list, "http://10.1.2.4/"), "proxy.corp:3128");
    assert.equal(via(list, "http://192.168.44.5:5000/"), undefined);
    assert.equal(via(list, "https://[fd00::1]:8443/"), undefined);
    assert.equal(via(list, "https://[fd00::1]/"), "sproxy.corp:3129");
    assert.equal(via(list, "https://[2001:db8:1::5]/"), undefined);
    assert.equal(via(list, "https://[2001:db9::5]/"), "sproxy.corp:3129");
    assert.equal(via(list, "http://172.16.0.9:5000/"), undefined);
    assert.equal(via(list, "http://172.16.0.9:5001/"), "proxy.corp:3128");
    // a range matches IP destinations only, not names
    assert.equal(via("10.0.0.0/8", "http://ten.example/"), "proxy.corp:3128");
    // a malformed range matches nothing
    assert.equal(via("10.0.0.0/99", "http://10.0.0.1/"), "proxy.corp:3128");
  });

  it("* turns proxying off", () => {
    assert.equal(via("*", "https://reg.example.com/"), undefined);
    assert.equal(via("foo, *", "http://10.0.0.1/"), undefined);
  });

  it("parses proxy URLs and never shows credentials", () => {
    assert.equal(parseProxyUrl("proxy.corp:3128", "HTTP_PROXY").href, "http://proxy.corp:3128/");
    assert.equal(parseProxyUrl("https://p:443", "HTTPS_PROXY").protocol, "https:");
    assert.equal(parseProxyUrl("socks5://p:1080", "HTTPS_PROXY").protocol, "socks5:");
    assert.throws(() => parseProxyUrl("ftp://p", "HTTP_PROXY"), /HTTP_PROXY: unsupported proxy scheme "ftp:"/);
    assert.throws(
      () => parseProxyUrl("http://user:s3cret@[bad", "HTTPS_PROXY"),
      (err: Error) => /HTTPS_PROXY: invalid proxy URL/.test(err.message) && !err.message.includes("s3cret"),
    );
    assert.equal(redactProxy(new URL("http://user:s3cret@proxy:3128")), "http://***@proxy:3128");
    assert.equal(redactProxy("user:s3cret@proxy:3128"), "***@proxy:3128");
    assert.throws(() => new ProxyRules({ httpsProxy: "http://" }), /HTTPS_PROXY/);
  });
});

describe("a proxy that refuses", () => {
  it("is named in one line: a tunnel refused, authentication required", async () => {
    const { createServer } = await import("node:http");
    const { createResolver } = await import("../../src/remotes/docker/index.ts");
    const server = createServer((_req, res) => res.writeHead(407, { "proxy-authenticate": 'Basic realm="p"' }).end());
    server.on("connect", (_req, socket) => socket.end("HTTP/1.1 403 Forbidden\r\n\r\n"));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const addr = server.address() as { port: number };
    const proxy = `http://user:s3cret@127.0.0.1:${addr.port}`;
    const r = createResolver({
      retries: 0,
      dockerConfigPath: "/nonexistent/config.json",
      proxy: { httpProxy: proxy, httpsProxy: proxy },
    });
    try {
      await assert.rejects(r.resolve("reg.example.com/app:1"), (err: Error) => {
        assert.match(
          err.message,
          /^reg\.example\.com\/app:1: cannot reach reg\.example\.com \(through proxy http:\/\/\*\*\*@127\.0\.0\.1:\d+\): the proxy refused the tunnel \(HTTP 403\)$/,
        );
        return true;
      });
      const plain = createResolver({
        plainHttp: true,
        retries: 0,
        dockerConfigPath: "/nonexistent/config.json",
        proxy: { httpProxy: `http://127.0.0.1:${addr.port}` },
      });
      await assert.rejects(plain.resolve("reg.example.com/app:1"), (err: Error) => {
        assert.match(err.message, /the proxy requires authentication \(HTTP 407\)/);
        assert.ok(!err.message.includes("s3cret"));
        return true;
      });
      await plain.close();
    } finally {
      await r.close();
      server.closeAllConnections();
      await new Promise<void>((res) => server.close(() => res()));
    }
  });
});
