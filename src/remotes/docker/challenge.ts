/**
 * WWW-Authenticate challenges (RFC 7235): `Bearer realm="…",service="…",scope="a b"`,
 * `Basic realm="…"`, several challenges in one header or in several headers.
 */

export type AuthScheme = "bearer" | "basic" | "digest" | string;

export interface Challenge {
  /** Lowercased scheme name. */
  scheme: AuthScheme;
  /** Parameters with lowercased names; values unquoted. */
  params: Record<string, string>;
}

const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

/** Parses every challenge of one or more WWW-Authenticate header values. Never throws. */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const values = Array.isArray(header) ? header : [header];
  const out: Challenge[] = [];
  for (const v of values) out.push(...parseOne(v));
  return out;
}

function parseOne(s: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const n = s.length;
  const skipWs = () => {
    while (i < n && (s[i] === " " || s[i] === "\t")) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < n && TOKEN_CHAR.test(s[i])) i++;
    return s.slice(start, i);
  };
  const readQuoted = (): string => {
    // at the opening quote
    i++;
    let v = "";
    while (i < n && s[i] !== '"') {
      if (s[i] === "\\" && i + 1 < n) i++;
      v += s[i];
      i++;
    }
    i++; // closing quote (or end)
    return v;
  };
  let current: Challenge | undefined;
  while (i < n) {
    skipWs();
    if (s[i] === ",") {
      i++;
      continue;
    }
    const start = i;
    const tok = readToken();
    if (tok === "") {
      i = start + 1; // skip a stray character
      continue;
    }
    skipWs();
    if (s[i] === "=") {
      // token68 (e.g. base64 after the scheme) ends with '=' padding and no value follows
      const save = i;
      i++;
      skipWs();
      if (i >= n || s[i] === ",") {
        if (current && Object.keys(current.params).length === 0) current.params[""] = `${tok}${s.slice(save, i)}`;
        continue;
      }
      const value = s[i] === '"' ? readQuoted() : readToken();
      if (current) {
        const key = tok.toLowerCase();
        // a repeated scope parameter adds scopes rather than replacing them
        const prev = current.params[key];
        current.params[key] = key === "scope" && prev ? `${prev} ${value}` : value;
      }
      continue;
    }
    // a token not followed by '=' starts a new challenge
    current = { scheme: tok.toLowerCase(), params: {} };
    out.push(current);
  }
  return out;
}

/** Splits a scope parameter ("a b" or "a,b" lists of `repository:name:actions`) into scopes. */
export function splitScopes(scope: string | undefined): string[] {
  if (!scope) return [];
  return scope.split(" ").filter((s) => s !== "");
}

/** `repository:<path>:pull` or `…:pull,push`. */
export function repositoryScope(path: string, push = false): string {
  return `repository:${path}:${push ? "pull,push" : "pull"}`;
}

/**
 * Merges scopes: duplicates removed, and the actions of one resource joined
 * (`repository:a:pull` + `repository:a:push` → `repository:a:pull,push`). Sorted, so a
 * cache key built from the result is stable.
 */
export function mergeScopes(scopes: Iterable<string>): string[] {
  const byResource = new Map<string, Set<string>>();
  const other = new Set<string>();
  for (const s of scopes) {
    const last = s.lastIndexOf(":");
    const first = s.indexOf(":");
    if (first < 0 || last === first) {
      other.add(s);
      continue;
    }
    const resource = s.slice(0, last);
    const actions = s
      .slice(last + 1)
      .split(",")
      .filter(Boolean);
    let set = byResource.get(resource);
    if (!set) {
      set = new Set();
      byResource.set(resource, set);
    }
    for (const a of actions) set.add(a);
  }
  const out = [...other];
  for (const [resource, actions] of byResource) out.push(`${resource}:${[...actions].sort().join(",")}`);
  return out.sort();
}
