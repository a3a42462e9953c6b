/**
 * `push`: a local image to a registry. The platforms that go are those asked
 * for among the ones present in the content store (select.ts); the tree goes
 * blobs first, then manifests, the root under the reference's tag
 * (push-tree.ts). A blob whose distribution source labels name another
 * repository of the destination registry is mounted from it; each object
 * pushed is labelled with the destination repository in turn, so the next
 * push elsewhere on that registry mounts it too.
 */
import type { Manager, Provider } from "../content/content.ts";
import { readBlob } from "../content/helpers.ts";
import type { Descriptor } from "../descriptor.ts";
import { isNotFound, NotFoundError, wrapError } from "../errors.ts";
import type { NoteFn } from "../images/children.ts";
import type { ImageStore } from "../images/image.ts";
import { refKey } from "../images/mediatypes.ts";
import { allPlatforms, type PlatformMatcher } from "../images/platforms.ts";
import type { ProgressTracker } from "../progress/tracker.ts";
import { formatReference, parseReference } from "../reference/reference.ts";
import type { Resolver } from "../remotes/remotes.ts";
import { mountCandidate, recordDistributionSource } from "../remotes/source-labels.ts";
import { pushTree, type TransferSource } from "./push-tree.ts";
import { selectPlatforms } from "./select.ts";

/** The local content store as a push reads it: blobs, and their labels updated. */
export type LocalContent = Provider & Pick<Manager, "update">;

/** What pushImage pushes, from which store, to where, and how. */
export interface PushImageOptions {
  resolver: Resolver;
  content: LocalContent;
  images: ImageStore;
  /** Where to: `registry/repository[:tag|@digest]`. */
  ref: string;
  /** The local image's name (default: `ref`). */
  local?: string;
  /**
   * The platforms to push (one matcher each). Default: every platform present
   * in the content store; `requireAll` pushes the whole index or fails.
   */
  platforms?: PlatformMatcher[];
  /** Fail unless every manifest of the image is present (the index goes whole). */
  requireAll?: boolean;
  /** Blobs uploaded at once (default 3). */
  limit?: number;
  signal?: AbortSignal;
  progress?: ProgressTracker;
  onNote?: NoteFn;
  onWarning?: (message: string) => void;
}

/** What pushImage did. */
export interface PushImageResult {
  /** The normalised destination. */
  name: string;
  /** What went under the tag. */
  desc: Descriptor;
  /** "no": the image's own root; "manifest": one platform's manifest of its index; "index": its index narrowed. */
  changed: "no" | "manifest" | "index";
  /** Manifests and indexes pushed, children first. */
  manifests: Descriptor[];
}

async function present(content: Provider, desc: Descriptor): Promise<boolean> {
  try {
    await content.info(desc.digest);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** The content store as a transfer source: blobs by offset, mount candidates from their source labels. */
export function localSource(content: Provider, dest: { domain: string; path: string }): TransferSource {
  const missing = (desc: Descriptor, err: unknown) =>
    isNotFound(err)
      ? new NotFoundError(`${refKey(desc)} is not in the content store (fetch the image again)`, { cause: err })
      : err;
  return {
    async manifest(desc, signal) {
      try {
        return await readBlob(content, desc, { signal });
      } catch (err) {
        throw missing(desc, err);
      }
    },
    async open(desc, offset, signal) {
      try {
        return await content.openRead(desc.digest, { offset, signal });
      } catch (err) {
        throw missing(desc, err);
      }
    },
    async mountFrom(desc) {
      try {
        return mountCandidate((await content.info(desc.digest)).labels, dest.domain, dest.path);
      } catch (err) {
        throw missing(desc, err);
      }
    },
  };
}

/**
 * Pushes a local image to a registry (see the module's comment).
 *
 * @example
 * const r = await pushImage({ resolver: createResolver(), content: namespacedContentStore(root),
 *   images: openSqliteImageStore(root, "default"), ref: "registry.example.com/team/app:1",
 *   local: "docker.io/library/busybox:latest" });
 */
export async function pushImage(opts: PushImageOptions): Promise<PushImageResult> {
  const { content, signal } = opts;
  const dest = parseReference(opts.ref);
  const name = formatReference(dest);
  const localName = opts.local === undefined ? name : formatReference(parseReference(opts.local));
  const image = await opts.images.get(localName).catch((err: unknown) => {
    throw isNotFound(err)
      ? new NotFoundError(`image ${localName} not found (see dist images ls)`, { cause: err })
      : err;
  });
  const source = localSource(content, dest);
  const rootBytes = await source.manifest(image.target, signal);
  const selection = await selectPlatforms(image.target, rootBytes, {
    matchers: opts.platforms ?? [allPlatforms()],
    named: opts.platforms !== undefined && !opts.platforms.some((m) => m.all),
    available: opts.requireAll ? undefined : (d) => present(content, d),
    read: (d) => source.manifest(d, signal),
    expected: dest.digest,
    signal,
    onNote: opts.onNote,
  });
  const pusher = await opts.resolver.pusher(name);
  const tree = await pushTree({
    source,
    pusher,
    root: selection,
    tag: dest.digest ? undefined : dest.tag,
    limit: opts.limit,
    signal,
    progress: opts.progress,
    onNote: opts.onNote,
    onPushed: async (desc) => {
      try {
        await recordDistributionSource(content, desc.digest, name, opts.onWarning);
      } catch (err) {
        opts.onWarning?.(wrapError(err, `${desc.digest}: recording its source ${name}`).message);
      }
    },
  });
  return { name, desc: selection.desc, changed: selection.changed, manifests: tree.manifests };
}
