/**
 * containerd's filter syntax, as ctr sends it in List calls:
 *   filter   := selector ("," selector)*        (all must match)
 *   selector := fieldpath [("==" | "!=" | "~=") value]
 *   fieldpath:= field ("." field)*               (fields may be "quoted")
 * Several filter strings match when any one matches. Values may be "quoted"
 * or /regexp/ (for ~=). A selector without an operator tests presence.
 */
import { InvalidArgumentError } from "../errors.ts";

export interface Selector {
  path: string[];
  op?: "==" | "!=" | "~=";
  value?: string;
  regexp?: RegExp;
}

export type Filter = Selector[];

/** Looks a field path up on an object; undefined when absent. */
export type Adaptor = (path: string[]) => string | undefined;

function parseQuoted(s: string, i: number, quote: string): [string, number] {
  let out = "";
  let j = i + 1;
  while (j < s.length && s[j] !== quote) {
    if (s[j] === "\\" && j + 1 < s.length) {
      const c = s[j + 1];
      out += c === "n" ? "\n" : c === "t" ? "\t" : quote === "/" && c !== "/" ? `\\${c}` : c;
      j += 2;
      continue;
    }
    out += s[j];
    j++;
  }
  if (j >= s.length) throw new InvalidArgumentError(`invalid filter "${s}": unterminated ${quote}`);
  return [out, j + 1];
}

export function parseFilter(s: string): Filter {
  const selectors: Filter = [];
  let i = 0;
  const skipSpace = () => {
    while (i < s.length && /\s/.test(s[i])) i++;
  };
  while (i < s.length) {
    skipSpace();
    const path: string[] = [];
    for (;;) {
      skipSpace();
      if (s[i] === '"') {
        const [v, j] = parseQuoted(s, i, '"');
        path.push(v);
        i = j;
      } else {
        const m = /^[A-Za-z_][A-Za-z0-9_/-]*/.exec(s.slice(i));
        if (!m) throw new InvalidArgumentError(`invalid filter "${s}": expected a field name at offset ${i}`);
        path.push(m[0]);
        i += m[0].length;
      }
      if (s[i] === ".") {
        i++;
        continue;
      }
      break;
    }
    skipSpace();
    const sel: Selector = { path };
    const op = s.slice(i, i + 2);
    if (op === "==" || op === "!=" || op === "~=") {
      i += 2;
      skipSpace();
      let value: string;
      if (s[i] === '"' || (s[i] === "/" && op === "~=")) {
        [value, i] = parseQuoted(s, i, s[i]);
      } else {
        const m = /^[^\s,]*/.exec(s.slice(i))!;
        value = m[0];
        i += value.length;
      }
      sel.op = op;
      sel.value = value;
      if (op === "~=") {
        try {
          sel.regexp = new RegExp(value);
        } catch (err) {
          throw new InvalidArgumentError(`invalid filter "${s}": bad regular expression ${value}`, { cause: err });
        }
      }
    }
    selectors.push(sel);
    skipSpace();
    if (i < s.length) {
      if (s[i] !== ",") throw new InvalidArgumentError(`invalid filter "${s}": unexpected "${s[i]}" at offset ${i}`);
      i++;
    }
  }
  return selectors;
}

export function parseFilters(filters: string[] | undefined): Filter[] {
  return (filters ?? []).filter((f) => f.trim() !== "").map(parseFilter);
}

function matchSelector(sel: Selector, get: Adaptor): boolean {
  const v = get(sel.path);
  switch (sel.op) {
    case undefined:
      return v !== undefined;
    case "==":
      return v === sel.value;
    case "!=":
      return v !== sel.value;
    case "~=":
      return v !== undefined && sel.regexp!.test(v);
  }
}

/** True when no filters are given or any one filter has all its selectors matching. */
export function matchFilters(filters: Filter[], get: Adaptor): boolean {
  if (filters.length === 0) return true;
  return filters.some((f) => f.every((sel) => matchSelector(sel, get)));
}

/** An adaptor over plain fields plus a `labels` map (labels.<key>). */
export function adaptor(fields: Record<string, string | undefined>, labels?: Record<string, string>): Adaptor {
  return (path) => {
    if (path[0] === "labels" && labels) {
      if (path.length === 1) return Object.keys(labels).length > 0 ? "" : undefined;
      return labels[path.slice(1).join(".")];
    }
    return fields[path.join(".")];
  };
}

/**
 * Drops selectors on fields this service does not know (containerd would
 * reject them; we accept them so newer clients keep working) and reports each.
 */
export function knownOnly(filters: Filter[], roots: string[], warn: (msg: string) => void): Filter[] {
  return filters.map((f) =>
    f.filter((sel) => {
      if (roots.includes(sel.path[0])) return true;
      warn(`ignoring filter on unknown field "${sel.path.join(".")}"`);
      return false;
    }),
  );
}
