/**
 * Registry credentials from Docker's config.json: `auths` (base64 `auth`,
 * `username`/`password`, `identitytoken`), `credHelpers` per registry and the
 * default `credsStore`, the last two through `docker-credential-<name> get`.
 * Secrets never appear in errors or warnings: only hosts, paths and helper names.
 */
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { InvalidArgumentError, UnavailableError, wrapError } from "../../errors.ts";

export interface Credentials {
  /** Empty with an identity (refresh) token as the secret. */
  username: string;
  /** Password, or refresh token when username is empty. */
  secret: string;
}

export interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** The key Docker Hub's credentials are stored under. */
export const DOCKER_HUB_KEY = "https://index.docker.io/v1/";
const DOCKER_HUB_HOSTS = new Set(["docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"]);

export function defaultDockerConfigPath(): string {
  const dir = process.env.DOCKER_CONFIG || join(homedir(), ".docker");
  return join(dir, "config.json");
}

export async function readDockerConfig(path: string): Promise<DockerConfig | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw wrapError(err, `docker config ${path}`, "Unavailable");
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Error("not a JSON object");
    return v as DockerConfig;
  } catch (err) {
    throw wrapError(err, `docker config ${path}: invalid JSON`, "InvalidArgument");
  }
}

/** `https://host/v1/`, `http://host`, `host` → `host` (lowercased, no path). */
export function normalizeConfigKey(key: string): string {
  let k = key.trim();
  const scheme = k.indexOf("://");
  if (scheme >= 0) k = k.slice(scheme + 3);
  const slash = k.indexOf("/");
  if (slash >= 0) k = k.slice(0, slash);
  return k.toLowerCase();
}

function isDockerHub(host: string): boolean {
  return DOCKER_HUB_HOSTS.has(normalizeConfigKey(host));
}

/** The keys a registry host may be stored under, the most specific first. */
export function configKeys(host: string): string[] {
  if (isDockerHub(host)) return [DOCKER_HUB_KEY, "index.docker.io", "docker.io", "registry-1.docker.io"];
  return [host, `https://${host}`, `http://${host}`];
}

function matches(key: string, host: string): boolean {
  const k = normalizeConfigKey(key);
  if (isDockerHub(host)) return DOCKER_HUB_HOSTS.has(k);
  return k === host.toLowerCase();
}

/** Credentials from `auths` alone, or undefined. */
export function credentialsFromAuths(
  config: DockerConfig,
  host: string,
  where = "config.json",
): Credentials | undefined {
  const auths = config.auths ?? {};
  // exact keys first, then any key naming the same host
  const keys = [...configKeys(host).filter((k) => Object.hasOwn(auths, k)), ...Object.keys(auths)];
  for (const key of keys) {
    if (!matches(key, host)) continue;
    const entry = auths[key];
    if (!entry || typeof entry !== "object") continue;
    if (entry.identitytoken) return { username: "", secret: entry.identitytoken };
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
      const i = decoded.indexOf(":");
      if (i <= 0) throw new InvalidArgumentError(`${where}: auths["${key}"].auth is not base64 of user:password`);
      return { username: decoded.slice(0, i), secret: decoded.slice(i + 1) };
    }
    if (entry.username && entry.password) return { username: entry.username, secret: entry.password };
  }
  return undefined;
}

/**
 * Runs `docker-credential-<helper> get` with the server on stdin. Undefined when the
 * helper knows no credentials for it; UnavailableError when the helper fails otherwise.
 */
export async function credentialsFromHelper(helper: string, server: string): Promise<Credentials | undefined> {
  if (!/^[A-Za-z0-9._-]+$/.test(helper)) throw new InvalidArgumentError(`invalid credential helper name "${helper}"`);
  const prog = `docker-credential-${helper}`;
  const { stdout, code, stderr, spawnError } = await new Promise<{
    stdout: string;
    stderr: string;
    code: number;
    spawnError?: NodeJS.ErrnoException;
  }>((resolve) => {
    const child = execFile(prog, ["get"], { timeout: 30_000, maxBuffer: 1 << 20 }, (err, out, errOut) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string }) | null;
      if (e && typeof e.code === "string") resolve({ stdout: "", stderr: "", code: -1, spawnError: e });
      else resolve({ stdout: String(out), stderr: String(errOut), code: e ? Number(e.code ?? 1) : 0 });
    });
    child.stdin?.on("error", () => {});
    child.stdin?.end(server);
  });
  if (spawnError) {
    if (spawnError.code === "ENOENT") throw new UnavailableError(`credential helper ${prog} not found in PATH`);
    throw new UnavailableError(`credential helper ${prog}: ${spawnError.code}`);
  }
  if (code !== 0) {
    // helpers answer "credentials not found in native keychain" when they have nothing
    if (/not found/i.test(stdout + stderr)) return undefined;
    throw new UnavailableError(`credential helper ${prog} failed for ${server} (exit ${code})`);
  }
  let v: { Username?: string; Secret?: string };
  try {
    v = JSON.parse(stdout) as { Username?: string; Secret?: string };
  } catch {
    throw new UnavailableError(`credential helper ${prog} returned invalid JSON for ${server}`);
  }
  if (!v.Secret) return undefined;
  // "<token>" marks an identity token (a refresh token), as docker login stores them
  if (!v.Username || v.Username === "<token>") return { username: "", secret: v.Secret };
  return { username: v.Username, secret: v.Secret };
}

/**
 * Credentials for a registry host from a Docker config: the registry's credHelpers
 * entry, else the credsStore (falling back to `auths` when it knows nothing), else
 * `auths`. Undefined when there are none or the file does not exist.
 */
export async function dockerCredentials(host: string, configPath?: string): Promise<Credentials | undefined> {
  const path = configPath ?? defaultDockerConfigPath();
  const config = await readDockerConfig(path);
  if (!config) return undefined;
  const helpers = config.credHelpers ?? {};
  for (const key of configKeys(host)) {
    const helper = helpers[key];
    if (helper) return credentialsFromHelper(helper, isDockerHub(host) ? DOCKER_HUB_KEY : host);
  }
  for (const [key, helper] of Object.entries(helpers)) {
    if (helper && matches(key, host)) return credentialsFromHelper(helper, key);
  }
  if (config.credsStore) {
    const c = await credentialsFromHelper(config.credsStore, isDockerHub(host) ? DOCKER_HUB_KEY : host);
    if (c) return c;
  }
  return credentialsFromAuths(config, host, path);
}
