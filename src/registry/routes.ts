/**
 * The request line of the distribution API, parsed strictly from the raw
 * path: each segment is percent-decoded once and must then match the grammar
 * of what it stands for (repository components, a tag, a digest, an upload
 * id), so `..`, encoded slashes or dots and anything else that is no name is
 * refused before it reaches the store. Nothing here builds a file path: only a
 * validated digest ever names a file (the store's blobPath).
 */
import { type Digest, parseDigest } from "../digest.ts";
import { isValidPath, isValidTag, NAME_TOTAL_LENGTH_MAX } from "../reference/reference.ts";
import { digestInvalid, nameInvalid, RegistryError } from "./errors.ts";

export type Route =
  | { kind: "base" }
  | { kind: "catalog" }
  | { kind: "tags"; name: string }
  | { kind: "manifest"; name: string; reference: string; digest?: Digest }
  | { kind: "blob"; name: string; digest: Digest }
  | { kind: "upload-start"; name: string }
  | { kind: "upload"; name: string; id: string }
  | { kind: "referrers"; name: string; digest: Digest };

const UPLOAD_ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A digest from a request: InvalidArgument becomes DIGEST_INVALID naming it. */
export function requestDigest(s: string): Digest {
  try {
    parseDigest(s);
  } catch (err) {
    throw digestInvalid((err as Error).message);
  }
  return s as Digest;
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw nameInvalid(`invalid percent-encoding in path segment "${segment.slice(0, 100)}"`);
  }
}

/** The path and query of a request target (origin-form or absolute-form), the path left undecoded. */
export function splitTarget(target: string): { path: string; query: URLSearchParams } {
  let t = target;
  if (!t.startsWith("/")) {
    // absolute-form (a proxy-style request line): only its path matters
    const m = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(t);
    t = m ? t.slice(m[0].length) || "/" : `/${t}`;
  }
  const hash = t.indexOf("#");
  if (hash >= 0) t = t.slice(0, hash);
  const q = t.indexOf("?");
  return { path: q < 0 ? t : t.slice(0, q), query: new URLSearchParams(q < 0 ? "" : t.slice(q + 1)) };
}

/**
 * The route of a raw path such as `/v2/library/busybox/manifests/latest`.
 * Throws RegistryError: 400 NAME_INVALID / DIGEST_INVALID for what cannot be a
 * name or digest, 404 NAME_UNKNOWN for paths outside the API.
 */
export function parseRoute(rawPath: string): Route {
  if (rawPath === "/v2" || rawPath === "/v2/") return { kind: "base" };
  if (!rawPath.startsWith("/v2/")) throw notFound(rawPath);
  const segments = rawPath.slice(4).split("/").map(decode);
  for (const s of segments) {
    if (s === "." || s === "..") throw nameInvalid("path segments . and .. are not allowed");
    if (s.includes("/") || s.includes("\\") || s.includes("\0")) {
      throw nameInvalid("encoded slashes, backslashes and NUL are not allowed in a path");
    }
  }
  if (segments.length === 1 && segments[0] === "_catalog") return { kind: "catalog" };
  // an upload location ends with a slash-less id; a start ends with "uploads/" (empty last segment)
  const n = segments.length;
  if (n >= 3 && segments[n - 3] === "blobs" && segments[n - 2] === "uploads") {
    const name = repoName(segments.slice(0, n - 3));
    const id = segments[n - 1];
    if (id === "") return { kind: "upload-start", name };
    if (!UPLOAD_ID_RE.test(id))
      throw new RegistryError(404, "BLOB_UPLOAD_UNKNOWN", `upload ${id.slice(0, 80)} unknown`);
    return { kind: "upload", name, id };
  }
  if (n >= 2 && segments[n - 2] === "blobs" && segments[n - 1] === "uploads") {
    return { kind: "upload-start", name: repoName(segments.slice(0, n - 2)) };
  }
  if (n >= 3 && segments[n - 2] === "tags" && segments[n - 1] === "list") {
    return { kind: "tags", name: repoName(segments.slice(0, n - 2)) };
  }
  if (n >= 3) {
    const kind = segments[n - 2];
    const last = segments[n - 1];
    if (kind === "manifests") {
      const name = repoName(segments.slice(0, n - 2));
      if (last.includes(":")) return { kind: "manifest", name, reference: last, digest: requestDigest(last) };
      if (!isValidTag(last)) throw new RegistryError(400, "MANIFEST_INVALID", `invalid tag "${last.slice(0, 130)}"`);
      return { kind: "manifest", name, reference: last };
    }
    if (kind === "blobs")
      return { kind: "blob", name: repoName(segments.slice(0, n - 2)), digest: requestDigest(last) };
    if (kind === "referrers") {
      return { kind: "referrers", name: repoName(segments.slice(0, n - 2)), digest: requestDigest(last) };
    }
  }
  throw notFound(rawPath);
}

function repoName(components: string[]): string {
  const name = components.join("/");
  if (name.length > NAME_TOTAL_LENGTH_MAX) {
    throw nameInvalid(`repository name longer than ${NAME_TOTAL_LENGTH_MAX} characters`);
  }
  if (!isValidPath(name)) throw nameInvalid(`invalid repository name "${name.slice(0, 260)}"`);
  return name;
}

function notFound(path: string): RegistryError {
  return new RegistryError(404, "NAME_UNKNOWN", `no such endpoint: ${path.slice(0, 200)}`);
}
