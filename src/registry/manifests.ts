/**
 * Manifests, tags, the catalog and referrers. A tag is looked up among the
 * namespace's image names (in the registry of `?ns=` or --registry when
 * given, else in whichever registry holds that repository, refusing to guess
 * between two); with pull-through the upstream is asked first and what it
 * answers is stored and recorded, as a pull would. An index goes to a client
 * that does not accept indexes as its linux/amd64 manifest.
 */
import { Readable } from "node:stream";
import { MAX_MANIFEST_SIZE, readAtMost, readBlob, tooLarge, writeBlob } from "../content/helpers.ts";
import type { Descriptor } from "../descriptor.ts";
import { type Digest, digestOf, parseDigest } from "../digest.ts";
import { errorMessage, isNotFound } from "../errors.ts";
import { labelChildren } from "../images/gc-labels.ts";
import { selectManifest } from "../images/lookup.ts";
import { childrenOf, parseIndex, parseManifest } from "../images/manifest.ts";
import { baseMediaType, isIndex, isManifest, MediaType } from "../images/mediatypes.ts";
import { only, parsePlatform } from "../images/platforms.ts";
import { storedSize } from "./blobs.ts";
import { type Context, namespaceOf, pushRegistry, registryOf } from "./context.ts";
import { manifestUnknown, RegistryError, unsupported } from "./errors.ts";
import { type Request, type Response, sendEmpty, sendJson } from "./http.ts";
import { isMirrored } from "./upstream.ts";

/**
 * Stores a verified manifest (nothing happens when it is there already),
 * labelled for its children as a fetch labels it, so garbage collection keeps
 * what an image naming it reaches.
 */
async function storeManifest(ctx: Context, desc: Descriptor, bytes: Buffer): Promise<void> {
  await writeBlob(ctx.content, `manifest-${desc.digest}`, Readable.from([bytes]), {
    expected: desc.digest,
    size: desc.size,
  });
  await labelChildren(ctx.content, desc, childrenOf(desc, bytes));
}

/** Records `name` → `target` unless it is so already (a write wakes every reader of the records). */
async function record(ctx: Context, name: string, target: Descriptor): Promise<void> {
  try {
    const cur = await ctx.images.get(name);
    if (cur.target.digest === target.digest && cur.target.mediaType === target.mediaType) return;
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  await ctx.images.put({ name, target, labels: {} });
  ctx.view.invalidate();
}

/** The tag's descriptor upstream, its manifest stored and its name recorded; undefined when not pulled through. */
async function pullTag(ctx: Context, req: Request, name: string, tag: string, registry: string | undefined) {
  const through = ctx.upstream?.registryFor(registry);
  if (!ctx.upstream || !through) return undefined;
  const mirrored = isMirrored(req.headers);
  try {
    const desc = await ctx.upstream.resolve(through, name, tag, mirrored);
    if ((await storedSize(ctx, desc.digest)) === undefined) {
      await storeManifest(ctx, desc, await ctx.upstream.manifest(through, name, desc, mirrored));
    }
    await record(ctx, `${through}/${name}:${tag}`, desc);
    return desc;
  } catch (err) {
    // the local records answer when the upstream cannot
    ctx.onWarning?.(`pull-through of ${through}/${name}:${tag}: ${errorMessage(err)}`);
    return undefined;
  }
}

async function byTag(ctx: Context, req: Request, name: string, tag: string, ns: string | undefined) {
  const registry = registryOf(ctx, ns);
  const pulled = await pullTag(ctx, req, name, tag, registry);
  if (pulled) return pulled;
  const found = await ctx.view.tagged(name, tag, registry);
  if (found.length === 0) throw manifestUnknown(name, tag);
  if (found.length > 1) {
    const registries = found.map((t) => t.registry).join(", ");
    throw manifestUnknown(
      name,
      tag,
      `several registries hold it (${registries}): ask with ?ns=REGISTRY or start dist serve with --registry`,
    );
  }
  return found[0].image.target;
}

async function byDigest(ctx: Context, req: Request, name: string, digest: Digest, ns: string | undefined) {
  const reachable = await ctx.view.reachable(digest);
  const known = reachable && (isManifest(reachable.mediaType) || isIndex(reachable.mediaType)) ? reachable : undefined;
  if (known && (await storedSize(ctx, digest)) !== undefined) return known;
  const through = ctx.upstream?.registryFor(registryOf(ctx, ns));
  if (!ctx.upstream || !through) throw manifestUnknown(name, digest, known ? "it is not in the store" : "");
  const mirrored = isMirrored(req.headers);
  try {
    // a child of an index recorded earlier (its descriptor says what it is), or a digest alone
    let got: { desc: Descriptor; bytes: Buffer };
    if (known) got = { desc: known, bytes: await ctx.upstream.manifest(through, name, known, mirrored) };
    else {
      const { desc, bytes } = await ctx.upstream.manifestByDigest(through, name, digest, mirrored);
      got = { desc: { ...desc, mediaType: manifestType(undefined, bytes) }, bytes };
    }
    await storeManifest(ctx, got.desc, got.bytes);
    // the tree above it can be walked further now
    ctx.view.invalidate();
    return got.desc;
  } catch (err) {
    if (isNotFound(err)) throw manifestUnknown(name, digest);
    throw err;
  }
}

function acceptsIndex(accept: string | undefined): boolean {
  if (!accept) return true;
  const types = accept.split(",").map((t) => baseMediaType(t));
  return types.some((t) => t === "*/*" || isIndex(t));
}

export async function getManifest(
  ctx: Context,
  req: Request,
  res: Response,
  name: string,
  reference: string,
  digest: Digest | undefined,
  query: URLSearchParams,
): Promise<void> {
  const ns = namespaceOf(query);
  let desc = digest ? await byDigest(ctx, req, name, digest, ns) : await byTag(ctx, req, name, reference, ns);
  let bytes: Buffer;
  try {
    bytes = await readBlob(ctx.content, desc);
  } catch (err) {
    if (isNotFound(err)) throw manifestUnknown(name, reference, "its manifest is not in the store");
    throw err;
  }
  if (!digest && isIndex(desc.mediaType) && !acceptsIndex(req.headers.accept)) {
    // an old client: the linux/amd64 manifest, as the CNCF registry does
    try {
      const picked = await selectManifest(ctx.content, desc, bytes, only(parsePlatform("linux/amd64")));
      desc = picked.desc;
      bytes = await readBlob(ctx.content, desc);
    } catch (err) {
      if (isNotFound(err)) throw manifestUnknown(name, reference, "an index, and the client accepts none");
      throw err;
    }
  }
  const headers = {
    "content-type": desc.mediaType,
    "content-length": String(bytes.length),
    "docker-content-digest": desc.digest,
    etag: `"${desc.digest}"`,
  };
  res.writeHead(200, headers);
  res.end(req.method === "HEAD" ? undefined : bytes);
}

/** Children a pushed manifest names that the store lacks (foreign layers aside). */
async function missingChildren(ctx: Context, mediaType: string, bytes: Buffer, desc: Descriptor) {
  let children: Descriptor[];
  try {
    if (isManifest(mediaType)) {
      const m = parseManifest(bytes, desc);
      children = [m.config, ...m.layers.filter((l) => !(l.urls && l.urls.length > 0))];
    } else {
      children = parseIndex(bytes, desc).manifests;
    }
  } catch (err) {
    throw new RegistryError(400, "MANIFEST_INVALID", errorMessage(err));
  }
  const missing: Digest[] = [];
  for (const c of children) if ((await storedSize(ctx, c.digest)) === undefined) missing.push(c.digest);
  return missing;
}

/** A manifest's media type: the Content-Type it came with, else the one it declares, else its shape. */
function manifestType(contentType: string | undefined, bytes: Buffer): string {
  const ct = baseMediaType(contentType ?? "");
  if (isManifest(ct) || isIndex(ct)) return ct;
  let v: { mediaType?: unknown; manifests?: unknown };
  try {
    v = JSON.parse(bytes.toString("utf8"));
  } catch {
    throw new RegistryError(400, "MANIFEST_INVALID", "the manifest is not valid JSON");
  }
  if (typeof v.mediaType === "string" && (isManifest(v.mediaType) || isIndex(v.mediaType))) return v.mediaType;
  if (ct === "" || ct === "application/json")
    return Array.isArray(v.manifests) ? MediaType.OciIndex : MediaType.OciManifest;
  throw new RegistryError(400, "MANIFEST_INVALID", `unsupported manifest media type "${ct}"`);
}

export async function putManifest(
  ctx: Context,
  req: Request,
  res: Response,
  name: string,
  reference: string,
  digest: Digest | undefined,
): Promise<void> {
  if (!ctx.allowPush) throw unsupported("push is disabled: start dist serve with --allow-push");
  const length = Number(req.headers["content-length"] ?? Number.NaN);
  if (length > MAX_MANIFEST_SIZE)
    throw new RegistryError(413, "SIZE_INVALID", tooLarge("manifest", length, MAX_MANIFEST_SIZE).message);
  let bytes: Buffer;
  try {
    bytes = await readAtMost(req, MAX_MANIFEST_SIZE, "manifest");
  } catch (err) {
    throw new RegistryError(413, "SIZE_INVALID", errorMessage(err));
  }
  const mediaType = manifestType(req.headers["content-type"], bytes);
  const actual = digestOf(bytes, digest ? parseDigest(digest).algorithm : "sha256");
  if (digest && digest !== actual) {
    throw new RegistryError(400, "DIGEST_INVALID", `the manifest's digest is ${actual}, not ${digest}`);
  }
  const desc: Descriptor = { mediaType, digest: actual, size: bytes.length };
  const missing = await missingChildren(ctx, mediaType, bytes, desc);
  if (missing.length > 0) {
    throw new RegistryError(
      400,
      "MANIFEST_BLOB_UNKNOWN",
      `the manifest names blobs this registry lacks: ${missing.join(", ")}`,
      {
        detail: { digests: missing },
      },
    );
  }
  await storeManifest(ctx, desc, bytes);
  const registry = pushRegistry(ctx, req);
  await record(ctx, digest ? `${registry}/${name}@${actual}` : `${registry}/${name}:${reference}`, desc);
  const headers: Record<string, string> = {
    location: `/v2/${name}/manifests/${actual}`,
    "docker-content-digest": actual,
  };
  const subject = subjectOf(bytes);
  if (subject) headers["oci-subject"] = subject;
  sendEmpty(res, 201, headers);
}

function subjectOf(bytes: Buffer): string | undefined {
  try {
    const v = JSON.parse(bytes.toString("utf8")) as { subject?: { digest?: unknown } };
    return typeof v.subject?.digest === "string" ? v.subject.digest : undefined;
  } catch {
    return undefined;
  }
}

/** `n` and `last` pagination of a sorted list, with the Link header of the next page. */
function paginate(items: string[], query: URLSearchParams, path: string) {
  const last = query.get("last");
  let out = last === null ? items : items.filter((x) => x > last);
  const nRaw = query.get("n");
  const headers: Record<string, string> = {};
  if (nRaw !== null) {
    const n = Number(nRaw);
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new RegistryError(400, "UNSUPPORTED", `invalid n "${nRaw.slice(0, 20)}": a count of entries`);
    }
    if (out.length > n) {
      out = out.slice(0, n);
      const next = new URLSearchParams({ n: String(n), last: out[out.length - 1] ?? "" });
      headers.link = `<${path}?${next}>; rel="next"`;
    }
  }
  return { items: out, headers };
}

export async function listTags(ctx: Context, req: Request, res: Response, name: string, query: URLSearchParams) {
  const registry = registryOf(ctx, namespaceOf(query));
  const tags = await ctx.view.tags(name, registry);
  if (tags.length === 0) {
    throw new RegistryError(404, "NAME_UNKNOWN", `repository ${name} not known to this registry`, { detail: { name } });
  }
  const page = paginate(tags, query, `/v2/${name}/tags/list`);
  sendJson(req, res, 200, { name, tags: page.items }, page.headers);
}

export async function catalog(ctx: Context, req: Request, res: Response, query: URLSearchParams) {
  const repos = await ctx.view.repositories(registryOf(ctx, namespaceOf(query)));
  const page = paginate(repos, query, "/v2/_catalog");
  sendJson(req, res, 200, { repositories: page.items }, page.headers);
}

export async function referrers(ctx: Context, req: Request, res: Response, digest: Digest, query: URLSearchParams) {
  const artifactType = query.get("artifactType");
  let manifests = await ctx.view.referrers(digest);
  const headers: Record<string, string> = {};
  if (artifactType !== null) {
    manifests = manifests.filter((m) => m.artifactType === artifactType);
    headers["oci-filters-applied"] = "artifactType";
  }
  const body = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests };
  const bytes = Buffer.from(JSON.stringify(body));
  res.writeHead(200, { "content-type": MediaType.OciIndex, "content-length": bytes.length, ...headers });
  res.end(req.method === "HEAD" ? undefined : bytes);
}
