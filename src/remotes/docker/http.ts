/**
 * The HTTP transport: undici's Agent (pooled keep-alive connections, TLS
 * settings per host) and its request API, loaded without undici's index.
 *
 * Why not `import "undici"`: its index loads ~110 modules (fetch, WebSocket,
 * EventSource, the caches, the mocks) for the two this client uses. Measured on
 * Node 24 with the compile cache: +31 MiB RSS for the index, +16 MiB for these
 * two; the difference is a tenth of a pull's memory budget. The paths are
 * undici's own files (the package has no "exports" map) at the version pinned
 * in package-lock.json; the registry tests go through them.
 */
import { createRequire } from "node:module";
import type { Dispatcher, Agent as UndiciAgent, ProxyAgent as UndiciProxyAgent } from "undici";

const require = createRequire(import.meta.url);

export const Agent = require("undici/lib/dispatcher/agent.js") as typeof UndiciAgent;
export type Agent = UndiciAgent;

/** undici's ProxyAgent (CONNECT tunnels, or absolute-form requests to an http proxy), loaded when a proxy is used. */
export function proxyAgent(opts: UndiciProxyAgent.Options): Dispatcher {
  const ProxyAgent = require("undici/lib/dispatcher/proxy-agent.js") as typeof UndiciProxyAgent;
  return new ProxyAgent(opts);
}

type RequestMethod = (this: Dispatcher, opts: Dispatcher.RequestOptions) => Promise<Dispatcher.ResponseData>;
const apiRequest = require("undici/lib/api/api-request.js") as RequestMethod;

export type { Dispatcher };
export type ResponseData = Dispatcher.ResponseData;

export type RequestOptions = Omit<Dispatcher.RequestOptions, "origin" | "path"> & { dispatcher: Dispatcher };

/** undici's request(url, opts) on the given dispatcher. */
export function request(url: URL, opts: RequestOptions): Promise<ResponseData> {
  const { dispatcher, ...rest } = opts;
  return apiRequest.call(dispatcher, {
    ...rest,
    origin: url.origin,
    path: `${url.pathname}${url.search}`,
  });
}
