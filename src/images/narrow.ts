/**
 * An index narrowed to some of its manifests: what goes out when only some
 * platforms of a multi-platform image are pushed, copied or exported.
 */
import type { Descriptor } from "../descriptor.ts";
import { algorithmOf, digestOf } from "../digest.ts";
import { InvalidArgumentError } from "../errors.ts";
import { parseIndex } from "./manifest.ts";

/**
 * The index listing only the manifests of `keep` (matched by digest): the
 * entries as they were, in their order, and every other field of the index
 * unchanged, serialised anew (so with a new digest). The index itself when
 * `keep` holds all of its manifests.
 *
 * @example
 * const { desc, bytes } = narrowIndex(index, indexBytes, [amd64Manifest]);
 */
export function narrowIndex(
  index: Descriptor,
  bytes: Buffer,
  keep: readonly Descriptor[],
): { desc: Descriptor; bytes: Buffer; narrowed: boolean } {
  const all = parseIndex(bytes, index).manifests;
  const wanted = new Set<string>(keep.map((d) => d.digest));
  for (const d of wanted) {
    if (!all.some((m) => m.digest === d)) throw new InvalidArgumentError(`index ${index.digest} does not list ${d}`);
  }
  if (all.every((m) => wanted.has(m.digest))) return { desc: index, bytes, narrowed: false };
  // the raw entries: fields this reader does not model stay as they were
  const raw = JSON.parse(bytes.toString("utf8")) as { manifests: Array<{ digest: string }> };
  raw.manifests = raw.manifests.filter((m) => wanted.has(m.digest));
  const out = Buffer.from(JSON.stringify(raw));
  const desc: Descriptor = {
    mediaType: index.mediaType,
    digest: digestOf(out, algorithmOf(index.digest)),
    size: out.length,
  };
  return { desc, bytes: out, narrowed: true };
}
