/**
 * The library's public API as a consumer sees it: the declaration files the build
 * emits (`tsc -p tsconfig.build.json`), read from build/index.d.ts. Each exported name
 * is traced through re-exports (`export { a as b } from`, `export * from`) to the
 * declaration that defines it, with the doc comment above it (what an editor shows on
 * hover) and the names of the project's own types its signature uses (which a
 * consumer can write only if they are exported too).
 *
 * The files are read as text: tsc writes every top-level statement of a declaration
 * file from column 0 and indents the rest, which is all this needs.
 */
import { readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

export interface PublicExport {
  /** The name a consumer imports. */
  name: string;
  /** Where it is declared: "<path relative to the declarations' root>#<declared name>". */
  id: string;
  /** The doc comment above the declaration, without its `*` decoration. */
  doc?: string;
  /** The project's own types and values its declaration names: ids, as above. */
  uses: Set<string>;
}

const IDENT = "[A-Za-z_$][\\w$]*";
const DECLARATION = new RegExp(
  `^export\\s+(?:declare\\s+)?(?:abstract\\s+)?(?:function|class|interface|type|const|let|var|namespace)\\s+(${IDENT})`,
  "gm",
);
const LOCAL_DECLARATION = new RegExp(
  `^(?:export\\s+)?(?:declare\\s+)?(?:abstract\\s+)?(?:function|class|interface|type|const|let|var|namespace)\\s+(${IDENT})`,
  "gm",
);
const REEXPORT = /^export\s+(?:type\s+)?\{([^}]*)\}\s*from\s*"([^"]+)";/gm;
const REEXPORT_ALL = /^export\s+(?:type\s+)?\*\s+from\s*"([^"]+)";/gm;
const IMPORT = /^import\s+(?:type\s+)?\{([^}]*)\}\s*from\s*"([^"]+)";/gm;
/** A line that starts another top-level statement (anything else continues the one above). */
const STATEMENT_START = /^(?:export|declare|import|type|interface|function|class|const|let|var|namespace|\/\*\*|\/\/)/;

interface Declaration {
  id: string;
  doc?: string;
  /** The declaration's text (all overloads), comments removed. */
  text: string;
  file: string;
}

/** `{ a, type B, c as d }` → local and exported names. */
function specifiers(list: string): { local: string; exported: string }[] {
  return list
    .split(",")
    .map((s) => s.trim().replace(/^type\s+/, ""))
    .filter((s) => s !== "")
    .map((s) => {
      const [local, exported = local] = s.split(/\s+as\s+/).map((x) => x.trim());
      return { local, exported };
    });
}

/** The doc comment that ends right before `index` (only blank space between), without decoration. */
function docBefore(text: string, index: number): string | undefined {
  const before = text.slice(0, index).trimEnd();
  if (!before.endsWith("*/")) return undefined;
  const start = before.lastIndexOf("/**");
  if (start < 0) return undefined;
  const doc = before
    .slice(start + 3, -2)
    .split("\n")
    .map((l) => l.replace(/^\s*\*\s?/, ""))
    .join("\n")
    .trim();
  return doc === "" ? undefined : doc;
}

/** The statement starting at `index`: up to the next line that starts another one. */
function statementAt(text: string, index: number): string {
  const lines = text.slice(index).split("\n");
  let n = 1;
  while (n < lines.length && !STATEMENT_START.test(lines[n])) n++;
  return lines.slice(0, n).join("\n");
}

/** A statement without its comments and string literals (so only code names remain). */
function codeOf(statement: string): string {
  return statement
    .replace(/\/\*[\s\S]*?\*\//g, " ")
    .replace(/\/\/.*$/gm, " ")
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`/g, '""');
}

/** The names a declaration's code refers to: not member names (`name?:`, `name(`) nor qualified parts (`a.b`). */
function referencedNames(code: string): Set<string> {
  const names = new Set<string>();
  for (const m of code.matchAll(new RegExp(`(?<![\\w$.#])(${IDENT})(?![\\w$])(\\??\\s*[:(])?`, "g"))) {
    if (m[2] === undefined) names.add(m[1]);
  }
  return names;
}

export class DeclarationFiles {
  readonly #root: string;
  readonly #texts = new Map<string, string>();

  /** `root`: the directory tsc emitted the declarations into (index.d.ts at its top). */
  constructor(root: string) {
    this.#root = root;
  }

  #text(file: string): string {
    let t = this.#texts.get(file);
    if (t === undefined) {
      t = readFileSync(file, "utf8");
      this.#texts.set(file, t);
    }
    return t;
  }

  /** The declaration file a relative specifier of `from` names ("./x.ts" or "./x.js" → ./x.d.ts). */
  #target(from: string, specifier: string): string | undefined {
    if (!specifier.startsWith(".")) return undefined;
    return resolve(dirname(from), specifier).replace(/\.(?:ts|js)$/, ".d.ts");
  }

  #id(file: string, name: string): string {
    return `${relative(this.#root, file)}#${name}`;
  }

  /** Where `name`, as exported by `file`, is declared (following re-exports). */
  declaration(file: string, name: string, seen = new Set<string>()): Declaration | undefined {
    const key = this.#id(file, name);
    if (seen.has(key)) return undefined;
    seen.add(key);
    const text = this.#text(file);
    const found = [...text.matchAll(DECLARATION)].filter((m) => m[1] === name);
    if (found.length > 0) {
      return {
        id: key,
        doc: docBefore(text, found[0].index),
        text: found.map((m) => codeOf(statementAt(text, m.index))).join("\n"),
        file,
      };
    }
    for (const m of text.matchAll(REEXPORT)) {
      const s = specifiers(m[1]).find((x) => x.exported === name);
      const target = s && this.#target(file, m[2]);
      if (s && target) return this.declaration(target, s.local, seen);
    }
    for (const m of text.matchAll(REEXPORT_ALL)) {
      const target = this.#target(file, m[1]);
      const found = target && this.declaration(target, name, seen);
      if (found) return found;
    }
    return undefined;
  }

  /** Every name `file` exports. */
  exportedNames(file: string, seen = new Set<string>()): string[] {
    if (seen.has(file)) return [];
    seen.add(file);
    const text = this.#text(file);
    const names = [...text.matchAll(DECLARATION)].map((m) => m[1]);
    for (const m of text.matchAll(REEXPORT)) names.push(...specifiers(m[1]).map((s) => s.exported));
    for (const m of text.matchAll(REEXPORT_ALL)) {
      const target = this.#target(file, m[1]);
      if (target) names.push(...this.exportedNames(target, seen));
    }
    return names;
  }

  /** The ids of the project's own declarations that `decl`'s code names. */
  uses(decl: Declaration): Set<string> {
    const text = this.#text(decl.file);
    const bindings = new Map<string, string>();
    for (const m of text.matchAll(LOCAL_DECLARATION)) bindings.set(m[1], this.#id(decl.file, m[1]));
    for (const m of text.matchAll(IMPORT)) {
      const target = this.#target(decl.file, m[2]);
      if (!target) continue;
      for (const s of specifiers(m[1])) {
        const found = this.declaration(target, s.local);
        bindings.set(s.exported, found ? found.id : this.#id(target, s.local));
      }
    }
    const uses = new Set<string>();
    for (const name of referencedNames(decl.text)) {
      const id = bindings.get(name);
      if (id !== undefined && id !== decl.id) uses.add(id);
    }
    return uses;
  }

  /** The public API: each name index.d.ts exports, sorted. */
  publicApi(): PublicExport[] {
    const index = join(this.#root, "index.d.ts");
    return [...new Set(this.exportedNames(index))].sort().map((name) => {
      const decl = this.declaration(index, name);
      if (!decl) throw new Error(`index.d.ts exports ${name} but its declaration was not found`);
      return { name, id: decl.id, doc: decl.doc, uses: this.uses(decl) };
    });
  }
}
