/**
 * Image references: the distribution/reference grammar, written from its
 * specification, and Docker's normalisation rules.
 *
 *   reference        := name [ ":" tag ] [ "@" digest ]
 *   name             := [ domain "/" ] path
 *   domain           := host [ ":" port ]
 *   host             := domain-name | IPv4 | "[" IPv6 "]"
 *   domain-name      := component ( "." component )*   component := [A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?
 *   path             := path-component ( "/" path-component )*
 *   path-component   := [a-z0-9]+ ( separator [a-z0-9]+ )*   separator := [_.] | "__" | "-"+
 *   tag              := [\w][\w.-]{0,127}
 *   digest           := algorithm ":" hex   (validated by src/digest.ts: sha256 or sha512)
 *
 * `parseReference` normalises like Docker: `redis` → `docker.io/library/redis:latest`,
 * `index.docker.io/x` → `docker.io/x`; a first component is a domain only when it has a
 * `.` or `:`, is `localhost`, or has uppercase letters. `parseStrict` is the raw grammar.
 */
import { type Digest, parseDigest } from "../digest.ts";
import { InvalidArgumentError } from "../errors.ts";

/** A parsed image reference: domain, path, tag and/or digest. */
export interface Reference {
  /** Registry domain, e.g. `docker.io`, `127.0.0.1:5000`, `[::1]:5000`. Empty only from parseStrict. */
  domain: string;
  /** Repository path inside the registry, e.g. `library/redis`. */
  path: string;
  tag?: string;
  digest?: Digest;
}

export const DEFAULT_DOMAIN = "docker.io";
export const LEGACY_DEFAULT_DOMAIN = "index.docker.io";
export const OFFICIAL_REPO_PREFIX = "library/";
export const DEFAULT_TAG = "latest";
export const NAME_TOTAL_LENGTH_MAX = 255;
export const TAG_LENGTH_MAX = 128;

const ALNUM = "[a-z0-9]+";
const SEPARATOR = "(?:[._]|__|[-]+)";
const PATH_COMPONENT = `${ALNUM}(?:${SEPARATOR}${ALNUM})*`;
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN_NAME = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*`;
const IPV6 = "\\[(?:[a-fA-F0-9:]+)\\]";
const HOST = `(?:${DOMAIN_NAME}|${IPV6})`;
const DOMAIN = `${HOST}(?::[0-9]+)?`;
const TAG = "[\\w][\\w.-]{0,127}";
const DIGEST = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
const PATH = `${PATH_COMPONENT}(?:/${PATH_COMPONENT})*`;
const NAME = `(?:${DOMAIN}/)?${PATH}`;

const REFERENCE_RE = new RegExp(`^(${NAME})(?::(${TAG}))?(?:@(${DIGEST}))?$`);
const NAME_SPLIT_RE = new RegExp(`^(?:(${DOMAIN})/)?(${PATH})$`);
const DOMAIN_RE = new RegExp(`^${DOMAIN}$`);
const PATH_RE = new RegExp(`^${PATH}$`);
const PATH_COMPONENT_RE = new RegExp(`^${PATH_COMPONENT}$`);
const TAG_RE = new RegExp(`^${TAG}$`);
const IDENTIFIER_RE = /^[a-f0-9]{64}$/;

function invalid(input: string, why: string): InvalidArgumentError {
  return new InvalidArgumentError(`invalid reference "${input}": ${why}`);
}

/** Explains why a name failed the grammar, for a one-line error. */
function diagnose(input: string): string {
  if (input === "") return "empty reference";
  if (/\s/.test(input)) return "contains whitespace";
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(input)) return "a reference has no scheme (drop the http:// or https://)";
  let rest = input;
  const at = rest.indexOf("@");
  if (at >= 0) {
    const digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!new RegExp(`^${DIGEST}$`).test(digest)) return `invalid digest "${digest}": expected algorithm:hex`;
  }
  // a tag is after the last ':' that follows the last '/'
  const slash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  let name = rest;
  if (colon > slash) {
    const tag = rest.slice(colon + 1);
    name = rest.slice(0, colon);
    if (tag.length > TAG_LENGTH_MAX) return `tag is ${tag.length} characters long, at most ${TAG_LENGTH_MAX} allowed`;
    if (!TAG_RE.test(tag)) {
      // could still be a port with nothing after it: "host:5000"
      if (tag === "") return "empty tag after ':'";
      if (!/^\d+\//.test(tag)) {
        return `invalid tag "${tag}": letters, digits, '_', '.' and '-' only, not starting with '.' or '-'`;
      }
    }
  }
  if (name === "") return "empty repository name";
  if (name.startsWith("/") || name.endsWith("/") || name.includes("//")) return "empty path component";
  const parts = name.split("/");
  const first = parts[0];
  const hasDomain =
    parts.length > 1 && (first.includes(".") || first.includes(":") || first.startsWith("[") || first === "localhost");
  if (hasDomain && !DOMAIN_RE.test(first)) return `invalid domain "${first}"`;
  for (const p of hasDomain ? parts.slice(1) : parts) {
    if (p !== p.toLowerCase()) return "repository name must be lowercase";
    if (!PATH_COMPONENT_RE.test(p)) {
      return `invalid path component "${p}": lowercase letters, digits and separators ('.', '_', '__', '-') between them`;
    }
  }
  return "invalid reference format";
}

/**
 * The raw grammar, without normalisation (Go's reference.Parse): `redis` gives an
 * empty domain, and the first of two components is read as the domain.
 */
export function parseStrict(input: string): Reference {
  const m = REFERENCE_RE.exec(input);
  if (!m) {
    if (input !== "" && REFERENCE_RE.test(input.toLowerCase())) {
      throw invalid(input, "repository name must be lowercase");
    }
    throw invalid(input, diagnose(input));
  }
  const [, name, tag, digest] = m;
  if (name.length > NAME_TOTAL_LENGTH_MAX) {
    throw invalid(input, `repository name must not be more than ${NAME_TOTAL_LENGTH_MAX} characters`);
  }
  const split = NAME_SPLIT_RE.exec(name);
  if (!split) throw invalid(input, "invalid reference format");
  const ref: Reference = { domain: split[1] ?? "", path: split[2] };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = checkDigest(input, digest);
  return ref;
}

function checkDigest(input: string, digest: string): Digest {
  try {
    parseDigest(digest);
  } catch (err) {
    throw invalid(input, (err as Error).message);
  }
  return digest as Digest;
}

/** Splits the domain off a name the way Docker does (splitDockerDomain). */
function splitDockerDomain(name: string): { domain: string; remainder: string } {
  const i = name.indexOf("/");
  let domain: string;
  let remainder: string;
  if (i === -1) {
    domain = DEFAULT_DOMAIN;
    remainder = name;
  } else {
    const first = name.slice(0, i);
    const isDomain =
      first.includes(".") || first.includes(":") || first === "localhost" || first.toLowerCase() !== first;
    if (isDomain) {
      domain = first;
      remainder = name.slice(i + 1);
    } else {
      domain = DEFAULT_DOMAIN;
      remainder = name;
    }
  }
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !remainder.includes("/")) remainder = OFFICIAL_REPO_PREFIX + remainder;
  return { domain, remainder };
}

/** Options of parseReference and normalize. */
export interface ParseOptions {
  /** Add `:latest` when the reference has neither tag nor digest (default true). */
  defaultTag?: boolean;
}

/**
 * Parses and normalises a reference the way `docker pull` reads it:
 * `redis` → `{domain: "docker.io", path: "library/redis", tag: "latest"}`.
 * Throws InvalidArgumentError with the reason for every invalid input.
 */
export function parseReference(input: string, opts: ParseOptions = {}): Reference {
  if (IDENTIFIER_RE.test(input)) {
    throw invalid(input, "a 64-character hexadecimal string is an image ID, not a repository name");
  }
  if (input === "") throw invalid(input, "empty reference");
  const { domain, remainder } = splitDockerDomain(input);
  const tagSep = remainder.indexOf(":");
  const atSep = remainder.indexOf("@");
  let end = remainder.length;
  if (tagSep >= 0) end = tagSep;
  if (atSep >= 0 && atSep < end) end = atSep;
  const repo = remainder.slice(0, end);
  if (repo.toLowerCase() !== repo) throw invalid(input, `repository name "${repo}" must be lowercase`);
  let ref: Reference;
  try {
    ref = parseStrict(`${domain}/${remainder}`);
  } catch (err) {
    // report against what the user typed, not the normalised string
    const msg = (err as Error).message.replace(/^invalid reference "[^"]*": /, "");
    throw invalid(input, msg === "invalid reference format" ? diagnose(input) : msg);
  }
  if ((opts.defaultTag ?? true) && ref.tag === undefined && ref.digest === undefined) ref.tag = DEFAULT_TAG;
  return ref;
}

/** `domain/path[:tag][@digest]`. */
export function formatReference(ref: Reference): string {
  let s = repositoryName(ref);
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** `domain/path`, the repository without tag or digest. */
export function repositoryName(ref: Reference): string {
  return ref.domain ? `${ref.domain}/${ref.path}` : ref.path;
}

/** The normalised string of a reference: `redis` → `docker.io/library/redis:latest`. */
export function normalize(input: string, opts?: ParseOptions): string {
  return formatReference(parseReference(input, opts));
}

/** The short form Docker prints: `docker.io/library/redis:latest` → `redis:latest`. */
export function familiar(ref: Reference | string): string {
  const r = typeof ref === "string" ? parseReference(ref, { defaultTag: false }) : ref;
  let name = repositoryName(r);
  if (r.domain === DEFAULT_DOMAIN) {
    name = r.path;
    if (name.startsWith(OFFICIAL_REPO_PREFIX) && !name.slice(OFFICIAL_REPO_PREFIX.length).includes("/")) {
      name = name.slice(OFFICIAL_REPO_PREFIX.length);
    }
  }
  let s = name;
  if (r.tag !== undefined) s += `:${r.tag}`;
  if (r.digest !== undefined) s += `@${r.digest}`;
  return s;
}

/** The object to ask the registry for: the digest when there is one, else the tag. */
export function objectOf(ref: Reference): string {
  return ref.digest ?? ref.tag ?? DEFAULT_TAG;
}

export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

export function isValidPath(path: string): boolean {
  return path.length <= NAME_TOTAL_LENGTH_MAX && PATH_RE.test(path);
}

export function isValidDomain(domain: string): boolean {
  return DOMAIN_RE.test(domain);
}

/** A copy of the reference with another tag (and no digest). */
export function withTag(ref: Reference, tag: string): Reference {
  if (!TAG_RE.test(tag)) throw invalid(`${repositoryName(ref)}:${tag}`, `invalid tag "${tag}"`);
  return { domain: ref.domain, path: ref.path, tag };
}

/** A copy of the reference pinned to a digest (the tag is kept). */
export function withDigest(ref: Reference, digest: string): Reference {
  const d = checkDigest(`${repositoryName(ref)}@${digest}`, digest);
  return { ...ref, digest: d };
}
