/**
 * `dist fetch-object REF [HINT...]` (the resolved object's bytes to stdout) and
 * `dist fetch REF` (every blob of the selected platforms into the content
 * store, with the seed's progress table).
 */
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Command } from "commander";
import type { Descriptor } from "../descriptor.ts";
import { type Digest, validateDigest } from "../digest.ts";
import type { FetchImageResult } from "../remotes/handlers.ts";
import type { Fetcher } from "../remotes/remotes.ts";
import { UsageError } from "./args.ts";
import { commandSignal, globals, parseSize } from "./globals.ts";
import { log } from "./log.ts";
import { holdCommandLease, openContentStore, openImageStore } from "./open.ts";
import { withProgress } from "./progress.ts";
import { addRegistryFlags, registryOptions } from "./registry-flags.ts";
import {
  addTransferFlags,
  eachRef,
  imageSummary,
  naming,
  type RefOutcome,
  reportRefFailures,
  transferFrom,
} from "./transfer.ts";

/** `kind:value` hints, as the seed's remotes.HintValues read them. */
export function parseHints(hints: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const h of hints) {
    const i = h.indexOf(":");
    if (i <= 0 || i === h.length - 1)
      throw new UsageError(
        `invalid hint "${h}": expected kind:value, e.g. mediatype:application/vnd.oci.image.manifest.v1+json`,
      );
    const kind = h.slice(0, i).toLowerCase();
    if (kind !== "mediatype" && kind !== "size")
      log.warn(`hint "${h}" ignored: only mediatype and size hints are used`);
    out.set(kind, [...(out.get(kind) ?? []), h.slice(i + 1)]);
  }
  return out;
}

/** A digest-addressed blob to fetch without resolving: a digest reference with a non-manifest `mediatype:` hint. */
async function blobRequest(
  ref: string,
  hints: Map<string, string[]>,
): Promise<{ digest: Digest; mediaType: string; size?: number } | undefined> {
  const mt = hints.get("mediatype")?.[0];
  const size = hints.get("size")?.[0];
  const { isIndex, isManifest } = await import("../images/mediatypes.ts");
  if (!mt || isManifest(mt) || isIndex(mt)) return undefined;
  const { parseReference } = await import("../reference/index.ts");
  const parsed = parseReference(ref, { defaultTag: false });
  if (!parsed.digest) throw new UsageError(`a ${mt} hint needs a reference by digest (name@sha256:…)`);
  return {
    digest: validateDigest(parsed.digest),
    mediaType: mt,
    size: size === undefined ? undefined : parseSize(size),
  };
}

/** The docker fetcher can look a digest up without a descriptor; other fetchers need a size hint. */
interface ByDigest {
  fetchByDigest(
    digest: Digest,
    opts: { mediaType?: string; signal?: AbortSignal },
  ): Promise<{ desc: Descriptor; stream: Readable }>;
}
function canFetchByDigest(f: Fetcher): f is Fetcher & ByDigest {
  return typeof (f as Partial<ByDigest>).fetchByDigest === "function";
}

function registerFetchObject(program: Command): void {
  const cmd = program
    .command("fetch-object")
    .description("resolve a reference and write the object's bytes (a manifest or index) to stdout")
    .argument("<ref>", "image reference, by tag or digest")
    .argument("[hints...]", "kind:value hints: mediatype:<type>, size:<bytes> (to fetch a blob by digest)");
  addRegistryFlags(cmd);
  cmd
    .addHelpText(
      "after",
      `
Only the object's bytes go to stdout (verified against the digest while they
stream), so the output can be piped into jq or a file.

Examples:
  dist fetch-object docker.io/library/redis:latest | jq .
  dist fetch-object --plain-http 127.0.0.1:5000/busybox@sha256:4c8f…8059
  dist fetch-object --plain-http 127.0.0.1:5000/busybox@sha256:3b28…99c4 \\
      mediatype:application/vnd.oci.image.layer.v1.tar+gzip size:2158 > layer.tgz`,
    )
    .action(async (ref: string, hintArgs: string[], opts: Record<string, unknown>, c: Command) => {
      const g = globals(c);
      const hints = parseHints(hintArgs);
      const [{ normalize, parseReference }, { createResolver }, { fetchObject }] = await Promise.all([
        import("../reference/index.ts"),
        import("../remotes/docker/index.ts"),
        import("../remotes/handlers.ts"),
      ]);
      const name = normalize(ref);
      const signal = commandSignal(g);
      const resolver = createResolver(registryOptions(opts));
      const blob = await blobRequest(name, hints);
      log.debug(`resolving ${name}`);
      if (blob) {
        const fetcher = await resolver.fetcher(name);
        let stream: Readable;
        if (blob.size !== undefined) {
          stream = await fetcher.fetch({ mediaType: blob.mediaType, digest: blob.digest, size: blob.size }, { signal });
        } else if (canFetchByDigest(fetcher)) {
          stream = (await fetcher.fetchByDigest(blob.digest, { mediaType: blob.mediaType, signal })).stream;
        } else {
          throw new UsageError(`fetching the blob ${blob.digest} needs a size:<bytes> hint`);
        }
        log.debug(`fetching ${blob.digest}`);
        await pipeline(stream, process.stdout, { signal, end: false });
        return;
      }
      // by digest the object may be any blob (the seed fetched layers this way): look it up as one
      const digest = parseReference(name, { defaultTag: false }).digest;
      const byDigest = digest ? await resolver.fetcher(name) : undefined;
      const found: { desc: Descriptor; stream: Readable } =
        digest && byDigest && canFetchByDigest(byDigest)
          ? await byDigest.fetchByDigest(validateDigest(digest), { signal }).catch((e) => {
              throw naming(name, e);
            })
          : await fetchObject(resolver, name, { signal });
      const { desc, stream } = found;
      const wanted = hints.get("mediatype");
      if (wanted && !wanted.includes(desc.mediaType)) {
        log.warn(`${name} is ${desc.mediaType}, not ${wanted.join(" or ")}`);
      }
      log.debug(`fetching ${desc.digest} (${desc.mediaType}, ${desc.size} bytes)`);
      await pipeline(stream, process.stdout, { signal, end: false });
    });
}

function registerFetch(program: Command): void {
  const cmd = program
    .command("fetch")
    .description(
      "fetch every blob of images (for the selected platforms) into the content store and record their names",
    )
    .argument("<refs...>", "image references, e.g. docker.io/library/redis:latest or 127.0.0.1:5000/app@sha256:…");
  addTransferFlags(cmd);
  cmd
    .addHelpText(
      "after",
      `
Progress goes to stdout: a table redrawn every 100 ms on a terminal, one line
per state change otherwise (or with CI=true), JSON lines with --progress json.
Blobs already in the store show as "exists"; an interrupted download resumes
where it stopped. Attestation manifests are left out unless --all-platforms is
given. Several references are fetched together, each blob they share once.

Examples:
  dist fetch docker.io/library/redis:latest
  dist fetch --plain-http 127.0.0.1:5000/busybox:latest --platform linux/arm64
  dist fetch ghcr.io/org/app:1.2 --all-platforms --max-concurrent-downloads 6
  dist fetch -u user registry.example.com/team/app:latest   # asks for the password
  dist fetch docker.io/library/redis:7 docker.io/library/redis:7-alpine`,
    )
    .action(async (refs: string[], opts: Record<string, unknown>, c: Command) => {
      const { g, names, platforms, limit, signal, resolver } = await transferFrom(refs, opts, c);
      const { FetchGroup, fetchImage } = await import("../remotes/handlers.ts");
      await holdCommandLease(g);
      const store = await openContentStore(g);
      const images = await openImageStore(g);
      const group = new FetchGroup(limit);
      let outcomes: RefOutcome<FetchImageResult>[];
      try {
        outcomes = await withProgress(async (progress) => {
          const results = await eachRef(names, progress, (name) =>
            fetchImage({
              resolver,
              store,
              ref: name,
              platforms,
              group,
              signal,
              progress: progress.tracker,
              onNote: progress.onNote,
              images,
              sourceLabels: store,
              gcLabels: store,
            }),
          );
          progress.summary.images = results.map(imageSummary);
          return results;
        });
      } finally {
        await store.close?.();
      }
      reportRefFailures(outcomes);
    });
}

export function register(program: Command): void {
  registerFetchObject(program);
  registerFetch(program);
}
