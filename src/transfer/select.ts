/**
 * What of an image a push or copy sends, for the platforms asked: a manifest
 * goes as it is; of an index, the manifests the platform matchers choose
 * (among those available, for a push of what was fetched). All of them: the
 * index whole, its digest kept. A subset: one platform manifest alone when a
 * platform was named and one was chosen (its digest kept, as ctr and skopeo
 * do), else the index narrowed to the chosen ones (a new digest).
 */
import type { Descriptor } from "../descriptor.ts";
import { InvalidArgumentError, NotFoundError } from "../errors.ts";
import type { NoteFn } from "../images/children.ts";
import { filterPlatforms } from "../images/children.ts";
import { parseIndex } from "../images/manifest.ts";
import { isAttestationManifest, isIndex } from "../images/mediatypes.ts";
import { narrowIndex } from "../images/narrow.ts";
import type { PlatformMatcher } from "../images/platforms.ts";

export interface Selection {
  /** What goes under the tag. */
  desc: Descriptor;
  bytes: Buffer;
  /** "index": the index narrowed to the chosen manifests; "manifest": one manifest of the index; "no": the image's own root. */
  changed: "no" | "manifest" | "index";
  /** The index's manifests left out. */
  omitted: Descriptor[];
}

export interface SelectOptions {
  matchers: PlatformMatcher[];
  /** Whether platforms were named (--platform): a single manifest chosen then goes alone. */
  named: boolean;
  /** Which of the index's manifests can go at all (default: every one). */
  available?: (desc: Descriptor) => Promise<boolean>;
  /** Reads a manifest chosen to go alone. */
  read: (desc: Descriptor) => Promise<Buffer>;
  /** The digest the destination reference names, if any: what is chosen must be it. */
  expected?: string;
  signal?: AbortSignal;
  /** Told when what goes is not the image's own root. */
  onNote?: NoteFn;
}

/** Chooses (see the module's comment), notes a change, and checks the destination's digest. */
export async function selectPlatforms(root: Descriptor, bytes: Buffer, opts: SelectOptions): Promise<Selection> {
  const s = await choose(root, bytes, opts);
  noteSelection(root, s, opts.onNote);
  if (opts.expected && opts.expected !== s.desc.digest) {
    throw new InvalidArgumentError(`the destination names ${opts.expected}, but what goes is ${s.desc.digest}`);
  }
  return s;
}

async function choose(root: Descriptor, bytes: Buffer, opts: SelectOptions): Promise<Selection> {
  if (!isIndex(root.mediaType)) return { desc: root, bytes, changed: "no", omitted: [] };
  const all = parseIndex(bytes, root).manifests;
  const available: Descriptor[] = [];
  for (const d of all) if (!opts.available || (await opts.available(d))) available.push(d);
  if (available.length === 0 && all.length > 0) {
    throw new NotFoundError(`none of the ${all.length} manifests of index ${root.digest} is available here`);
  }
  const chosen = await filterPlatforms(async () => available, opts.matchers)(
    root,
    opts.signal ?? new AbortController().signal,
  );
  const omitted = all.filter((d) => !chosen.some((c) => c.digest === d.digest));
  if (omitted.length === 0) return { desc: root, bytes, changed: "no", omitted };
  const images = chosen.filter((d) => !isAttestationManifest(d));
  if (opts.named && images.length === 1 && !isIndex(images[0].mediaType)) {
    const one = images[0];
    const desc: Descriptor = { mediaType: one.mediaType, digest: one.digest, size: one.size };
    return { desc, bytes: await opts.read(desc), changed: "manifest", omitted: all.filter((d) => d !== one) };
  }
  const narrowed = narrowIndex(root, bytes, chosen);
  return { desc: narrowed.desc, bytes: narrowed.bytes, changed: "index", omitted };
}

/** A note when what goes is not the image's own root. */
function noteSelection(root: Descriptor, s: Selection, onNote?: NoteFn): void {
  if (!onNote || s.changed === "no") return;
  if (s.changed === "manifest") {
    onNote(s.desc, `sending the platform manifest ${s.desc.digest} alone, not the index ${root.digest}`);
  } else {
    onNote(
      s.desc,
      `sending a new index ${s.desc.digest} of ${root.digest}'s manifests without ${s.omitted.length} of them (other platforms, or not here)`,
    );
  }
}
