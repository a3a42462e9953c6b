/**
 * Distribution source labels (containerd's remotes/docker/handler.go): each
 * blob fetched carries `containerd.io/distribution.source.<host>` listing the
 * repositories of that registry it came from (sorted, comma-separated), so a
 * later push to another repository of the same registry can mount the blob
 * (`?mount=<digest>&from=<repo>`) instead of uploading it. `<host>` is the
 * registry's host name without its port, as containerd writes it.
 */
import type { Manager, Provider } from "../content/content.ts";
import type { Handler } from "../images/handlers.ts";
import { parseReference } from "../reference/reference.ts";

export const DISTRIBUTION_SOURCE_PREFIX = "containerd.io/distribution.source.";
/** containerd's limit on a label's key and value together. */
const MAX_LABEL = 4096;

/** `host[:port]` of a reference domain → the label key (`containerd.io/distribution.source.127.0.0.1`). */
export function distributionSourceKey(domain: string): string {
  return DISTRIBUTION_SOURCE_PREFIX + new URL(`dummy://${domain}`).hostname.replace(/^\[|\]$/g, "");
}

/** A label value with `repo` added: sorted, without duplicates. */
export function appendDistributionSource(value: string | undefined, repo: string): string {
  const repos = new Set((value ?? "").split(",").filter((r) => r !== ""));
  repos.add(repo);
  return [...repos].sort().join(",");
}

/**
 * The repository to mount a blob from when pushing to `domain/path`: among
 * those its labels list for that registry (the target itself excluded), the
 * one sharing the most leading path components with the target (the last of
 * equals), as containerd picks it.
 */
export function mountCandidate(labels: Record<string, string>, domain: string, path: string): string | undefined {
  const value = labels[distributionSourceKey(domain)];
  if (!value) return undefined;
  const target = path.split("/");
  let best: string | undefined;
  let bestCommon = 0;
  for (const repo of value.split(",")) {
    if (repo === "" || repo === path) continue;
    const parts = repo.split("/");
    let common = 0;
    while (common < target.length && common < parts.length && target[common] === parts[common]) common++;
    if (common >= bestCommon) {
      bestCommon = common;
      best = repo;
    }
  }
  return best;
}

/** Adds `ref`'s repository to a blob's source label (nothing when the label would grow past containerd's limit). */
export async function recordDistributionSource(
  store: Pick<Provider, "info"> & Pick<Manager, "update">,
  digest: Parameters<Provider["info"]>[0],
  ref: string,
  onWarning?: (message: string) => void,
): Promise<void> {
  const r = parseReference(ref);
  const key = distributionSourceKey(r.domain);
  const info = await store.info(digest);
  const value = appendDistributionSource(info.labels[key], r.path);
  if (value === info.labels[key]) return;
  if (key.length + value.length > MAX_LABEL) {
    onWarning?.(`${digest}: not recording ${r.path} as a source: the ${key} label would exceed ${MAX_LABEL} bytes`);
    return;
  }
  await store.update(digest, { [key]: value }, [`labels.${key}`]);
}

/** A handler that records each descriptor it sees as coming from `ref`'s repository; no children. */
export function distributionSourceHandler(
  store: Pick<Provider, "info"> & Pick<Manager, "update">,
  ref: string,
  onWarning?: (message: string) => void,
): Handler {
  parseReference(ref);
  return async (desc) => {
    await recordDistributionSource(store, desc.digest, ref, onWarning);
    return [];
  };
}
