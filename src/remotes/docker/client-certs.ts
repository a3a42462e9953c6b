/**
 * TLS client certificates of a registry host (hosts.toml `client`), read and
 * checked once so a wrong file fails with its name rather than as a handshake
 * error. containerd's forms:
 *
 *   client = "client.pem"                            # certificate and key in one file
 *   client = ["a.pem", "b.pem"]                      # several such files
 *   client = [["client.cert", "client.key"], ["c.pem", ""]]   # pairs; "" = key in the cert file
 *
 * and one containerd does not read but users write (and docker's certs.d
 * layout implies): a list whose file holding only a certificate is followed
 * by a file holding only its key, `client = ["client.cert", "client.key"]`,
 * taken as that pair. Relative paths are relative to the host's directory.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { errorMessage, InvalidArgumentError } from "../../errors.ts";

/** A client certificate (chain) and its private key, PEM. */
export interface ClientKeyPair {
  cert: string;
  key: string;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

function blocks(pem: string): { certs: string[]; keys: string[] } {
  const certs: string[] = [];
  const keys: string[] = [];
  for (const m of pem.matchAll(BLOCK)) {
    if (m[1] === "CERTIFICATE") certs.push(`${m[0]}\n`);
    else if (m[1].endsWith("PRIVATE KEY") && !m[1].startsWith("ENCRYPTED")) keys.push(`${m[0]}\n`);
  }
  return { certs, keys };
}

async function readPem(file: string, where: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? errorMessage(err);
    throw new InvalidArgumentError(`${where}: cannot read client certificate file ${file}: ${code}`, { cause: err });
  }
}

/** The pair of a certificate file and a key file (the same file when `keyFile` is empty), checked to match. */
export async function loadClientKeyPair(certFile: string, keyFile: string, where: string): Promise<ClientKeyPair> {
  const certPem = await readPem(certFile, where);
  const keyPem = keyFile === "" || keyFile === certFile ? certPem : await readPem(keyFile, where);
  const { certs } = blocks(certPem);
  const { keys } = blocks(keyPem);
  const named = keyFile === "" ? certFile : `${certFile} and ${keyFile}`;
  if (certs.length === 0) throw new InvalidArgumentError(`${where}: no certificate in ${certFile}`);
  if (keys.length === 0) {
    const encrypted = /-----BEGIN ENCRYPTED PRIVATE KEY-----/.test(keyPem) ? " (encrypted keys are not supported)" : "";
    throw new InvalidArgumentError(`${where}: no private key in ${keyFile || certFile}${encrypted}`);
  }
  try {
    const key = createPrivateKey(keys[0]);
    if (!new X509Certificate(certs[0]).checkPrivateKey(key)) {
      throw new InvalidArgumentError(`${where}: the client certificate and key of ${named} do not match`);
    }
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw err;
    throw new InvalidArgumentError(`${where}: invalid client certificate or key in ${named}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  return { cert: certs.join(""), key: keys[0] };
}

function resolvePath(f: string, dir: string): string {
  return isAbsolute(f) ? f : join(dir, f);
}

/** Which of certificate and key a file holds, to pair `["x.cert", "x.key"]`. */
async function holds(file: string, where: string): Promise<{ cert: boolean; key: boolean }> {
  const { certs, keys } = blocks(await readPem(file, where));
  return { cert: certs.length > 0, key: keys.length > 0 };
}

/**
 * The key pairs of a hosts.toml `client` value (see above); `dir` resolves
 * relative paths, `where` (the file) names errors.
 */
export async function clientKeyPairs(value: unknown, dir: string, where: string): Promise<ClientKeyPair[]> {
  if (value === undefined) return [];
  if (typeof value === "string") return [await loadClientKeyPair(resolvePath(value, dir), "", where)];
  if (!Array.isArray(value)) {
    throw new InvalidArgumentError(`${where}: client must be a file, a list of files or a list of [cert, key] pairs`);
  }
  const out: ClientKeyPair[] = [];
  for (let i = 0; i < value.length; i++) {
    const v = value[i];
    if (typeof v === "string") {
      const file = resolvePath(v, dir);
      const next = value[i + 1];
      if (typeof next === "string") {
        const [a, b] = await Promise.all([holds(file, where), holds(resolvePath(next, dir), where)]);
        if (a.cert && !a.key && b.key && !b.cert) {
          out.push(await loadClientKeyPair(file, resolvePath(next, dir), where));
          i++;
          continue;
        }
      }
      out.push(await loadClientKeyPair(file, "", where));
    } else if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === "string")) {
      const [cert, key] = v as [string, string];
      out.push(await loadClientKeyPair(resolvePath(cert, dir), key === "" ? "" : resolvePath(key, dir), where));
    } else {
      throw new InvalidArgumentError(`${where}: client entry ${i + 1} must be a file or a [cert, key] pair`);
    }
  }
  return out;
}
