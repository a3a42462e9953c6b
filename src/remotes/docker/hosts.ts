/**
 * Which hosts serve a registry namespace, in the order to try them, with their
 * TLS settings and headers: the defaults (https; docker.io → registry-1.docker.io)
 * and containerd's hosts directory:
 *
 *   <hostsDir>/<host[:port]>/hosts.toml   (else <hostsDir>/_default/hosts.toml)
 *     server = "https://registry.example.com"      # the upstream; omitted with [host] entries: no upstream
 *     capabilities, ca, client, skip_verify, header, override_path  # for the server
 *     [host."https://mirror.example.com"]             # tried first, in file order
 *       capabilities = ["pull", "resolve"]
 *       ca = "mirror-ca.crt"   (or a list; relative to the host directory)
 *       client = [["client.cert", "client.key"]]   # TLS client certificates (client-certs.ts)
 *       skip_verify = false
 *       header = { x-custom = "v" }
 *       override_path = false  # true: the URL path is the API root, no /v2 appended
 *   <hostsDir>/<host[:port]>/*.crt   extra CA certificates for the server
 *   <hostsDir>/<host[:port]>/*.cert, *.key   client certificates for the server (docker's layout)
 *
 * Several hosts directories may be given: the first with one for the host is
 * used (certsd.ts, which also names the system's: dist's, containerd's, docker's).
 */
import { readFile, stat } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { parse as parseToml } from "smol-toml";
import { errorMessage, InvalidArgumentError } from "../../errors.ts";
import { findHostDirectory, readCa, readCertsDir } from "./certsd.ts";
import { type ClientKeyPair, clientKeyPairs } from "./client-certs.ts";

export type Capability = "pull" | "resolve" | "push";
export const ALL_CAPABILITIES: readonly Capability[] = ["pull", "resolve", "push"];

export interface RegistryHost {
  /** `host[:port]` to connect to. */
  host: string;
  scheme: "http" | "https";
  /** API root, `/v2` unless overridden. */
  path: string;
  capabilities: Capability[];
  /** PEM CA certificates (contents, not paths) trusted in addition to the system's. */
  ca: string[];
  /** TLS client certificates and keys (PEM contents) offered to the host. */
  client: ClientKeyPair[];
  skipVerify: boolean;
  header: Record<string, string | string[]>;
  /** The namespace's own server; requests to other hosts (mirrors) carry `?ns=<namespace>`. */
  isServer: boolean;
}

export interface HostsOptions {
  plainHttp?: boolean;
  /** CA files (PEM) trusted for every host. */
  tlsCaCert?: string[];
  skipVerify?: boolean;
  /** A hosts directory, or several: the first that has one for the host is used. */
  hostsDir?: string | readonly string[];
  /** Which file configured the host (for --debug). */
  onDebug?: (msg: string) => void;
}

/** Where the namespace's registry really is: docker.io lives at registry-1.docker.io. */
export function defaultServerHost(namespace: string): string {
  return namespace === "docker.io" ? "registry-1.docker.io" : namespace;
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

interface TomlHost {
  capabilities?: unknown;
  ca?: unknown;
  client?: unknown;
  skip_verify?: unknown;
  header?: unknown;
  override_path?: unknown;
}

function parseUrl(
  raw: string,
  defaultScheme: "http" | "https",
  file: string,
): { scheme: "http" | "https"; host: string; path: string } {
  const withScheme = raw.includes("://") ? raw : `${defaultScheme}://${raw}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw new InvalidArgumentError(`${file}: invalid host URL "${raw}"`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new InvalidArgumentError(`${file}: host URL "${raw}" must be http or https`);
  }
  return { scheme: u.protocol === "http:" ? "http" : "https", host: u.host, path: u.pathname.replace(/\/+$/, "") };
}

function apiPath(path: string, override: boolean): string {
  if (override) return path === "" ? "/" : path;
  if (path === "") return "/v2";
  return path.endsWith("/v2") ? path : `${path}/v2`;
}

function stringList(v: unknown, field: string, file: string): string[] {
  if (v === undefined) return [];
  if (typeof v === "string") return [v];
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v as string[];
  throw new InvalidArgumentError(`${file}: ${field} must be a string or a list of strings`);
}

async function hostFromToml(
  entry: TomlHost,
  url: { scheme: "http" | "https"; host: string; path: string },
  dir: string,
  file: string,
  isServer: boolean,
): Promise<RegistryHost> {
  const caps = stringList(entry.capabilities, "capabilities", file);
  for (const c of caps) {
    if (!ALL_CAPABILITIES.includes(c as Capability)) {
      throw new InvalidArgumentError(`${file}: unknown capability "${c}" (pull, resolve or push)`);
    }
  }
  const ca: string[] = [];
  for (const f of stringList(entry.ca, "ca", file)) ca.push(await readCa(isAbsolute(f) ? f : join(dir, f), file));
  const header: Record<string, string | string[]> = {};
  if (entry.header !== undefined) {
    if (typeof entry.header !== "object" || entry.header === null || Array.isArray(entry.header)) {
      throw new InvalidArgumentError(`${file}: header must be a table`);
    }
    for (const [k, v] of Object.entries(entry.header)) header[k.toLowerCase()] = stringList(v, `header.${k}`, file);
  }
  if (entry.skip_verify !== undefined && typeof entry.skip_verify !== "boolean") {
    throw new InvalidArgumentError(`${file}: skip_verify must be true or false`);
  }
  return {
    host: url.host,
    scheme: url.scheme,
    path: apiPath(url.path, entry.override_path === true),
    capabilities: caps.length > 0 ? (caps as Capability[]) : [...ALL_CAPABILITIES],
    ca,
    client: await clientKeyPairs(entry.client, dir, file),
    skipVerify: entry.skip_verify === true,
    header,
    isServer,
  };
}

/**
 * The hosts to try for a namespace (a reference's domain), mirrors first, the
 * server last. Flags (plainHttp, tlsCaCert, skipVerify) apply to every host.
 */
export async function registryHosts(namespace: string, opts: HostsOptions = {}): Promise<RegistryHost[]> {
  const defaultScheme = opts.plainHttp ? "http" : "https";
  const flagCa: string[] = [];
  for (const f of opts.tlsCaCert ?? []) flagCa.push(await readCa(f, "--tlscacert"));
  const server: RegistryHost = {
    host: defaultServerHost(namespace),
    scheme: defaultScheme,
    path: "/v2",
    capabilities: [...ALL_CAPABILITIES],
    ca: [],
    client: [],
    skipVerify: false,
    header: {},
    isServer: true,
  };
  let hosts: RegistryHost[] = [server];
  const dirs = typeof opts.hostsDir === "string" ? [opts.hostsDir] : (opts.hostsDir ?? []);
  const dir = dirs.length > 0 ? await findHostDirectory(dirs, namespace) : undefined;
  if (dirs.length > 0 && !dir) opts.onDebug?.(`${namespace}: no host configuration in ${dirs.join(", ")}`);
  if (dir) {
    const file = join(dir, "hosts.toml");
    const { ca: certs, client } = await readCertsDir(dir);
    const withCerts = (h: RegistryHost) => {
      h.ca.push(...certs);
      h.client.push(...client);
    };
    const counted = `${certs.length} CA and ${client.length} client certificates`;
    if (await exists(file)) {
      opts.onDebug?.(`${namespace}: host configuration from ${file} (and ${counted} in ${dir})`);
      let doc: Record<string, unknown>;
      try {
        doc = parseToml(await readFile(file, "utf8")) as Record<string, unknown>;
      } catch (err) {
        // the first line: the parser goes on with a picture of the spot
        throw new InvalidArgumentError(`${file}: ${errorMessage(err).split("\n")[0]}`, { cause: err });
      }
      const mirrors: RegistryHost[] = [];
      const table = doc.host;
      if (table !== undefined) {
        if (typeof table !== "object" || table === null || Array.isArray(table)) {
          throw new InvalidArgumentError(`${file}: [host."URL"] entries must be tables`);
        }
        for (const [raw, entry] of Object.entries(table as Record<string, TomlHost>)) {
          const url = parseUrl(raw, defaultScheme, file);
          const isServer = url.host === server.host;
          mirrors.push(await hostFromToml(entry ?? {}, url, dir, file, isServer));
        }
      }
      if (typeof doc.server === "string") {
        const url = parseUrl(doc.server, defaultScheme, file);
        const s = await hostFromToml(doc as TomlHost, url, dir, file, true);
        withCerts(s);
        hosts = [...mirrors, s];
      } else if (doc.server !== undefined) {
        throw new InvalidArgumentError(`${file}: server must be a URL string`);
      } else if (mirrors.length > 0) {
        // containerd: without `server`, only the listed hosts are used
        hosts = mirrors;
      } else {
        const s = await hostFromToml(
          doc as TomlHost,
          { scheme: defaultScheme, host: server.host, path: "" },
          dir,
          file,
          true,
        );
        withCerts(s);
        hosts = [s];
      }
    } else {
      opts.onDebug?.(`${namespace}: host configuration from ${dir} (${counted}, no hosts.toml)`);
      withCerts(server);
    }
  }
  for (const h of hosts) {
    h.ca.push(...flagCa);
    if (opts.skipVerify) h.skipVerify = true;
  }
  return hosts;
}

/** The hosts able to do `cap`, in order; an error naming the namespace when none can. */
export function hostsWith(hosts: RegistryHost[], cap: Capability, namespace: string): RegistryHost[] {
  const out = hosts.filter((h) => h.capabilities.includes(cap));
  if (out.length === 0) {
    throw new InvalidArgumentError(`${namespace}: no configured host has the "${cap}" capability (check hosts.toml)`);
  }
  return out;
}
