/**
 * Registry authorisation: learns each host's challenge from its first 401,
 * then authorises every request before it is sent: Basic with credentials, or a
 * Bearer token from the realm (OAuth2 POST, GET as fallback or when anonymous),
 * cached per (host, realm, service, scope) until it expires.
 *
 * Credentials come from `user[:password]` (prompting once for a missing
 * password) or from Docker's config.json and credential helpers. No credential
 * or token ever reaches an error message or a log line.
 */
import { errorMessage, InvalidArgumentError, UnauthenticatedError, UnavailableError } from "../../errors.ts";
import { type Credentials, dockerCredentials } from "../auth/dockerconfig.ts";
import { type Challenge, mergeScopes, parseChallenges, splitScopes } from "./challenge.ts";
import { networkError } from "./errors.ts";
import type { RegistryHost } from "./hosts.ts";
import { type Dispatcher, request } from "./http.ts";

export interface AuthContext {
  ref: string;
  what: string;
  signal?: AbortSignal;
}

export interface AuthorizerOptions {
  user?: string;
  promptPassword?: (user: string) => Promise<string>;
  dockerConfigPath?: string;
  userAgent: string;
  onWarning?: (msg: string) => void;
  /** The dispatcher (TLS settings) to reach a token realm advertised by `host`. */
  dispatcher: (host: RegistryHost, url: URL) => Dispatcher;
  /** Token lifetime when the server gives none, in seconds (default 60). */
  defaultExpiresIn?: number;
  /** Clock, for tests. */
  now?: () => number;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

export const CLIENT_ID = "dist";

/** Splits `user[:password]`; the password is undefined when there is no colon. */
export function splitUser(user: string): { username: string; password?: string } {
  const i = user.indexOf(":");
  if (i < 0) return { username: user };
  return { username: user.slice(0, i), password: user.slice(i + 1) };
}

function basic(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.secret}`).toString("base64")}`;
}

/** Prefers Bearer over Basic; other schemes are not supported. */
function pick(challenges: Challenge[]): Challenge | undefined {
  return challenges.find((c) => c.scheme === "bearer") ?? challenges.find((c) => c.scheme === "basic");
}

export class Authorizer {
  readonly #opts: AuthorizerOptions;
  readonly #challenges = new Map<string, Challenge>();
  readonly #tokens = new Map<string, CachedToken>();
  readonly #pending = new Map<string, Promise<string>>();
  readonly #creds = new Map<string, Promise<Credentials | undefined>>();
  #userCreds: Promise<Credentials> | undefined;

  constructor(opts: AuthorizerOptions) {
    this.#opts = opts;
  }

  #now(): number {
    return this.#opts.now?.() ?? Date.now();
  }

  /** Whether requests to this host are authorised with credentials (for messages). */
  async hasCredentials(host: RegistryHost): Promise<boolean> {
    try {
      return (await this.credentials(host)) !== undefined;
    } catch {
      return false;
    }
  }

  /** Credentials for a host: --user first, else Docker's config and helpers. */
  credentials(host: RegistryHost): Promise<Credentials | undefined> {
    const user = this.#opts.user;
    if (user !== undefined && user !== "") {
      this.#userCreds ??= (async () => {
        const { username, password } = splitUser(user);
        if (password !== undefined) return { username, secret: password };
        if (!this.#opts.promptPassword) {
          throw new InvalidArgumentError(`--user ${username}: no password given and no terminal to ask for it`);
        }
        return { username, secret: await this.#opts.promptPassword(username) };
      })();
      return this.#userCreds;
    }
    let p = this.#creds.get(host.host);
    if (!p) {
      p = dockerCredentials(host.host, this.#opts.dockerConfigPath).catch((err: unknown) => {
        this.#opts.onWarning?.(`credentials for ${host.host}: ${errorMessage(err)}`);
        return undefined;
      });
      this.#creds.set(host.host, p);
    }
    return p;
  }

  /** The Authorization header for a request, once the host's challenge is known. */
  async authorization(host: RegistryHost, scopes: string[], ctx: AuthContext): Promise<string | undefined> {
    const ch = this.#challenges.get(host.host);
    if (!ch) return undefined;
    if (ch.scheme === "basic") {
      const c = await this.credentials(host);
      return c?.username ? basic(c) : undefined;
    }
    return `Bearer ${await this.#token(host, ch, scopes, ctx)}`;
  }

  /**
   * Learns from a 401: remembers the challenge and drops cached tokens that the
   * server refused. Throws when no retry can help (no usable challenge, Basic
   * without credentials).
   */
  async challenged(
    host: RegistryHost,
    wwwAuthenticate: string | string[] | undefined,
    ctx: AuthContext,
  ): Promise<void> {
    const ch = pick(parseChallenges(wwwAuthenticate));
    if (!ch) {
      throw new UnauthenticatedError(
        `${ctx.ref}: ${ctx.what}: ${host.host} requires authentication but sent no usable challenge`,
      );
    }
    this.#challenges.set(host.host, ch);
    if (ch.scheme === "basic") {
      const c = await this.credentials(host);
      if (!c?.username) throw this.required(host, ctx);
      return;
    }
    if (!ch.params.realm) {
      throw new UnauthenticatedError(`${ctx.ref}: ${ctx.what}: ${host.host} sent a Bearer challenge without a realm`);
    }
    // a token the server refused (expired, revoked, too narrow) must not be reused
    const prefix = `${host.host}\n`;
    for (const key of this.#tokens.keys()) if (key.startsWith(prefix)) this.#tokens.delete(key);
  }

  /** `authentication required` error naming the registry. */
  required(host: RegistryHost, ctx: AuthContext): UnauthenticatedError {
    return new UnauthenticatedError(
      `${ctx.ref}: ${ctx.what}: authentication required by ${host.host} (use --user or docker login)`,
    );
  }

  /** The error for a 401 that persists after authorising. */
  async rejected(host: RegistryHost, ctx: AuthContext, detail?: string): Promise<UnauthenticatedError> {
    if (!(await this.hasCredentials(host))) return this.required(host, ctx);
    const why = detail ? `: ${detail}` : "";
    return new UnauthenticatedError(
      `${ctx.ref}: ${ctx.what}: ${host.host} refused the credentials (wrong username or password, or no access to this repository)${why}`,
    );
  }

  async #token(host: RegistryHost, ch: Challenge, scopes: string[], ctx: AuthContext): Promise<string> {
    const realm = ch.params.realm;
    const service = ch.params.service ?? "";
    const scope = mergeScopes([...splitScopes(ch.params.scope), ...scopes]);
    const key = `${host.host}\n${realm}\n${service}\n${scope.join(" ")}`;
    const cached = this.#tokens.get(key);
    if (cached && cached.expiresAt > this.#now()) return cached.token;
    let p = this.#pending.get(key);
    if (!p) {
      p = this.#fetchToken(host, realm, service, scope, ctx).then(
        (t) => {
          this.#tokens.set(key, t);
          this.#pending.delete(key);
          return t.token;
        },
        (err: unknown) => {
          this.#pending.delete(key);
          throw err;
        },
      );
      this.#pending.set(key, p);
    }
    return p;
  }

  async #fetchToken(
    host: RegistryHost,
    realm: string,
    service: string,
    scope: string[],
    ctx: AuthContext,
  ): Promise<CachedToken> {
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new UnauthenticatedError(`${ctx.ref}: ${ctx.what}: ${host.host} sent an invalid token realm`);
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      throw new UnauthenticatedError(`${ctx.ref}: ${ctx.what}: token realm of ${host.host} is not http(s)`);
    }
    const creds = await this.credentials(host);
    const started = this.#now();
    if (creds) {
      const res = await this.#post(host, url, service, scope, creds, ctx);
      if (res) return this.#parseToken(res, started, host, ctx);
      if (!creds.username) {
        throw new UnauthenticatedError(
          `${ctx.ref}: ${ctx.what}: token server of ${host.host} refused the OAuth2 refresh-token request`,
        );
      }
    }
    return this.#parseToken(await this.#get(host, url, service, scope, creds, ctx), started, host, ctx);
  }

  /** OAuth2 password or refresh-token grant; undefined when the server does not do OAuth2 (404/405/400). */
  async #post(
    host: RegistryHost,
    url: URL,
    service: string,
    scope: string[],
    creds: Credentials,
    ctx: AuthContext,
  ): Promise<unknown | undefined> {
    const form = new URLSearchParams();
    form.set("scope", scope.join(" "));
    form.set("service", service);
    form.set("client_id", CLIENT_ID);
    if (creds.username) {
      form.set("grant_type", "password");
      form.set("username", creds.username);
      form.set("password", creds.secret);
    } else {
      form.set("grant_type", "refresh_token");
      form.set("refresh_token", creds.secret);
    }
    const res = await this.#send(host, url, ctx, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded; charset=utf-8" },
      body: form.toString(),
    });
    if (res.status === 404 || res.status === 405 || res.status === 400) return undefined;
    if (res.status === 401 || res.status === 403) {
      throw new UnauthenticatedError(
        `${ctx.ref}: ${ctx.what}: token server of ${host.host} refused the credentials (wrong username or password)`,
      );
    }
    if (res.status !== 200) throw this.#tokenStatus(host, res.status, ctx);
    return res.json;
  }

  async #get(
    host: RegistryHost,
    url: URL,
    service: string,
    scope: string[],
    creds: Credentials | undefined,
    ctx: AuthContext,
  ): Promise<unknown> {
    const u = new URL(url);
    if (service) u.searchParams.set("service", service);
    for (const s of scope) u.searchParams.append("scope", s);
    const headers: Record<string, string> = {};
    if (creds?.username) headers.authorization = basic(creds);
    const res = await this.#send(host, u, ctx, { method: "GET", headers });
    if (res.status === 401 || res.status === 403) {
      if (creds) {
        throw new UnauthenticatedError(
          `${ctx.ref}: ${ctx.what}: token server of ${host.host} refused the credentials (wrong username or password)`,
        );
      }
      throw this.required(host, ctx);
    }
    if (res.status !== 200) throw this.#tokenStatus(host, res.status, ctx);
    return res.json;
  }

  #tokenStatus(host: RegistryHost, status: number, ctx: AuthContext): Error {
    const msg = `${ctx.ref}: ${ctx.what}: token server of ${host.host} answered HTTP ${status}`;
    return status >= 500 || status === 429 ? new UnavailableError(msg) : new UnauthenticatedError(msg);
  }

  async #send(
    host: RegistryHost,
    url: URL,
    ctx: AuthContext,
    init: { method: "GET" | "POST"; headers: Record<string, string>; body?: string },
  ): Promise<{ status: number; json: unknown }> {
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        dispatcher: this.#opts.dispatcher(host, url),
        method: init.method,
        headers: { "user-agent": this.#opts.userAgent, accept: "application/json", ...init.headers },
        body: init.body,
        signal: ctx.signal,
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      });
    } catch (err) {
      if (ctx.signal?.aborted) throw ctx.signal.reason;
      throw networkError(ctx.ref, `token server ${url.host}`, err);
    }
    // token responses are small; refuse anything huge
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const chunk of res.body) {
      n += (chunk as Buffer).length;
      if (n > 1 << 20) {
        res.body.destroy();
        throw new UnauthenticatedError(`${ctx.ref}: ${ctx.what}: token response from ${url.host} is too large`);
      }
      chunks.push(chunk as Buffer);
    }
    let json: unknown;
    if (res.statusCode === 200) {
      try {
        json = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        throw new UnauthenticatedError(`${ctx.ref}: ${ctx.what}: token response from ${url.host} is not JSON`);
      }
    }
    return { status: res.statusCode, json };
  }

  #parseToken(json: unknown, started: number, host: RegistryHost, ctx: AuthContext): CachedToken {
    const v = (json ?? {}) as { token?: unknown; access_token?: unknown; expires_in?: unknown };
    const token =
      typeof v.access_token === "string" && v.access_token
        ? v.access_token
        : typeof v.token === "string"
          ? v.token
          : "";
    if (!token)
      throw new UnauthenticatedError(`${ctx.ref}: ${ctx.what}: token server of ${host.host} returned no token`);
    let expiresIn = this.#opts.defaultExpiresIn ?? 60;
    if (typeof v.expires_in === "number" && v.expires_in > 0) expiresIn = v.expires_in;
    // renew a little early so a token never expires between check and use
    const margin = Math.min(10, expiresIn / 10);
    return { token, expiresAt: started + (expiresIn - margin) * 1000 };
  }
}
