/**
 * Which proxy a registry request goes through, from `HTTP_PROXY`, `HTTPS_PROXY`
 * and `NO_PROXY` (either case), with the rules of Go's net/http (what containerd,
 * docker, skopeo and crane read), so one environment routes them all alike:
 *
 * - `https://` URLs use HTTPS_PROXY, `http://` URLs HTTP_PROXY; neither falls
 *   back to the other. The upper-case name wins over the lower-case one, and
 *   HTTP_PROXY is ignored under CGI (REQUEST_METHOD set: "httpoxy").
 * - Loopback destinations (`localhost`, 127.0.0.0/8, ::1) are never proxied.
 * - NO_PROXY is a list (commas or spaces) of: `*` (nothing is proxied); an IP
 *   (`10.1.2.3`, `[::1]`), optionally with a port; a CIDR range (`10.0.0.0/8`,
 *   `fd00::/8`), matching IP destinations in it; a domain (`example.com`:
 *   itself and its subdomains; `.example.com` or `*.example.com`: subdomains
 *   only), optionally with a port (`example.com:5000` matches that port only,
 *   the scheme's default port when the URL names none).
 * - A proxy URL without a scheme is `http://`; http, https and socks5 proxies
 *   are accepted.
 *
 * Where peers differ: undici's EnvHttpProxyAgent (and curl) read the
 * lower-case names first, and undici has no CIDR or IP matching and proxies
 * loopback; curl lets `.example.com` match example.com itself.
 */
import { BlockList, isIP } from "node:net";
import { InvalidArgumentError } from "../../errors.ts";

/** Proxy settings: as the environment gives them (proxyConfigFromEnv), or set by the caller. */
export interface ProxyConfig {
  /** For http:// destinations. */
  httpProxy?: string;
  /** For https:// destinations. */
  httpsProxy?: string;
  /** Destinations never proxied (see above). */
  noProxy?: string;
}

/** The proxy settings of an environment (process.env by default), as Go reads them. */
export function proxyConfigFromEnv(env: NodeJS.ProcessEnv = process.env): ProxyConfig {
  const get = (...names: string[]) => {
    for (const n of names) {
      const v = env[n];
      if (v !== undefined && v !== "") return v;
    }
    return undefined;
  };
  const cfg: ProxyConfig = {};
  // under CGI, HTTP_PROXY may come from a request's "Proxy:" header
  const http = env.REQUEST_METHOD ? get("http_proxy") : get("HTTP_PROXY", "http_proxy");
  const https = get("HTTPS_PROXY", "https_proxy");
  const no = get("NO_PROXY", "no_proxy");
  if (http) cfg.httpProxy = http;
  if (https) cfg.httpsProxy = https;
  if (no) cfg.noProxy = no;
  return cfg;
}

interface DomainRule {
  /** With a leading dot. */
  suffix: string;
  /** The domain itself matches too (the entry had no leading dot). */
  self: boolean;
  port?: string;
}

interface IpRule {
  ip: string;
  port?: string;
}

/** A parsed configuration: `proxyFor(url)` answers which proxy, if any, a URL goes through. */
export class ProxyRules {
  readonly #http?: URL;
  readonly #https?: URL;
  readonly #all: boolean;
  readonly #domains: DomainRule[] = [];
  readonly #ips: IpRule[] = [];
  readonly #ranges = new BlockList();

  constructor(cfg: ProxyConfig) {
    this.#http = cfg.httpProxy ? parseProxyUrl(cfg.httpProxy, "HTTP_PROXY") : undefined;
    this.#https = cfg.httpsProxy ? parseProxyUrl(cfg.httpsProxy, "HTTPS_PROXY") : undefined;
    let all = false;
    for (const raw of (cfg.noProxy ?? "").split(/[\s,]+/)) {
      const entry = raw.trim().toLowerCase();
      if (entry === "") continue;
      if (entry === "*") {
        all = true;
        break;
      }
      this.#addEntry(entry);
    }
    this.#all = all;
  }

  /** Whether any proxy is configured at all. */
  get enabled(): boolean {
    return this.#http !== undefined || this.#https !== undefined;
  }

  #addEntry(entry: string): void {
    const slash = entry.indexOf("/");
    if (slash > 0) {
      const addr = stripBrackets(entry.slice(0, slash));
      const bits = Number(entry.slice(slash + 1));
      const family = isIP(addr);
      if (family !== 0 && Number.isInteger(bits) && bits >= 0 && bits <= (family === 4 ? 32 : 128)) {
        this.#ranges.addSubnet(addr, bits, family === 4 ? "ipv4" : "ipv6");
      }
      // a malformed range matches nothing, as in Go
      return;
    }
    const { host, port } = splitHostPort(entry);
    const ip = stripBrackets(host);
    if (isIP(ip) !== 0) {
      this.#ips.push({ ip: canonicalIp(ip), port });
      return;
    }
    let name = host.startsWith("*.") ? host.slice(1) : host;
    const self = !name.startsWith(".");
    if (self) name = `.${name}`;
    if (name === ".") return;
    this.#domains.push({ suffix: name, self, port });
  }

  /** The proxy for a request to `url`, or undefined to connect directly. */
  proxyFor(url: URL): URL | undefined {
    const proxy = url.protocol === "https:" ? this.#https : url.protocol === "http:" ? this.#http : undefined;
    if (!proxy || this.#all) return undefined;
    const host = stripBrackets(url.hostname.toLowerCase()).replace(/\.$/, "");
    const port = url.port || (url.protocol === "https:" ? "443" : "80");
    if (host === "localhost") return undefined;
    const family = isIP(host);
    if (family !== 0) {
      const ip = canonicalIp(host);
      if (isLoopback(ip)) return undefined;
      if (this.#ranges.check(ip, isIP(ip) === 4 ? "ipv4" : "ipv6")) return undefined;
      if (this.#ips.some((r) => r.ip === ip && (r.port === undefined || r.port === port))) return undefined;
      return proxy;
    }
    for (const d of this.#domains) {
      if (d.port !== undefined && d.port !== port) continue;
      if (host.endsWith(d.suffix) || (d.self && host === d.suffix.slice(1))) return undefined;
    }
    return proxy;
  }
}

function stripBrackets(h: string): string {
  return h.startsWith("[") && h.endsWith("]") ? h.slice(1, -1) : h;
}

/** `host[:port]`, with IPv6 in brackets or bare (a bare IPv6 address has no port). */
function splitHostPort(s: string): { host: string; port?: string } {
  if (s.startsWith("[")) {
    const end = s.indexOf("]");
    if (end > 0) {
      const rest = s.slice(end + 1);
      if (/^:\d+$/.test(rest)) return { host: s.slice(0, end + 1), port: String(Number(rest.slice(1))) };
      return { host: s.slice(0, end + 1) };
    }
  }
  if (isIP(s) === 6) return { host: s };
  const m = /^(.*):(\d+)$/.exec(s);
  return m ? { host: m[1], port: String(Number(m[2])) } : { host: s };
}

/** An IPv4-mapped IPv6 address as its IPv4 form; IPv6 in one spelling. */
function canonicalIp(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1];
  if (isIP(ip) === 6) {
    try {
      return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
    } catch {
      return ip;
    }
  }
  return ip;
}

const LOOPBACK = (() => {
  const b = new BlockList();
  b.addSubnet("127.0.0.0", 8, "ipv4");
  b.addAddress("::1", "ipv6");
  return b;
})();

function isLoopback(ip: string): boolean {
  return LOOPBACK.check(ip, isIP(ip) === 4 ? "ipv4" : "ipv6");
}

/** A proxy URL from the environment; `host:port` alone means http. */
export function parseProxyUrl(raw: string, name: string): URL {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw new InvalidArgumentError(`${name}: invalid proxy URL "${redactProxy(raw)}"`);
  }
  if (!["http:", "https:", "socks5:"].includes(u.protocol)) {
    throw new InvalidArgumentError(`${name}: unsupported proxy scheme "${u.protocol}" (http, https or socks5)`);
  }
  if (u.hostname === "") throw new InvalidArgumentError(`${name}: proxy URL "${redactProxy(raw)}" names no host`);
  return u;
}

/** A proxy URL for messages: no credentials. */
export function redactProxy(u: URL | string): string {
  if (typeof u === "string") return u.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^/@]*@/i, "$1***@");
  return `${u.protocol}//${u.username || u.password ? "***@" : ""}${u.host}`;
}
