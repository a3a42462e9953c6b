/**
 * The HTTP layer of the registry client: one undici Agent (keep-alive pool) per
 * host, TLS setting and proxy, requests authorised by the Authorizer, retried
 * with backoff on transient failures, redirects followed by hand (Authorization
 * dropped when the host changes), and mirrors tried in order before the server.
 * Requests go through the environment's proxy for their URL (proxy.ts): a
 * CONNECT tunnel for https, absolute-form requests for http; the host's TLS
 * settings (CAs, client certificates) apply inside the tunnel.
 */
import type { Readable } from "node:stream";
import { rootCertificates } from "node:tls";
import { DistError, UnavailableError } from "../../errors.ts";
import { Authorizer } from "./auth.ts";
import { parseChallenges } from "./challenge.ts";
import { errorCode, httpError, isRetryableNetworkError, networkError } from "./errors.ts";
import type { RegistryHost } from "./hosts.ts";
import { Agent, connector, type Dispatcher, proxyAgent, request } from "./http.ts";
import { DEFAULT_STALL_TIMEOUT_MS, DEFAULT_USER_AGENT, type RegistryOptions } from "./options.ts";
import { ProxyRules, proxyConfigFromEnv, redactProxy } from "./proxy.ts";
import { backoffDelay, DEFAULT_RETRIES, isRetryableStatus, parseRetryAfter, sleep } from "./retry.ts";

export type Method = "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";
export type Headers = Record<string, string | string[] | undefined>;

export interface RequestSpec {
  method: Method;
  /** Path under the host's API root (`/<repo>/manifests/<tag>`), or `url` for upload locations. */
  path?: string;
  url?: URL;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  /** A string or Buffer can be replayed on retry; a stream cannot (no retries then). */
  body?: string | Buffer | Readable;
  scopes: string[];
  /** For messages: the reference and what was being done. */
  ref: string;
  what: string;
  signal?: AbortSignal;
  /** The registry namespace (the reference's domain), sent as `?ns=` to mirrors. */
  namespace: string;
  /** Follow 301/302/303/307/308 (blob downloads to a CDN). */
  followRedirects?: boolean;
}

export interface RegistryResponse {
  status: number;
  headers: Headers;
  body: Dispatcher.ResponseData["body"];
  /** The URL that answered (after redirects). */
  url: URL;
  host: RegistryHost;
}

const MAX_REDIRECTS = 5;
/** The one retry of a refused connection comes after at most this long. */
const REFUSED_RETRY_MS = 100;
const ERROR_BODY_LIMIT = 64 << 10;

export function header(h: Headers, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Reads at most `limit` bytes of a body as text and discards the rest. */
export async function readText(body: Readable, limit = ERROR_BODY_LIMIT): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const chunk of body) {
      const b = chunk as Buffer;
      if (n < limit) chunks.push(b.subarray(0, limit - n));
      n += b.length;
      if (n >= limit) break;
    }
  } catch {
    // an error body cut short still says something
  } finally {
    body.destroy();
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** Discards a response body so the connection can be reused. */
export async function drain(body: Dispatcher.ResponseData["body"]): Promise<void> {
  try {
    await body.dump({ limit: 256 << 10 });
  } catch {
    // the connection is closed instead
  }
}

export class RegistryClient {
  readonly opts: RegistryOptions;
  readonly auth: Authorizer;
  readonly retries: number;
  readonly stallTimeoutMs: number;
  readonly userAgent: string;
  readonly #agents = new Map<string, Dispatcher>();
  readonly #proxies: ProxyRules;
  /** The last error a connected socket of each origin emitted (a TLS alert after the handshake), and when. */
  readonly #socketErrors = new Map<string, { err: Error; at: number }>();
  /** Hosts that could not be connected to while others remained: skipped from then on. */
  readonly #dead = new Set<string>();

  constructor(opts: RegistryOptions) {
    this.opts = opts;
    this.retries = opts.retries ?? DEFAULT_RETRIES;
    this.stallTimeoutMs = opts.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
    this.userAgent = opts.userAgent ?? DEFAULT_USER_AGENT;
    this.#proxies = new ProxyRules(opts.proxy ?? proxyConfigFromEnv());
    this.auth = new Authorizer({
      user: opts.user,
      promptPassword: opts.promptPassword,
      dockerConfigPath: opts.dockerConfigPath,
      userAgent: this.userAgent,
      onWarning: opts.onWarning,
      dispatcher: (host, url) => this.dispatcher(host, url),
    });
  }

  /** The proxy a request to `url` goes through, if any. */
  proxyFor(url: URL): URL | undefined {
    return this.#proxies.proxyFor(url);
  }

  /** The pooled Agent for a URL reached under a host's TLS settings (and through its proxy, if any). */
  dispatcher(host: RegistryHost, url: URL): Dispatcher {
    const proxy = this.proxyFor(url);
    const client = host.client.map((p) => p.cert + p.key).join("");
    const key = `${url.protocol}//${url.host}\n${host.skipVerify}\n${host.ca.join("")}\n${client}\n${proxy?.href ?? ""}`;
    let agent = this.#agents.get(key);
    if (!agent) {
      const tls = {
        rejectUnauthorized: !host.skipVerify,
        // extra CAs add to the system roots rather than replacing them
        ...(host.ca.length > 0 ? { ca: [...rootCertificates, ...host.ca] } : {}),
        ...(host.client.length > 0 ? { cert: host.client.map((p) => p.cert), key: host.client.map((p) => p.key) } : {}),
      };
      const pool = { keepAliveTimeout: 30_000, connections: 32 };
      agent = proxy
        ? proxyAgent({ ...pool, uri: proxy.href, proxyTunnel: url.protocol === "https:", requestTls: tls })
        : new Agent({
            ...pool,
            connect: connector(tls, (err) => this.#socketErrors.set(url.origin, { err, at: Date.now() })),
          });
      this.#agents.set(key, agent);
    }
    return agent;
  }

  /**
   * A socket closed under a request with no reason given, when its origin's
   * socket just reported one (a TLS alert: the registry refused the client's
   * certificate, or wanted one), is that reason.
   */
  #explained(url: URL, err: unknown): unknown {
    if (errorCode(err) !== undefined && errorCode(err) !== "UND_ERR_SOCKET") return err;
    const last = this.#socketErrors.get(url.origin);
    if (!last || Date.now() - last.at > 2000) return err;
    this.#socketErrors.delete(url.origin);
    return last.err;
  }

  /** `host`, or `host (through proxy URL)` when requests to `url` are proxied: for messages. */
  reached(url: URL): string {
    const proxy = this.proxyFor(url);
    return proxy ? `${url.host} (through proxy ${redactProxy(proxy)})` : url.host;
  }

  async close(): Promise<void> {
    const agents = [...this.#agents.values()];
    this.#agents.clear();
    await Promise.all(agents.map((a) => a.close().catch(() => {})));
  }

  url(host: RegistryHost, spec: RequestSpec): URL {
    if (spec.url) return new URL(spec.url);
    const u = new URL(`${host.scheme}://${host.host}${host.path === "/" ? "" : host.path}${spec.path ?? ""}`);
    for (const [k, v] of Object.entries(spec.query ?? {})) u.searchParams.set(k, v);
    if (!host.isServer) u.searchParams.set("ns", spec.namespace);
    return u;
  }

  backoff(attempt: number): number {
    return backoffDelay(attempt, { baseMs: this.opts.backoffBaseMs });
  }

  /**
   * Sends a request to one host: authorised, retried on transient failures and
   * followed through redirects. Returns any response that is not a transient
   * failure still being retried; throws on network failure and on a 401 that
   * authorisation could not fix. `more`: other hosts remain to be tried, so a
   * host that cannot be connected to is given up at once (and remembered as dead).
   */
  async send(host: RegistryHost, spec: RequestSpec, more = false): Promise<RegistryResponse> {
    const replayable = !(spec.body && typeof spec.body === "object" && !Buffer.isBuffer(spec.body));
    const ctx = { ref: spec.ref, what: spec.what, signal: spec.signal };
    let url = this.url(host, spec);
    let attempt = 0;
    let authRetried = false;
    let redirects = 0;
    let method = spec.method;
    for (;;) {
      const sameHost = url.host === host.host;
      const headers: Record<string, string | string[]> = { "user-agent": this.userAgent };
      if (sameHost) Object.assign(headers, host.header, spec.headers);
      else if (spec.headers?.range) headers.range = spec.headers.range;
      if (sameHost) {
        const authz = await this.auth.authorization(host, spec.scopes, ctx);
        if (authz) headers.authorization = authz;
      }
      let res: Dispatcher.ResponseData;
      try {
        res = await request(url, {
          dispatcher: this.dispatcher(host, url),
          method,
          headers,
          body: method === spec.method ? spec.body : undefined,
          signal: spec.signal,
          headersTimeout: this.stallTimeoutMs,
          // body stalls are watched by the reader, which knows about backpressure
          bodyTimeout: 0,
        });
      } catch (caught) {
        if (spec.signal?.aborted) throw spec.signal.reason;
        if (caught instanceof DistError) throw caught;
        const err = this.#explained(url, caught);
        const code = errorCode(err);
        // nothing was sent: while another host can answer, do not wait for this one
        const skip = more && sameHost && isConnectFailure(code);
        // a refused connection is not transient (nothing listens): one quick retry at most
        const refused = code === "ECONNREFUSED";
        const budget = refused ? Math.min(1, this.retries) : this.retries;
        if (!skip && replayable && isRetryableNetworkError(err) && attempt < budget) {
          const delay = refused ? Math.min(REFUSED_RETRY_MS, this.backoff(0)) : this.backoff(attempt);
          attempt++;
          this.opts.onWarning?.(
            `${spec.ref}: ${spec.what}: ${this.reached(url)}: ${(err as Error).message}; retrying in ${delay} ms`,
          );
          await sleep(delay, spec.signal);
          continue;
        }
        if (more && sameHost) this.#dead.add(hostKey(host));
        throw networkError(spec.ref, this.reached(url), err);
      }
      const status = res.statusCode;
      if (status === 401 && sameHost) {
        const www = res.headers["www-authenticate"];
        const detail = await readText(res.body);
        if (authRetried || !replayable) {
          throw await this.auth.rejected(host, ctx, challengeError(www) ?? bodyDetail(detail));
        }
        await this.auth.challenged(host, www, ctx);
        authRetried = true;
        continue;
      }
      if (isRetryableStatus(status) && replayable && attempt < this.retries) {
        const after = parseRetryAfter(res.headers["retry-after"]);
        const delay = after ?? this.backoff(attempt);
        attempt++;
        await drain(res.body);
        this.opts.onWarning?.(
          `${spec.ref}: ${spec.what}: ${url.host} answered HTTP ${status}; retrying in ${delay} ms`,
        );
        await sleep(delay, spec.signal);
        continue;
      }
      if (spec.followRedirects && [301, 302, 303, 307, 308].includes(status)) {
        const location = header(res.headers, "location");
        await drain(res.body);
        if (!location) throw new UnavailableError(`${spec.ref}: ${spec.what}: redirect ${status} without Location`);
        if (++redirects > MAX_REDIRECTS) {
          throw new UnavailableError(`${spec.ref}: ${spec.what}: more than ${MAX_REDIRECTS} redirects`);
        }
        const next = new URL(location, url);
        if (next.protocol !== "http:" && next.protocol !== "https:") {
          throw new UnavailableError(`${spec.ref}: ${spec.what}: redirect to a non-HTTP URL`);
        }
        if (status === 303) method = "GET";
        url = next;
        continue;
      }
      const warning = res.headers.warning;
      if (warning && this.opts.onWarning) {
        for (const w of Array.isArray(warning) ? warning : [warning]) {
          const m = /^\s*299\s+\S+\s+"((?:[^"\\]|\\.)*)"/.exec(w);
          if (m) this.opts.onWarning(`${url.host}: ${m[1]}`);
        }
      }
      return { status, headers: res.headers, body: res.body, url, host };
    }
  }

  /**
   * Tries the hosts in order: a mirror that fails (network error, 5xx, 404, auth)
   * passes the request on to the next host; the last host's answer stands.
   */
  async sendAny(hosts: RegistryHost[], spec: RequestSpec): Promise<RegistryResponse> {
    // hosts found dead earlier are not asked again, unless none other is left
    const live = hosts.filter((h) => !this.#dead.has(hostKey(h)));
    const order = live.length > 0 ? live : hosts.slice(-1);
    for (let i = 0; i < order.length; i++) {
      const host = order[i];
      const last = i === order.length - 1;
      try {
        const res = await this.send(host, spec, !last);
        if (!last && (res.status === 404 || res.status >= 500 || res.status === 403)) {
          await drain(res.body);
          this.opts.onWarning?.(
            `${spec.ref}: ${spec.what}: mirror ${host.host} answered HTTP ${res.status}; trying the next host`,
          );
          continue;
        }
        return res;
      } catch (err) {
        if (last || spec.signal?.aborted) throw err;
        const dead = this.#dead.has(hostKey(host)) ? " (not asked again)" : "";
        this.opts.onWarning?.(`${spec.ref}: ${spec.what}: ${(err as Error).message}; trying the next host${dead}`);
      }
    }
    throw new UnavailableError(`${spec.ref}: ${spec.what}: no host to try`);
  }

  /** A typed error for an unexpected response, with the registry's error body decoded. */
  async fail(res: RegistryResponse, spec: { ref: string; what: string }): Promise<DistError> {
    const body = await readText(res.body);
    return httpError({ ref: spec.ref, what: spec.what, status: res.status, body, host: res.host.host });
  }
}

function hostKey(h: RegistryHost): string {
  return `${h.scheme}://${h.host}${h.path}`;
}

/** Failures to connect at all: nothing was sent, so another host can be tried at once. */
function isConnectFailure(code: string | undefined): boolean {
  return (
    code === "ECONNREFUSED" ||
    code === "ENOTFOUND" ||
    code === "EHOSTUNREACH" ||
    code === "ENETUNREACH" ||
    code === "EAI_AGAIN" ||
    code === "UND_ERR_CONNECT_TIMEOUT"
  );
}

/** A Bearer challenge's `error` (and description), e.g. `insufficient_scope`. */
function challengeError(www: string | string[] | undefined): string | undefined {
  const ch = parseChallenges(www).find((c) => c.params.error);
  if (!ch) return undefined;
  const desc = ch.params.error_description;
  return (desc ? `${ch.params.error}: ${desc}` : ch.params.error).slice(0, 200);
}

function bodyDetail(body: string): string | undefined {
  const m = /"message"\s*:\s*"([^"]{1,200})"/.exec(body);
  return m ? m[1] : undefined;
}
