import type { ProxyConfig } from "./proxy.ts";

/** Options of the registry client, as the CLI's registry flags fill them in. */
export interface RegistryOptions {
  /** Talk http instead of https to hosts without an explicit scheme. */
  plainHttp?: boolean;
  /** `user[:password]`; without a password, promptPassword is asked once. */
  user?: string;
  /** CA certificate files (PEM) trusted for every host, besides the system roots. */
  tlsCaCert?: string[];
  /** Do not verify TLS certificates. */
  skipVerify?: boolean;
  /** containerd-style hosts directory (`<dir>/<host[:port]>/hosts.toml`, `_default`), or several tried in order. */
  hostsDir?: string | readonly string[];
  /** Docker config; default `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. */
  dockerConfigPath?: string;
  /** Error a transfer when no byte arrives for this long (default 30000). */
  stallTimeoutMs?: number;
  /** Retries of one request on transient failures (default 4). */
  retries?: number;
  promptPassword?: (user: string) => Promise<string>;
  userAgent?: string;
  /** Registry `Warning: 299` headers and retry notes. */
  onWarning?: (msg: string) => void;
  /** What a --debug reader wants to know: which file configured a host. */
  onDebug?: (msg: string) => void;
  /**
   * Forward proxies (HTTP_PROXY, HTTPS_PROXY, NO_PROXY: see proxy.ts); default
   * from the environment, `{}` for none.
   */
  proxy?: ProxyConfig;
  /** First backoff delay in ms (default 250); tests make it small. */
  backoffBaseMs?: number;
}

export const DEFAULT_STALL_TIMEOUT_MS = 30_000;
export const DEFAULT_USER_AGENT = "dist/0.1";
