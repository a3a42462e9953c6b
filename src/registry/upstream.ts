/**
 * Pull-through: where `dist serve` gets what it does not have. The registries
 * it serves through (`--upstream`) are reached as the client reaches them
 * (hosts.toml mirrors, CAs, credentials), with two rules for a fleet of
 * mirrors that list each other:
 *
 * - the loop guard: a request this server forwards to a mirror carries
 *   `X-Dist-Mirrored: true` (Spegel's `X-Spegel-Mirrored` is honoured alike),
 *   and a request that arrives with it is only ever forwarded to the
 *   registry's own server, never to a mirror, so two mirrors cannot bounce a
 *   request between them;
 * - with `peerOrder: "digest"`, the mirrors are tried in rendezvous order of
 *   the object asked for, so every node that lists the same peers sends a
 *   given blob's requests to the same peer first: that peer downloads it once
 *   and serves it to the others while it arrives;
 * - a server finds itself in the list (its port, an address of this network
 *   namespace): the mirrors after it are not asked, it fetches from the server
 *   itself, so the node a blob falls to is that blob's one downloader.
 */
import { createHash } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import type { Readable } from "node:stream";
import type { OpenAt } from "../content/helpers.ts";
import type { Descriptor } from "../descriptor.ts";
import type { Digest } from "../digest.ts";
import { NotFoundError } from "../errors.ts";
import { MediaType } from "../images/mediatypes.ts";
import type { RegistryHost } from "../remotes/docker/hosts.ts";
import type { DockerResolver } from "../remotes/docker/resolver.ts";
import type { DownloadSource } from "./downloads.ts";

export const MIRRORED_HEADER = "x-dist-mirrored";
const SPEGEL_MIRRORED_HEADER = "x-spegel-mirrored";

/** Whether a request was forwarded by a mirror (and so must not be forwarded to one again). */
export function isMirrored(headers: IncomingHttpHeaders): boolean {
  return headers[MIRRORED_HEADER] === "true" || headers[SPEGEL_MIRRORED_HEADER] === "true";
}

/** The registries a pull-through server fetches misses from, through which resolver. */
export interface UpstreamOptions {
  resolver: DockerResolver;
  /** The registries served through (reference domains such as docker.io); the first is the default. */
  registries: string[];
  /** "file": mirrors in hosts.toml order (default); "digest": rendezvous order per object. */
  peerOrder?: "file" | "digest";
}

const OCTET = "application/octet-stream";

/** Rendezvous (highest random weight) order of hosts for a key. */
export function rendezvous(hosts: RegistryHost[], key: string): RegistryHost[] {
  const weight = (h: RegistryHost) =>
    createHash("sha256").update(`${h.scheme}://${h.host}${h.path}\n${key}`).digest("hex");
  return hosts
    .map((h) => ({ h, w: weight(h) }))
    .sort((a, b) => (a.w < b.w ? 1 : a.w > b.w ? -1 : 0))
    .map((x) => x.h);
}

/** Whether `host:port` names this machine's (this network namespace's) `port`. */
export function isLocalAddress(hostport: string, port: number): boolean {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(hostport);
  if (!m || Number(m[3]) !== port) return false;
  const host = m[1] ?? m[2];
  if (host === "localhost" || (isIP(host) === 4 && host.startsWith("127.")) || host === "::1") return true;
  if (!isIP(host)) return false;
  return Object.values(networkInterfaces()).some((list) => list?.some((a) => a.address === host));
}

/** Pull-through: where a RegistryServer fetches what its store lacks, once per blob. */
export class Upstream {
  readonly #resolver: DockerResolver;
  readonly registries: readonly string[];
  readonly #peerOrder: "file" | "digest";
  /** The port this server listens on, to know itself among the mirrors. */
  port: number | undefined;

  constructor(opts: UpstreamOptions) {
    if (opts.registries.length === 0) throw new Error("pull-through needs at least one upstream registry");
    this.#resolver = opts.resolver;
    this.registries = opts.registries;
    this.#peerOrder = opts.peerOrder ?? "file";
  }

  /** @internal The registry a request is pulled through from: its `?ns=`, else the first upstream; undefined when not served. */
  registryFor(ns: string | undefined): string | undefined {
    if (ns === undefined) return this.registries[0];
    return this.registries.includes(ns) ? ns : undefined;
  }

  /**
   * @internal The hosts to ask for `key` (a tag or digest): mirrors (with the loop guard)
   * up to this server itself, then the server; the server alone for a mirrored
   * request.
   */
  async hosts(registry: string, mirrored: boolean, key: string): Promise<RegistryHost[]> {
    const all = await this.#resolver.hosts(registry);
    const servers = all.filter((h) => h.isServer);
    if (mirrored) {
      if (servers.length === 0) {
        throw new NotFoundError(`${registry}: only mirrors are configured, and a mirrored request goes to none`);
      }
      return servers;
    }
    let mirrors: RegistryHost[] = all
      .filter((h) => !h.isServer)
      .map((h) => ({ ...h, header: { ...h.header, [MIRRORED_HEADER]: "true" } }));
    if (this.#peerOrder === "digest") mirrors = rendezvous(mirrors, key);
    const self = this.port === undefined ? -1 : mirrors.findIndex((h) => isLocalAddress(h.host, this.port as number));
    if (self >= 0) mirrors = mirrors.slice(0, self);
    return [...mirrors, ...servers];
  }

  /** @internal The descriptor a tag points at upstream. */
  async resolve(registry: string, repository: string, tag: string, mirrored: boolean, signal?: AbortSignal) {
    const hosts = await this.hosts(registry, mirrored, `${repository}:${tag}`);
    return (await this.#resolver.resolve(`${registry}/${repository}:${tag}`, { hosts, signal })).desc;
  }

  /** @internal A manifest's or index's bytes (verified against `desc`). */
  async manifest(registry: string, repository: string, desc: Descriptor, mirrored: boolean, signal?: AbortSignal) {
    const hosts = await this.hosts(registry, mirrored, desc.digest);
    const fetcher = await this.#resolver.fetcher(`${registry}/${repository}`, { hosts });
    return fetcher.manifest(desc, signal);
  }

  /** @internal A manifest known by digest alone: its size and bytes (the caller reads its media type from them). */
  async manifestByDigest(
    registry: string,
    repository: string,
    digest: Digest,
    mirrored: boolean,
    signal?: AbortSignal,
  ): Promise<{ desc: Descriptor; bytes: Buffer }> {
    const hosts = await this.hosts(registry, mirrored, digest);
    const fetcher = await this.#resolver.fetcher(`${registry}/${repository}`, { hosts });
    const { desc, stream } = await fetcher.fetchByDigest(digest, { mediaType: MediaType.OciManifest, signal });
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    const bytes = Buffer.concat(chunks);
    return { desc, bytes };
  }

  /** @internal Where a blob download comes from: its size (a HEAD), then its bytes from any offset. */
  async blob(
    registry: string,
    repository: string,
    digest: Digest,
    hosts: RegistryHost[],
    signal?: AbortSignal,
  ): Promise<DownloadSource> {
    const fetcher = await this.#resolver.fetcher(`${registry}/${repository}`, { hosts });
    // the store's writer verifies the blob on commit: no second hash here
    const first = await fetcher.fetchByDigest(digest, { mediaType: OCTET, signal, verify: false });
    let pending: Readable | undefined = first.stream;
    const open: OpenAt = async (offset) => {
      const s = pending;
      pending = undefined;
      if (offset === 0 && s) return s;
      s?.destroy();
      return fetcher.fetch(first.desc, { offset, signal, verify: false });
    };
    return {
      size: first.desc.size,
      open,
      discard: () => {
        pending?.destroy();
        pending = undefined;
      },
    };
  }

  /** @internal Whether the upstream has the blob in the repository (one byte is fetched to ask). */
  async has(registry: string, repository: string, digest: Digest, size: number, mirrored: boolean) {
    const hosts = await this.hosts(registry, mirrored, digest);
    const fetcher = await this.#resolver.fetcher(`${registry}/${repository}`, { hosts });
    try {
      if (size === 0) {
        (await fetcher.fetchByDigest(digest, { mediaType: OCTET })).stream.destroy();
      } else {
        const s = await fetcher.fetch({ mediaType: OCTET, digest, size }, { offset: size - 1, verify: false });
        for await (const _ of s) {
          // one byte
        }
      }
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }

  close(): Promise<void> {
    return this.#resolver.close();
  }
}
