/**
 * OCI 1.1 referrers: the manifests (signatures, SBOMs, attestations) whose
 * `subject` is a given manifest. A registry with the referrers API lists them
 * at `GET /v2/<name>/referrers/<digest>` (an index, possibly paged with `Link:
 * <…>; rel="next"`); one without it answers 404, and clients keep the list in
 * an index tagged `<alg>-<hex>` (the tag schema), which the pusher updates.
 */
import { MAX_MANIFEST_SIZE, readAtMost } from "../../content/helpers.ts";
import type { Descriptor } from "../../descriptor.ts";
import { type Digest, digestOf, parseDigest } from "../../digest.ts";
import { parseIndex } from "../../images/manifest.ts";
import { MediaType } from "../../images/mediatypes.ts";
import { repositoryScope } from "./challenge.ts";
import { drain, header, type RegistryClient, type RegistryResponse, type RequestSpec } from "./client.ts";
import type { Repository } from "./fetcher.ts";
import type { RegistryHost } from "./hosts.ts";

export interface Referrers {
  /** The referrers' descriptors (mediaType, digest, size, artifactType, annotations). */
  manifests: Descriptor[];
  /** True when the registry answered through the referrers API; false: the tag schema. */
  api: boolean;
}

/** Pages of a referrers listing followed at most. */
const MAX_PAGES = 64;

/** The tag schema's tag of a subject: `<alg>-<hex>`, the parts cut to 32 and 64 characters. */
export function referrersTag(subject: Digest): string {
  const { algorithm, hex } = parseDigest(subject);
  return `${algorithm.slice(0, 32)}-${hex.slice(0, 64)}`;
}

function nextLink(res: RegistryResponse): URL | undefined {
  const link = header(res.headers, "link");
  const m = link ? /<([^>]+)>\s*;\s*rel="?next"?/i.exec(link) : null;
  if (!m) return undefined;
  try {
    const u = new URL(m[1], res.url);
    return u.protocol === res.url.protocol && u.host === res.url.host ? u : undefined;
  } catch {
    return undefined;
  }
}

async function readIndex(res: RegistryResponse, what: string): Promise<Descriptor[]> {
  const body = await readAtMost(res.body, MAX_MANIFEST_SIZE, what);
  const declared = (() => {
    try {
      const v = JSON.parse(body.toString("utf8")) as { mediaType?: unknown };
      return typeof v.mediaType === "string" ? v.mediaType : undefined;
    } catch {
      return undefined;
    }
  })();
  const desc = { mediaType: declared ?? MediaType.OciIndex, digest: digestOf(body), size: body.length };
  return parseIndex(body, desc).manifests;
}

/** The referrers of `subject` in a repository: the API, else the tag schema (an empty list when neither has any). */
export async function listReferrers(
  client: RegistryClient,
  hosts: RegistryHost[],
  repo: Repository,
  subject: Digest,
  signal?: AbortSignal,
): Promise<Referrers> {
  const what = `listing the referrers of ${subject}`;
  const spec: RequestSpec = {
    method: "GET",
    path: `/${repo.path}/referrers/${subject}`,
    headers: { accept: MediaType.OciIndex },
    scopes: [repositoryScope(repo.path)],
    ref: repo.ref,
    what,
    signal,
    namespace: repo.namespace,
  };
  let res = await client.sendAny(hosts, spec);
  if (res.status === 200) {
    const manifests: Descriptor[] = [];
    for (let page = 0; ; page++) {
      manifests.push(...(await readIndex(res, `${repo.ref}: ${what}`)));
      const next = nextLink(res);
      if (!next || page + 1 >= MAX_PAGES) break;
      res = await client.send(res.host, { ...spec, path: undefined, url: next });
      if (res.status !== 200) throw await client.fail(res, spec);
    }
    return { manifests: manifests.filter((d) => d.digest !== subject), api: true };
  }
  // no referrers API (404; some registries say 400 or 405): the tag schema
  if (res.status !== 404 && res.status !== 400 && res.status !== 405) throw await client.fail(res, spec);
  await drain(res.body);
  const tagSpec: RequestSpec = {
    ...spec,
    path: `/${repo.path}/manifests/${referrersTag(subject)}`,
    headers: { accept: `${MediaType.OciIndex}, ${MediaType.DockerManifestList}` },
  };
  const tagged = await client.sendAny(hosts, tagSpec);
  if (tagged.status === 404) {
    await drain(tagged.body);
    return { manifests: [], api: false };
  }
  if (tagged.status !== 200) throw await client.fail(tagged, tagSpec);
  return { manifests: await readIndex(tagged, `${repo.ref}: ${what}`), api: false };
}
