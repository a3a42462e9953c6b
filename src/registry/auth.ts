/**
 * Who may talk to `dist serve`: basic auth against an htpasswd file of bcrypt
 * hashes (`htpasswd -B`, as the CNCF registry reads it), and the rule that a
 * server without it listens only on loopback.
 *
 * Clients send their credentials with every request, and a bcrypt comparison
 * is meant to be slow (milliseconds in JavaScript), so a success is remembered
 * for a minute under an HMAC of user and password keyed by a secret of this
 * process: a wrong password always pays the full comparison.
 */
import { createHmac, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import bcrypt from "bcryptjs";
import { InvalidArgumentError } from "../errors.ts";

const REMEMBER_MS = 60_000;
const MAX_REMEMBERED = 1024;

/** An htpasswd file of bcrypt hashes (`htpasswd -B`), as the CNCF registry reads it. */
export class Htpasswd {
  readonly #users: Map<string, string>;
  readonly #secret = randomBytes(32);
  readonly #ok = new Map<string, number>();

  constructor(users: Map<string, string>) {
    this.#users = users;
  }

  /** Reads `user:hash` lines; only bcrypt hashes ($2a$, $2b$, $2y$) are accepted, as the registry does. */
  static load(path: string): Htpasswd {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (err) {
      throw new InvalidArgumentError(`cannot read the htpasswd file ${path}: ${(err as NodeJS.ErrnoException).code}`, {
        cause: err,
      });
    }
    const users = new Map<string, string>();
    text.split("\n").forEach((raw, i) => {
      const line = raw.trim();
      if (line === "" || line.startsWith("#")) return;
      const colon = line.indexOf(":");
      const user = line.slice(0, colon);
      const hash = line.slice(colon + 1);
      if (colon <= 0 || !/^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash)) {
        throw new InvalidArgumentError(
          `${path}:${i + 1}: expected user:bcrypt-hash (make one with htpasswd -B); other hash kinds are not accepted`,
        );
      }
      users.set(user, hash);
    });
    if (users.size === 0) throw new InvalidArgumentError(`${path}: no users`);
    return new Htpasswd(users);
  }

  /** The user an Authorization header proves, or undefined. */
  async check(authorization: string | undefined): Promise<string | undefined> {
    const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization ?? "");
    if (!m) return undefined;
    const decoded = Buffer.from(m[1], "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon <= 0) return undefined;
    const user = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    const hash = this.#users.get(user);
    if (!hash) return undefined;
    const key = createHmac("sha256", this.#secret).update(`${user}\0${password}`).digest("base64");
    const at = this.#ok.get(key);
    if (at !== undefined && Date.now() - at < REMEMBER_MS) return user;
    if (!(await bcrypt.compare(password, hash))) return undefined;
    if (this.#ok.size >= MAX_REMEMBERED) this.#ok.clear();
    this.#ok.set(key, Date.now());
    return user;
  }
}

/** Whether a listen host is loopback only (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "");
  if (h === "localhost") return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  if (isIP(h) === 6) return h === "::1" || h === "0:0:0:0:0:0:0:1";
  return false;
}

/**
 * Refuses a listen address that would expose the store without protection:
 * off loopback, a server needs basic auth over TLS, unless the operator says
 * the network is trusted (`insecureListen`).
 */
export function checkListen(host: string, opts: { auth: boolean; tls: boolean; insecureListen: boolean }): void {
  if (isLoopbackHost(host) || opts.insecureListen) return;
  if (!opts.auth) {
    throw new InvalidArgumentError(
      `refusing to serve the store without authentication on ${host}: give --user-file (with --tls-cert/--tls-key), listen on loopback, or pass --insecure-listen on a trusted network`,
    );
  }
  if (!opts.tls) {
    throw new InvalidArgumentError(
      `refusing to take passwords in clear text on ${host}: give --tls-cert/--tls-key, or pass --insecure-listen on a trusted network`,
    );
  }
}
