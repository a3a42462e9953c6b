/**
 * The OCI distribution Resolver: turns a reference into its normalised name and
 * root descriptor (HEAD the manifest, GET when HEAD is refused or says too
 * little, the body's digest checked), and hands out Fetchers and Pushers for a
 * repository. Hosts, auth, retries and errors live in the modules it composes.
 */
import { checkSize, MAX_MANIFEST_SIZE, readAtMost, tooLarge } from "../../content/helpers.ts";
import type { Descriptor } from "../../descriptor.ts";
import { type Digest, digestOf, isAlgorithm, parseDigest } from "../../digest.ts";
import { DataLossError, InvalidArgumentError } from "../../errors.ts";
import { baseMediaType, isIndex, isManifest, isSchema1, MANIFEST_ACCEPT } from "../../images/mediatypes.ts";
import { formatReference, objectOf, parseReference, type Reference } from "../../reference/reference.ts";
import type { Resolved, Resolver } from "../remotes.ts";
import { repositoryScope } from "./challenge.ts";
import { drain, header, RegistryClient, type RegistryResponse, type RequestSpec } from "./client.ts";
import { dataLoss, httpError } from "./errors.ts";
import { DockerFetcher, ManifestCache } from "./fetcher.ts";
import { hostsWith, type RegistryHost, registryHosts } from "./hosts.ts";
import type { RegistryOptions } from "./options.ts";
import { DockerPusher } from "./pusher.ts";
import { isRetryableStatus } from "./retry.ts";

/** Per call: the hosts to try instead of those of the namespace (a registry server picks its own). */
export interface HostChoice {
  hosts?: RegistryHost[];
}

/** The Resolver of createResolver: a Resolver whose connection pools close. */
export interface DockerResolver extends Resolver {
  /** @internal with the hosts to try (a registry server picks its own) */
  resolve(ref: string, opts?: { signal?: AbortSignal } & HostChoice): Promise<Resolved>;
  /** @internal the registry client's own fetcher (a consumer sees Resolver's) */
  fetcher(ref: string, opts?: HostChoice): Promise<DockerFetcher>;
  /** @internal the registry client's own pusher (a consumer sees Resolver's) */
  pusher(ref: string): Promise<DockerPusher>;
  /** @internal The hosts tried for a namespace (a reference's domain), in order. */
  hosts(namespace: string): Promise<RegistryHost[]>;
  /** Closes the connection pools. */
  close(): Promise<void>;
}

const SCHEMA1_HINT = "schema 1 manifests are not supported (push the image again with a current client)";

function schema1Error(name: string, mediaType: string): InvalidArgumentError {
  return new InvalidArgumentError(`${name}: resolving: ${SCHEMA1_HINT}; got ${mediaType}`);
}

function isKnownManifest(mt: string): boolean {
  return isManifest(mt) || isIndex(mt);
}

/** The media type of a manifest body when Content-Type did not say (`mediaType`, else the shape). */
function sniffMediaType(name: string, body: Buffer): string {
  let v: { mediaType?: unknown; schemaVersion?: unknown; manifests?: unknown; config?: unknown };
  try {
    v = JSON.parse(body.toString("utf8")) as typeof v;
  } catch {
    throw new DataLossError(`${name}: resolving: manifest is not valid JSON`);
  }
  if (!v || typeof v !== "object") throw new DataLossError(`${name}: resolving: manifest is not a JSON object`);
  if (v.schemaVersion === 1) throw schema1Error(name, "schemaVersion 1");
  if (typeof v.mediaType === "string" && v.mediaType) return baseMediaType(v.mediaType);
  if (Array.isArray(v.manifests)) return MANIFEST_ACCEPT[0];
  if (v.config && typeof v.config === "object") return MANIFEST_ACCEPT[1];
  throw new InvalidArgumentError(`${name}: resolving: the registry returned something that is not a manifest`);
}

class Impl implements DockerResolver {
  readonly #client: RegistryClient;
  readonly #hosts = new Map<string, Promise<RegistryHost[]>>();
  readonly #cache = new ManifestCache();

  constructor(opts: RegistryOptions) {
    this.#client = new RegistryClient(opts);
  }

  hosts(namespace: string): Promise<RegistryHost[]> {
    let p = this.#hosts.get(namespace);
    if (!p) {
      const o = this.#client.opts;
      p = registryHosts(namespace, {
        plainHttp: o.plainHttp,
        tlsCaCert: o.tlsCaCert,
        skipVerify: o.skipVerify,
        hostsDir: o.hostsDir,
        onDebug: o.onDebug,
      });
      p.catch(() => this.#hosts.delete(namespace));
      this.#hosts.set(namespace, p);
    }
    return p;
  }

  async resolve(input: string, opts: { signal?: AbortSignal } & HostChoice = {}): Promise<Resolved> {
    const ref = parseReference(input);
    const name = formatReference(ref);
    const hosts = hostsWith(opts.hosts ?? (await this.hosts(ref.domain)), "resolve", ref.domain);
    const object = objectOf(ref);
    const spec: RequestSpec = {
      method: "HEAD",
      path: `/${ref.path}/manifests/${object}`,
      headers: { accept: MANIFEST_ACCEPT.join(", ") },
      scopes: [repositoryScope(ref.path)],
      ref: name,
      what: "resolving",
      signal: opts.signal,
      namespace: ref.domain,
    };
    const head = await this.#client.sendAny(hosts, spec);
    await drain(head.body);
    if (head.status === 200) {
      const desc = this.#fromHead(name, ref, head);
      if (desc) return { name, desc };
    }
    if (isRetryableStatus(head.status)) {
      // retried already: a GET would only wait as long again
      throw httpError({ ref: name, what: "resolving", status: head.status, host: head.host.host });
    }
    // HEAD refused (405), failed (the body says why only on GET) or said too little
    const res = await this.#client.send(head.host, { ...spec, method: "GET" });
    if (res.status !== 200) throw await this.#client.fail(res, spec);
    return { name, desc: await this.#fromGet(name, ref, res) };
  }

  #fromHead(name: string, ref: Reference, res: RegistryResponse): Descriptor | undefined {
    const ct = baseMediaType(header(res.headers, "content-type") ?? "");
    if (isSchema1(ct)) throw schema1Error(name, ct);
    const dcd = header(res.headers, "docker-content-digest");
    const len = header(res.headers, "content-length");
    if (!dcd || len === undefined || !isKnownManifest(ct)) return undefined;
    let digest: Digest;
    try {
      parseDigest(dcd);
      digest = dcd as Digest;
    } catch {
      throw dataLoss(name, "resolving", `registry sent an invalid Docker-Content-Digest "${dcd.slice(0, 100)}"`);
    }
    if (ref.digest && ref.digest !== digest) {
      throw dataLoss(name, "resolving", `registry answered with ${digest}, the reference asks for ${ref.digest}`);
    }
    const size = Number(len);
    if (!Number.isSafeInteger(size) || size < 0) return undefined;
    checkSize(`${name}: resolving: manifest`, size, MAX_MANIFEST_SIZE);
    return { mediaType: ct, digest, size };
  }

  async #fromGet(name: string, ref: Reference, res: RegistryResponse): Promise<Descriptor> {
    const len = header(res.headers, "content-length");
    if (len !== undefined && Number(len) > MAX_MANIFEST_SIZE) {
      res.body.destroy();
      throw tooLarge(`${name}: resolving: manifest`, Number(len), MAX_MANIFEST_SIZE);
    }
    const body = await readAtMost(res.body, MAX_MANIFEST_SIZE, `${name}: resolving: manifest`);
    let ct = baseMediaType(header(res.headers, "content-type") ?? "");
    if (isSchema1(ct)) throw schema1Error(name, ct);
    if (!isKnownManifest(ct)) ct = sniffMediaType(name, body);
    if (isSchema1(ct)) throw schema1Error(name, ct);
    const dcd = header(res.headers, "docker-content-digest");
    const wants = [dcd, ref.digest].filter((d): d is string => d !== undefined && d !== "");
    let digest: Digest | undefined;
    for (const want of wants) {
      const alg = want.slice(0, want.indexOf(":"));
      if (!isAlgorithm(alg)) throw dataLoss(name, "resolving", `unsupported digest "${want.slice(0, 100)}"`);
      const actual = digestOf(body, alg);
      if (actual !== want) {
        throw dataLoss(name, "resolving", `manifest digest mismatch: body is ${actual}, expected ${want}`);
      }
      digest = actual;
    }
    digest ??= digestOf(body);
    this.#cache.set(digest, body);
    return { mediaType: ct, digest, size: body.length };
  }

  async #repository(input: string) {
    const ref = parseReference(input);
    return { ref, repo: { ref: formatReference(ref), namespace: ref.domain, path: ref.path } };
  }

  async fetcher(input: string, opts: HostChoice = {}): Promise<DockerFetcher> {
    const { ref, repo } = await this.#repository(input);
    const hosts = hostsWith(opts.hosts ?? (await this.hosts(ref.domain)), "pull", ref.domain);
    return new DockerFetcher(this.#client, hosts, repo, this.#cache);
  }

  async pusher(input: string): Promise<DockerPusher> {
    const { ref, repo } = await this.#repository(input);
    const [host] = hostsWith(await this.hosts(ref.domain), "push", ref.domain);
    return new DockerPusher(this.#client, host, { ...repo, tag: ref.tag, digest: ref.digest });
  }

  close(): Promise<void> {
    return this.#client.close();
  }
}

/** A Resolver for OCI distribution registries (Docker Hub, GHCR, distribution, Harbor, …). */
export function createResolver(opts: RegistryOptions = {}): DockerResolver {
  return new Impl(opts);
}
