/**
 * What one namespace of the store shows as a registry: repositories and tags
 * from its image names (`127.0.0.1:5000/debian/bookworm:minbase` is the
 * repository `debian/bookworm` of registry `127.0.0.1:5000`, tag `minbase`),
 * and the blobs its images reference. A blob is served when it is reachable
 * from an image of the namespace, whatever repository the request names.
 *
 * Cost with many images: the tree under a manifest digest never changes
 * (content addressing), so each tree is walked once and kept while an image
 * points at it; a change of the image records (the `changes` token, e.g.
 * SQLite's data_version, moves when another process writes) rebuilds only the
 * name index and the union of the kept trees. A tree with a child missing
 * from the store is walked again at the next rebuild.
 */
import type { Provider } from "../content/content.ts";
import { readBlob } from "../content/helpers.ts";
import type { Descriptor } from "../descriptor.ts";
import type { Digest } from "../digest.ts";
import type { Image, ImageStore } from "../images/image.ts";
import { parseIndex, parseManifest } from "../images/manifest.ts";
import { isIndex, isManifest } from "../images/mediatypes.ts";
import { parseReference } from "../reference/reference.ts";

/** One manifest or blob reachable in the namespace; `subject` for manifests that refer to another. */
interface Node {
  desc: Descriptor;
  subject?: Digest;
}

interface Tree {
  nodes: Map<Digest, Node>;
  /** False when a manifest of the tree was missing or unreadable: walked again at the next rebuild. */
  complete: boolean;
}

/** An image name read as a reference: where its tag is listed. */
export interface TaggedImage {
  registry: string;
  repository: string;
  tag: string;
  image: Image;
}

interface State {
  token: unknown;
  /** repository → tag → the images with that name in each registry. */
  tags: Map<string, Map<string, TaggedImage[]>>;
  reachable: Map<Digest, Node>;
  /** subject digest → manifests that refer to it. */
  referrers: Map<Digest, Descriptor[]>;
}

export interface StoreViewOptions {
  content: Provider;
  images: ImageStore;
  /**
   * A token that changes whenever the image records may have changed (written by
   * another process too). Without it the records are listed again every `ttlMs`.
   */
  changes?: () => unknown;
  ttlMs?: number;
}

export class StoreView {
  readonly #content: Provider;
  readonly #images: ImageStore;
  readonly #changes: (() => unknown) | undefined;
  readonly #ttlMs: number;
  #trees = new Map<Digest, Tree>();
  #state: State | undefined;
  #listedAt = 0;
  #dirty = true;
  #building: Promise<State> | undefined;

  constructor(opts: StoreViewOptions) {
    this.#content = opts.content;
    this.#images = opts.images;
    this.#changes = opts.changes;
    this.#ttlMs = opts.ttlMs ?? 1000;
  }

  /** Forget what was read: the next request lists the images again (after a change made here). */
  invalidate(): void {
    this.#dirty = true;
  }

  async #current(): Promise<State> {
    const token = this.#changes?.();
    const st = this.#state;
    const stale =
      !st || this.#dirty || (this.#changes ? token !== st.token : Date.now() - this.#listedAt > this.#ttlMs);
    if (!stale) return st;
    if (!this.#building) {
      this.#dirty = false;
      this.#building = this.#build(token).finally(() => {
        this.#building = undefined;
      });
    }
    return this.#building;
  }

  async #build(token: unknown): Promise<State> {
    this.#listedAt = Date.now();
    const images = await this.#images.list();
    const tags = new Map<string, Map<string, TaggedImage[]>>();
    const targets = new Map<Digest, Descriptor>();
    for (const image of images) {
      targets.set(image.target.digest, image.target);
      const t = tagOf(image);
      if (!t) continue;
      let byTag = tags.get(t.repository);
      if (!byTag) {
        byTag = new Map();
        tags.set(t.repository, byTag);
      }
      byTag.set(t.tag, [...(byTag.get(t.tag) ?? []), t]);
    }
    const trees = new Map<Digest, Tree>();
    for (const [digest, desc] of targets) {
      const known = this.#trees.get(digest);
      trees.set(digest, known?.complete ? known : await this.#walk(desc));
    }
    this.#trees = trees;
    const reachable = new Map<Digest, Node>();
    const referrers = new Map<Digest, Descriptor[]>();
    for (const tree of trees.values()) {
      for (const [digest, node] of tree.nodes) {
        if (reachable.has(digest)) continue;
        reachable.set(digest, node);
        if (node.subject) referrers.set(node.subject, [...(referrers.get(node.subject) ?? []), node.desc]);
      }
    }
    const state = { token, tags, reachable, referrers };
    this.#state = state;
    return state;
  }

  /** The descriptors under a root, read from the store (manifests and indexes are parsed, capped). */
  async #walk(root: Descriptor): Promise<Tree> {
    const nodes = new Map<Digest, Node>();
    let complete = true;
    const queue: Descriptor[] = [root];
    while (queue.length > 0) {
      const desc = queue.shift() as Descriptor;
      if (nodes.has(desc.digest)) continue;
      const node: Node = { desc };
      nodes.set(desc.digest, node);
      if (!isManifest(desc.mediaType) && !isIndex(desc.mediaType)) continue;
      let bytes: Buffer;
      try {
        bytes = await readBlob(this.#content, desc);
      } catch {
        // a child not fetched (another platform) or not yet stored: its subtree is unknown for now
        complete = false;
        continue;
      }
      try {
        if (isManifest(desc.mediaType)) {
          const m = parseManifest(bytes, desc);
          queue.push(m.config, ...m.layers);
          if (m.subject) node.subject = m.subject.digest;
          node.desc = withArtifactType(desc, m.artifactType ?? m.config.mediaType, m.annotations);
        } else {
          const idx = parseIndex(bytes, desc);
          queue.push(...idx.manifests);
          if (idx.subject) node.subject = idx.subject.digest;
          node.desc = withArtifactType(desc, idx.artifactType, idx.annotations);
        }
      } catch {
        // a stored manifest that does not parse serves its bytes, names no children
      }
    }
    return { nodes, complete };
  }

  /** The descriptor of a digest reachable in the namespace, or undefined. */
  async reachable(digest: Digest): Promise<Descriptor | undefined> {
    return (await this.#current()).reachable.get(digest)?.desc;
  }

  /**
   * The images tagged `repository:tag`, each with its registry. `registry` (a
   * mirror's `?ns=`, or the server's --registry) keeps only that registry's.
   */
  async tagged(repository: string, tag: string, registry?: string): Promise<TaggedImage[]> {
    const all = (await this.#current()).tags.get(repository)?.get(tag) ?? [];
    return registry === undefined ? all : all.filter((t) => t.registry === registry);
  }

  /** The tags of a repository, sorted (of `registry` only, when given). */
  async tags(repository: string, registry?: string): Promise<string[]> {
    const byTag = (await this.#current()).tags.get(repository);
    if (!byTag) return [];
    const out: string[] = [];
    for (const [tag, images] of byTag) {
      if (registry === undefined || images.some((t) => t.registry === registry)) out.push(tag);
    }
    return out.sort();
  }

  /** Every repository with a tag, sorted (of `registry` only, when given). */
  async repositories(registry?: string): Promise<string[]> {
    const out: string[] = [];
    for (const [repo, byTag] of (await this.#current()).tags) {
      if (registry === undefined || [...byTag.values()].some((l) => l.some((t) => t.registry === registry))) {
        out.push(repo);
      }
    }
    return out.sort();
  }

  /** The manifests whose subject is `digest` (OCI 1.1 referrers). */
  async referrers(digest: Digest): Promise<Descriptor[]> {
    return (await this.#current()).referrers.get(digest) ?? [];
  }
}

function withArtifactType(
  desc: Descriptor,
  artifactType: string | undefined,
  annotations: Record<string, string> | undefined,
): Descriptor {
  const out: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
  if (desc.platform) out.platform = desc.platform;
  if (artifactType) out.artifactType = artifactType;
  const a = annotations ?? desc.annotations;
  if (a && Object.keys(a).length > 0) out.annotations = a;
  return out;
}

/** Where an image name lists a tag: `host/repo:tag` (a name with a tag and a registry host). */
function tagOf(image: Image): TaggedImage | undefined {
  let ref: ReturnType<typeof parseReference>;
  try {
    ref = parseReference(image.name, { defaultTag: false });
  } catch {
    return undefined;
  }
  if (ref.tag === undefined) return undefined;
  return { registry: ref.domain, repository: ref.path, tag: ref.tag, image };
}
