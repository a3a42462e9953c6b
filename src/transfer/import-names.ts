/**
 * The names an import records, as `ctr images import` gives them
 * (containerd's import.go and images/archive/reference.go): a manifest's
 * `io.containerd.image.name` as it is, else its `org.opencontainers.image.ref.name`,
 * which, when it is only a tag, is put after a base name (`--base-name`, by
 * default `import-YYYY-MM-DD`), and, when it is a full name, is kept only if
 * it starts with the base name the user gave. `name` names the archive's one
 * image instead; `digests` adds `<base>@<digest>` for each image.
 */
import type { Descriptor } from "../descriptor.ts";
import { InvalidArgumentError } from "../errors.ts";
import { newImageName } from "../images/names.ts";
import { ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME } from "./oci-layout.ts";

/** How an import names the images of an archive (see the module comment). */
export interface NamingOptions {
  /** The name of the archive's one image (an archive of several is refused). */
  name?: string;
  /** Prefix for tag-only names; when given, full names outside it are left out. */
  baseName?: string;
  /** Also record every image as `<base>@<digest>`. */
  digests?: boolean;
  /** Today, for the default base name. */
  now?: Date;
}

export interface NamedImage {
  name: string;
  target: Descriptor;
}

/** Names longer than this, or with control characters, are not names (they come from a hostile file). */
const MAX_NAME = 1024;

/** containerd's isImagePrefix: `s` is `prefix` or continues it with `/`, `:` or `@`. */
function hasPrefix(s: string, prefix: string): boolean {
  if (!s.startsWith(prefix)) return false;
  return s.length === prefix.length || "/:@".includes(s[prefix.length]);
}

/** The default base name: `import-2025-01-31`, as ctr makes it. */
export function defaultBaseName(now = new Date()): string {
  return `import-${now.toISOString().slice(0, 10)}`;
}

/**
 * The images to record for the descriptors of an archive's index, and notes
 * about those left unnamed or out. Several names may point at one image; a
 * name given twice keeps its last image.
 */
export function importNames(
  entries: Descriptor[],
  opts: NamingOptions = {},
): { images: NamedImage[]; notes: string[] } {
  const notes: string[] = [];
  const out = new Map<string, Descriptor>();
  if (opts.name !== undefined) {
    const targets = new Map(entries.map((e) => [e.digest, e]));
    if (targets.size !== 1) {
      throw new InvalidArgumentError(
        `a name for the archive's image needs an archive of one image, this one has ${targets.size} (use --base-name)`,
      );
    }
    const [target] = targets.values();
    return { images: [{ name: newImageName(opts.name), target }], notes };
  }
  const base = opts.baseName ?? defaultBaseName(opts.now);
  const translate = (ref: string): string | undefined => {
    if (ref.startsWith("@")) return `${base}${ref}`;
    if (!/[/:@]/.test(ref)) return `${base}:${ref}`;
    if (opts.baseName !== undefined && !hasPrefix(ref, opts.baseName)) return undefined;
    return ref;
  };
  for (const e of entries) {
    const full = e.annotations?.[ANNOTATION_IMAGE_NAME];
    const ref = e.annotations?.[ANNOTATION_REF_NAME];
    let name = full || (ref ? translate(ref) : undefined);
    if (name === undefined && ref) notes.push(`${ref} (${e.digest}) is not under ${base}: not imported`);
    else if (name !== undefined && !valid(name)) {
      notes.push(`${e.digest}: the archive's name ${JSON.stringify(name.slice(0, 80))} is not usable: left out`);
      name = undefined;
    } else if (name === undefined && !opts.digests) {
      notes.push(`${e.digest} has no name in the archive: not recorded (use --name or --digests)`);
    }
    if (name !== undefined) out.set(newImageName(name), e);
    if (opts.digests) out.set(newImageName(`${base}@${e.digest}`), e);
  }
  return { images: [...out].map(([name, target]) => ({ name, target })), notes };
}

function valid(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME && !/[\x00-\x1f\x7f]/.test(name);
}
