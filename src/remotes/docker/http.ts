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
import type { ConnectionOptions } from "node:tls";
import type { buildConnector, Dispatcher, Agent as UndiciAgent, ProxyAgent as UndiciProxyAgent } from "undici";

const require = createRequire(import.meta.url);

export const Agent = require("undici/lib/dispatcher/agent.js") as typeof UndiciAgent;
export type Agent = UndiciAgent;

/** undici's ProxyAgent (CONNECT tunnels, or absolute-form requests to an http proxy), loaded when a proxy is used. */
export function proxyAgent(opts: UndiciProxyAgent.Options): Dispatcher {
  // the tunnel is opened with Dispatcher#connect, an API method undici's index would have installed
  const DispatcherClass = require("undici/lib/dispatcher/dispatcher.js") as { prototype: { connect?: unknown } };
  DispatcherClass.prototype.connect ??= require("undici/lib/api/api-connect.js");
  const ProxyAgent = require("undici/lib/dispatcher/proxy-agent.js") as typeof UndiciProxyAgent;
  return new ProxyAgent(opts);
}

const build = require("undici/lib/core/connect.js") as typeof buildConnector;

/**
 * undici's connector with `tls` settings that also reports the errors a socket
 * emits once connected: under TLS 1.3 a server refusing the client's
 * certificate says so with an alert after the handshake, which undici reports
 * only as "other side closed".
 */
export function connector(tls: ConnectionOptions, onSocketError: (err: Error) => void): buildConnector.connector {
  const base = build(tls as buildConnector.BuildOptions);
  return (opts, callback) =>
    base(opts, (err, socket) => {
      // the first: undici destroys the socket with an error of its own after it
      if (!err && socket) socket.once("error", onSocketError);
      // the overloads of the callback type take (null, socket) or (err, null)
      (callback as (e: Error | null, s: typeof socket) => void)(err, socket);
    });
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
