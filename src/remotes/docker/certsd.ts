/**
 * Where a registry host's configuration is found, as nerdctl finds it: the
 * first of several certs.d directories that has one for the host (its own,
 * else `_default`), by default dist's, then containerd's, then docker's:
 *
 *   /etc/dist/certs.d  /etc/containerd/certs.d  /etc/docker/certs.d
 *
 * (for a user other than root, the same three under $XDG_CONFIG_HOME first).
 * A host directory holds a hosts.toml (hosts.ts reads it) and certificate
 * files in docker's layout, which containerd reads too:
 *
 *   <dir>/<host[:port]>/ca.crt                    a CA trusted for the host (any *.crt)
 *   <dir>/<host[:port]>/client.cert, client.key   a client certificate and its key (any *.cert with its *.key)
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { InvalidArgumentError } from "../../errors.ts";
import { type ClientKeyPair, loadClientKeyPair } from "./client-certs.ts";

/**
 * The hosts directories searched when none is given: dist's, containerd's and
 * docker's certs.d under /etc (the user's own under $XDG_CONFIG_HOME first when
 * not root). `root` replaces "/" (tests; env DIST_SYSTEM_CONFIG_ROOT).
 */
export function systemHostsDirs(opts: { root?: string; uid?: number; configHome?: string } = {}): string[] {
  const root = opts.root ?? process.env.DIST_SYSTEM_CONFIG_ROOT ?? "/";
  const tools = ["dist", "containerd", "docker"];
  const system = tools.map((t) => join(root, "etc", t, "certs.d"));
  if ((opts.uid ?? process.getuid?.()) === 0) return system;
  const home = opts.configHome ?? (process.env.XDG_CONFIG_HOME || join(homedir(), ".config"));
  return [...tools.map((t) => join(home, t, "certs.d")), ...system];
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * The host directory of a namespace (a reference's domain): in the first of
 * `dirs` that has the namespace's own directory or a `_default` one, that one
 * (containerd's HostDirFromRoot, tried in order as nerdctl does); else none.
 */
export async function findHostDirectory(dirs: readonly string[], namespace: string): Promise<string | undefined> {
  // a namespace is a domain: no path separators can sneak in, but check anyway
  if (namespace.includes("/") || namespace === ".." || namespace === ".") return undefined;
  for (const dir of dirs) {
    for (const name of [namespace, "_default"]) {
      const p = join(dir, name);
      if (await isDir(p)) return p;
    }
  }
  return undefined;
}

/** A CA certificate file's contents; an error naming it (and `what` configured it) when it cannot be read. */
export async function readCa(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    throw new InvalidArgumentError(`${what}: cannot read CA file ${file}: ${(err as NodeJS.ErrnoException).code}`, {
      cause: err,
    });
  }
}

/**
 * The certificates of a host directory in docker's layout: every `*.crt` a CA,
 * every `*.cert` a client certificate whose key is the `*.key` of the same
 * name (a certificate without its key is an error; a key alone is left alone,
 * as containerd does).
 */
export async function readCertsDir(dir: string): Promise<{ ca: string[]; client: ClientKeyPair[] }> {
  const names = (await readdir(dir)).sort();
  const ca = await Promise.all(names.filter((n) => n.endsWith(".crt")).map((n) => readCa(join(dir, n), dir)));
  const client: ClientKeyPair[] = [];
  for (const n of names.filter((f) => f.endsWith(".cert"))) {
    const key = `${n.slice(0, -".cert".length)}.key`;
    if (!names.includes(key))
      throw new InvalidArgumentError(`${join(dir, n)}: client certificate without its key ${key}`);
    client.push(await loadClientKeyPair(join(dir, n), join(dir, key), dir));
  }
  return { ca, client };
}
