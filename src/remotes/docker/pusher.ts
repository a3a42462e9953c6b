/**
 * Uploads to a repository. `push(desc)` answers AlreadyExistsError when the
 * registry has the blob (or mounts it from another repository), else returns a
 * content Writer: blob bytes stream into one PATCH of an upload session as they
 * are written, and commit finishes it with `PUT ?digest=`; manifests are
 * collected (at most 4 MiB) and PUT by tag or digest with their media type.
 */
import { PassThrough } from "node:stream";
import type { Status, Writer } from "../../content/content.ts";
import { checkSize, MAX_MANIFEST_SIZE, tooLarge } from "../../content/helpers.ts";
import type { Descriptor } from "../../descriptor.ts";
import { algorithmOf, type Digest, Digester, parseDigest } from "../../digest.ts";
import {
  AlreadyExistsError,
  DataLossError,
  FailedPreconditionError,
  InvalidArgumentError,
  UnavailableError,
  wrapError,
} from "../../errors.ts";
import type { Pusher } from "../remotes.ts";
import { repositoryScope } from "./challenge.ts";
import { drain, header, type RegistryClient, type RegistryResponse, type RequestSpec } from "./client.ts";
import { isManifestType, type Repository } from "./fetcher.ts";
import type { RegistryHost } from "./hosts.ts";

export interface PushOptions {
  signal?: AbortSignal;
  /** A repository of the same registry holding the blob: tried as a cross-repository mount. */
  mountFrom?: string;
}

export interface PushTarget extends Repository {
  tag?: string;
  digest?: Digest;
}

export class DockerPusher implements Pusher {
  readonly #client: RegistryClient;
  readonly #host: RegistryHost;
  readonly #target: PushTarget;

  constructor(client: RegistryClient, host: RegistryHost, target: PushTarget) {
    this.#client = client;
    this.#host = host;
    this.#target = target;
  }

  #spec(method: RequestSpec["method"], path: string, what: string, extra: Partial<RequestSpec> = {}): RequestSpec {
    const scopes = [repositoryScope(this.#target.path, true)];
    if (extra.query?.from) scopes.push(repositoryScope(extra.query.from));
    return {
      method,
      path: path.startsWith("/") ? `/${this.#target.path}${path}` : path,
      scopes,
      ref: this.#target.ref,
      what,
      namespace: this.#target.namespace,
      ...extra,
    };
  }

  /**
   * Where a manifest goes: the reference's tag when the reference names no digest
   * or names this one (pushing children first, the root last, leaves the tag on
   * the root); otherwise its digest.
   */
  manifestObject(desc: Descriptor): string {
    const { tag, digest } = this.#target;
    if (tag && (!digest || digest === desc.digest)) return tag;
    return desc.digest;
  }

  async push(desc: Descriptor, opts: PushOptions = {}): Promise<Writer> {
    try {
      parseDigest(desc.digest);
    } catch (err) {
      throw wrapError(err, this.#target.ref, "InvalidArgument");
    }
    if (!Number.isSafeInteger(desc.size) || desc.size < 0) {
      throw new InvalidArgumentError(`${this.#target.ref}: descriptor ${desc.digest} has an invalid size`);
    }
    if (isManifestType(desc.mediaType)) return this.#pushManifest(desc, opts);
    return this.#pushBlob(desc, opts);
  }

  async #exists(kind: "blobs" | "manifests", desc: Descriptor, signal?: AbortSignal): Promise<boolean> {
    const spec = this.#spec("HEAD", `/${kind}/${desc.digest}`, `checking ${desc.digest}`, { signal });
    if (kind === "manifests") spec.headers = { accept: desc.mediaType };
    const res = await this.#client.send(this.#host, spec);
    await drain(res.body);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw await this.#client.fail(res, spec);
  }

  async #pushManifest(desc: Descriptor, opts: PushOptions): Promise<Writer> {
    checkSize(`${this.#target.ref}: manifest ${desc.digest}`, desc.size, MAX_MANIFEST_SIZE);
    const object = this.manifestObject(desc);
    if (object === desc.digest && (await this.#exists("manifests", desc, opts.signal))) {
      throw new AlreadyExistsError(`${this.#target.ref}: manifest ${desc.digest} already exists`);
    }
    const put = async (body: Buffer): Promise<void> => {
      const spec = this.#spec("PUT", `/manifests/${object}`, `pushing manifest ${desc.digest}`, {
        signal: opts.signal,
        headers: { "content-type": desc.mediaType },
        body,
      });
      const res = await this.#client.send(this.#host, spec);
      if (res.status !== 201 && res.status !== 200 && res.status !== 202) throw await this.#client.fail(res, spec);
      await drain(res.body);
      const got = header(res.headers, "docker-content-digest");
      if (got && got !== desc.digest) {
        throw new DataLossError(`${this.#target.ref}: registry stored manifest as ${got}, expected ${desc.digest}`);
      }
    };
    return new BufferWriter(desc, this.#target.ref, put);
  }

  async #pushBlob(desc: Descriptor, opts: PushOptions): Promise<Writer> {
    if (await this.#exists("blobs", desc, opts.signal)) {
      throw new AlreadyExistsError(`${this.#target.ref}: blob ${desc.digest} already exists`);
    }
    const query: Record<string, string> = {};
    if (opts.mountFrom && opts.mountFrom !== this.#target.path) {
      query.mount = desc.digest;
      query.from = opts.mountFrom;
    }
    const spec = this.#spec("POST", "/blobs/uploads/", `starting upload of ${desc.digest}`, {
      signal: opts.signal,
      query,
    });
    const res = await this.#client.send(this.#host, spec);
    if (res.status === 201 && query.mount) {
      await drain(res.body);
      throw new AlreadyExistsError(`${this.#target.ref}: blob ${desc.digest} mounted from ${opts.mountFrom}`);
    }
    if (res.status !== 202) throw await this.#client.fail(res, spec);
    await drain(res.body);
    const location = this.#location(res, spec);
    return new UploadWriter(this.#client, this.#host, this.#target, desc, location, opts.signal);
  }

  #location(res: RegistryResponse, spec: RequestSpec): URL {
    const loc = header(res.headers, "location");
    if (!loc) throw new UnavailableError(`${spec.ref}: ${spec.what}: registry sent no upload Location`);
    return new URL(loc, res.url);
  }
}

function newStatus(ref: string, desc: Descriptor): Status {
  const now = new Date();
  return { ref, offset: 0, total: desc.size, expected: desc.digest, startedAt: now, updatedAt: now };
}

function checkCommit(
  ref: string,
  desc: Descriptor,
  got: { size: number; digest: Digest },
  size?: number,
  expected?: Digest,
) {
  const wantSize = size ?? desc.size;
  const wantDigest = expected ?? desc.digest;
  if (got.size !== wantSize) {
    throw new FailedPreconditionError(`${ref}: ${desc.digest}: wrote ${got.size} bytes, expected ${wantSize}`);
  }
  if (got.digest !== wantDigest) {
    throw new FailedPreconditionError(`${ref}: unexpected commit digest ${got.digest}, expected ${wantDigest}`);
  }
}

/** Collects a manifest in memory; commit sends it. */
class BufferWriter implements Writer {
  readonly #desc: Descriptor;
  readonly #ref: string;
  readonly #put: (body: Buffer) => Promise<void>;
  #chunks: Buffer[] = [];
  #digester: Digester;
  #status: Status;

  constructor(desc: Descriptor, ref: string, put: (body: Buffer) => Promise<void>) {
    this.#desc = desc;
    this.#ref = ref;
    this.#put = put;
    this.#digester = new Digester(algorithmOf(desc.digest));
    this.#status = newStatus(`push-${desc.digest}`, desc);
  }
  async write(chunk: Uint8Array): Promise<void> {
    if (this.#status.offset + chunk.length > MAX_MANIFEST_SIZE) {
      throw tooLarge(`${this.#ref}: manifest ${this.#desc.digest}`, undefined, MAX_MANIFEST_SIZE);
    }
    const b = Buffer.from(chunk);
    this.#chunks.push(b);
    this.#digester.update(b);
    this.#status.offset += b.length;
    this.#status.updatedAt = new Date();
  }
  status(): Status {
    return { ...this.#status };
  }
  digest(): Digest {
    return this.#digester.digest();
  }
  async commit(size?: number, expected?: Digest): Promise<void> {
    checkCommit(this.#ref, this.#desc, { size: this.#status.offset, digest: this.digest() }, size, expected);
    await this.#put(Buffer.concat(this.#chunks));
    this.#chunks = [];
  }
  async close(): Promise<void> {
    this.#chunks = [];
  }
  async truncate(size: 0): Promise<void> {
    if (size !== 0) throw new InvalidArgumentError("truncate: only 0 is supported");
    this.#chunks = [];
    this.#digester = new Digester(algorithmOf(this.#desc.digest));
    this.#status.offset = 0;
  }
}

/** Streams a blob into an upload session: one PATCH fed by write(), PUT ?digest= on commit. */
class UploadWriter implements Writer {
  readonly #client: RegistryClient;
  readonly #host: RegistryHost;
  readonly #target: PushTarget;
  readonly #desc: Descriptor;
  readonly #signal?: AbortSignal;
  #location: URL;
  #digester: Digester;
  #status: Status;
  #body: PassThrough | undefined;
  #patch: Promise<RegistryResponse> | undefined;
  #patchError: unknown;
  #done = false;

  constructor(
    client: RegistryClient,
    host: RegistryHost,
    target: PushTarget,
    desc: Descriptor,
    location: URL,
    signal?: AbortSignal,
  ) {
    this.#client = client;
    this.#host = host;
    this.#target = target;
    this.#desc = desc;
    this.#location = location;
    this.#signal = signal;
    this.#digester = new Digester(algorithmOf(desc.digest));
    this.#status = newStatus(`push-${desc.digest}`, desc);
  }

  #spec(method: RequestSpec["method"], what: string, extra: Partial<RequestSpec> = {}): RequestSpec {
    return {
      method,
      url: this.#location,
      scopes: [repositoryScope(this.#target.path, true)],
      ref: this.#target.ref,
      what,
      namespace: this.#target.namespace,
      signal: this.#signal,
      ...extra,
    };
  }

  #startPatch(): PassThrough {
    const body = new PassThrough({ highWaterMark: 1 << 20 });
    this.#body = body;
    this.#patch = this.#client.send(
      this.#host,
      this.#spec("PATCH", `uploading ${this.#desc.digest}`, {
        headers: { "content-type": "application/octet-stream" },
        body,
      }),
    );
    this.#patch.catch((err: unknown) => {
      this.#patchError = err;
      body.destroy();
    });
    return body;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.#done) throw new FailedPreconditionError(`${this.#target.ref}: upload of ${this.#desc.digest} is closed`);
    if (this.#patchError) throw this.#patchError;
    const body = this.#body ?? this.#startPatch();
    this.#digester.update(chunk);
    this.#status.offset += chunk.length;
    this.#status.updatedAt = new Date();
    if (!body.write(chunk)) {
      const patch = this.#patch as Promise<RegistryResponse>;
      await new Promise<void>((resolve) => {
        body.once("drain", resolve);
        body.once("close", resolve);
        patch.then(
          () => resolve(),
          () => resolve(),
        );
      });
    }
    if (this.#patchError) throw this.#patchError;
  }

  status(): Status {
    return { ...this.#status };
  }

  digest(): Digest {
    return this.#digester.digest();
  }

  async commit(size?: number, expected?: Digest): Promise<void> {
    if (this.#done) throw new FailedPreconditionError(`${this.#target.ref}: upload of ${this.#desc.digest} is closed`);
    try {
      checkCommit(this.#target.ref, this.#desc, { size: this.#status.offset, digest: this.digest() }, size, expected);
    } catch (err) {
      await this.close();
      throw err;
    }
    if (this.#body && this.#patch) {
      this.#body.end();
      const res = await this.#patch;
      if (res.status !== 202 && res.status !== 204) {
        this.#done = true;
        throw await this.#client.fail(res, { ref: this.#target.ref, what: `uploading ${this.#desc.digest}` });
      }
      await drain(res.body);
      const loc = header(res.headers, "location");
      if (loc) this.#location = new URL(loc, res.url);
    }
    const url = new URL(this.#location);
    url.searchParams.set("digest", this.#desc.digest);
    this.#location = url;
    const spec = this.#spec("PUT", `completing upload of ${this.#desc.digest}`, {
      headers: { "content-type": "application/octet-stream", "content-length": "0" },
      body: "",
    });
    const res = await this.#client.send(this.#host, spec);
    this.#done = true;
    if (res.status !== 201 && res.status !== 204) throw await this.#client.fail(res, spec);
    await drain(res.body);
    const got = header(res.headers, "docker-content-digest");
    if (got && got !== this.#desc.digest) {
      throw new DataLossError(`${this.#target.ref}: registry stored ${got}, expected ${this.#desc.digest}`);
    }
  }

  /** Abandons the upload: the registry's session is cancelled (best effort). */
  async close(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    this.#body?.destroy();
    await this.#patch?.then(
      (r) => drain(r.body),
      () => {},
    );
    try {
      const res = await this.#client.send(
        this.#host,
        this.#spec("DELETE", `cancelling upload of ${this.#desc.digest}`),
      );
      await drain(res.body);
    } catch {
      // the registry expires abandoned sessions on its own
    }
  }

  async truncate(size: 0): Promise<void> {
    if (size !== 0) throw new InvalidArgumentError("truncate: only 0 is supported");
    if (this.#status.offset === 0) return;
    throw new FailedPreconditionError(
      `${this.#target.ref}: an upload cannot be rewound; close it and push ${this.#desc.digest} again`,
    );
  }
}
