/**
 * The defaults people set once, in a TOML file: /etc/dist/config.toml for
 * everyone, $XDG_CONFIG_HOME/dist/config.toml (~/.config/dist/config.toml)
 * for a user other than root, the user's keys over the system's. Flags and
 * environment variables override both.
 *
 *   root = "/srv/dist"                          # --root, DIST_ROOT
 *   namespace = "ci"                            # --namespace, DIST_NAMESPACE
 *   snapshotter = "native"                      # --snapshotter, DIST_SNAPSHOTTER
 *   hosts_dir = ["/etc/dist/certs.d"]           # --hosts-dir (default: dist's, containerd's and docker's certs.d)
 *   max_concurrent_downloads = 6                # --max-concurrent-downloads
 *   discard_layers = true                       # pull --discard-layers
 *
 * An unknown key or a bad value is an error naming the file and the line.
 * DIST_SYSTEM_CONFIG_ROOT moves /etc (tests).
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { isAbsolute, join } from "node:path";
import { parse as parseToml } from "smol-toml";
import { errorMessage, InvalidArgumentError, wrapError } from "../errors.ts";
import { validateNamespace } from "../metadata/namespaces.ts";
import { log } from "./log.ts";

export interface Config {
  root?: string;
  namespace?: string;
  snapshotter?: string;
  hostsDir?: string[];
  maxConcurrentDownloads?: number;
  discardLayers?: boolean;
}

/** Where the settings came from: the files read, in the order applied. */
export interface LoadedConfig extends Config {
  files: string[];
}

type Check = (value: unknown, where: string) => Partial<Config>;

const absolute = (v: string, where: string, key: string) => {
  if (!isAbsolute(v)) throw new InvalidArgumentError(`${where}: ${key} must be an absolute path, not "${v}"`);
  return v;
};

/** The keys a config file may have, each with its check. */
const KEYS: Record<string, Check> = {
  root: (v, where) => {
    if (typeof v !== "string" || v === "") throw new InvalidArgumentError(`${where}: root must be a directory path`);
    return { root: absolute(v, where, "root") };
  },
  namespace: (v, where) => {
    if (typeof v !== "string") throw new InvalidArgumentError(`${where}: namespace must be a string`);
    try {
      return { namespace: validateNamespace(v) };
    } catch (err) {
      throw wrapError(err, where);
    }
  },
  snapshotter: (v, where) => {
    if (v !== "overlay" && v !== "native") {
      throw new InvalidArgumentError(`${where}: snapshotter must be "overlay" or "native", not ${JSON.stringify(v)}`);
    }
    return { snapshotter: v };
  },
  hosts_dir: (v, where) => {
    const list = typeof v === "string" ? [v] : v;
    if (!Array.isArray(list) || list.length === 0 || !list.every((d) => typeof d === "string" && d !== "")) {
      throw new InvalidArgumentError(`${where}: hosts_dir must be a directory path or a list of them`);
    }
    return { hostsDir: list.map((d: string) => absolute(d, where, "hosts_dir")) };
  },
  max_concurrent_downloads: (v, where) => {
    if (typeof v !== "number") {
      throw new InvalidArgumentError(`${where}: max_concurrent_downloads must be a number from 1 to 1024`);
    }
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > 1024) {
      throw new InvalidArgumentError(`${where}: max_concurrent_downloads must be a number from 1 to 1024, not ${v}`);
    }
    return { maxConcurrentDownloads: n };
  },
  discard_layers: (v, where) => {
    if (typeof v !== "boolean") throw new InvalidArgumentError(`${where}: discard_layers must be true or false`);
    return { discardLayers: v };
  },
};

/** The line where a top-level key is set (1-based), for messages; 0 when it cannot be told. */
function lineOf(text: string, key: string): number {
  const lines = text.split("\n");
  const escaped = key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const set = new RegExp(`^\\s*(?:${escaped}|"${escaped}"|'${escaped}')\\s*[=.]`);
  const table = new RegExp(`^\\s*\\[+\\s*(?:${escaped}|"${escaped}"|'${escaped}')\\s*[\\].]`);
  const i = lines.findIndex((l) => set.test(l) || table.test(l));
  return i + 1;
}

/** Parses and checks one config file's text. */
export function parseConfig(text: string, file: string): Config {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    // smol-toml's error has the line; its message goes on with a picture of the spot
    const line = (err as { line?: unknown }).line;
    const at = typeof line === "number" ? `${file}:${line}` : file;
    throw new InvalidArgumentError(`${at}: ${errorMessage(err).split("\n")[0]}`, { cause: err });
  }
  const config: Config = {};
  for (const [key, value] of Object.entries(doc)) {
    const line = lineOf(text, key);
    const where = line > 0 ? `${file}:${line}` : file;
    const check = KEYS[key];
    if (!check) {
      throw new InvalidArgumentError(`${where}: unknown key "${key}" (known: ${Object.keys(KEYS).join(", ")})`);
    }
    Object.assign(config, check(value, where));
  }
  return config;
}

/** The config files read, in order: the system's, then the user's (not for root). */
export function configFiles(opts: { root?: string; uid?: number; configHome?: string } = {}): string[] {
  const root = opts.root ?? process.env.DIST_SYSTEM_CONFIG_ROOT ?? "/";
  const files = [join(root, "etc", "dist", "config.toml")];
  if ((opts.uid ?? process.getuid?.()) !== 0) {
    const home = opts.configHome ?? (process.env.XDG_CONFIG_HOME || join(homedir(), ".config"));
    files.push(join(home, "dist", "config.toml"));
  }
  return files;
}

/** Reads the config files (configFiles); missing ones are skipped, the later ones' keys win. */
export function readConfig(files = configFiles()): LoadedConfig {
  const out: LoadedConfig = { files: [] };
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") continue;
      // a home directory of someone else's ($HOME kept by sudo or setpriv): not this user's config
      if (code === "EACCES" && file !== files[0]) {
        log.debug(`config file ${file} left out: ${code}`);
        continue;
      }
      throw new InvalidArgumentError(`${file}: cannot read the config file: ${code ?? errorMessage(err)}`, {
        cause: err,
      });
    }
    Object.assign(out, parseConfig(text, file));
    out.files.push(file);
  }
  return out;
}

let loaded: LoadedConfig | undefined;

/** The config of this process, read once, when a default is first needed. */
export function config(): LoadedConfig {
  if (!loaded) {
    loaded = readConfig();
    log.debug(loaded.files.length > 0 ? `config from ${loaded.files.join(", ")}` : "no config file");
  }
  return loaded;
}
