/** `dist serve`: the store's namespace as an OCI distribution registry, optionally pulling through upstreams. */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { InvalidArgumentError } from "../errors.ts";
import { collect, UsageError } from "./args.ts";
import { globals, parseDuration, parseSize } from "./globals.ts";
import { log } from "./log.ts";
import { holdCommandLease, openContentStore, openImageStore } from "./open.ts";
import { addRegistryFlags, registryOptions } from "./registry-flags.ts";

interface ServeFlags {
  listen: string;
  registry?: string;
  tlsCert?: string;
  tlsKey?: string;
  userFile?: string;
  insecureListen?: boolean;
  allowPush?: boolean;
  upstream?: string[];
  peerOrder: string;
  maxUploadSize?: string;
  uploadTimeout: string;
  idleTimeout: string;
  accessLog?: boolean;
}

/** `HOST:PORT`, `[V6]:PORT` or `:PORT` (loopback). */
export function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65535) throw new UsageError(`invalid --listen "${s}": expected HOST:PORT, e.g. 127.0.0.1:5000`);
  return { host: m[1] ?? (m[2] || "127.0.0.1"), port };
}

export function register(program: Command): void {
  const cmd = program
    .command("serve")
    .description("serve the store's images over the OCI distribution API (a registry, a mirror, a pull-through cache)")
    .option("--listen <addr>", "HOST:PORT to listen on", "127.0.0.1:5000")
    .option(
      "--registry <host>",
      "the registry whose image names answer requests without ?ns= (and that pushes are recorded under)",
    )
    .option("--tls-cert <file>", "serve HTTPS with this certificate (PEM)")
    .option("--tls-key <file>", "the certificate's private key (PEM)")
    .option("--user-file <htpasswd>", "require basic auth from this htpasswd file (bcrypt: htpasswd -B)")
    .option("--insecure-listen", "allow a non-loopback address without auth and TLS (a trusted network only)")
    .option("--allow-push", "accept uploads of blobs and manifests into the store")
    .option(
      "--upstream <host>",
      "pull misses through from this registry (repeatable; the first answers requests without ?ns=)",
      collect,
    )
    .option(
      "--peer-order <order>",
      "order of hosts.toml mirrors for pull-through: file, or digest (rendezvous per object)",
      "file",
    )
    .option("--max-upload-size <bytes>", "largest blob accepted by an upload (default 64 GiB)")
    .option("--upload-timeout <duration>", "abort an upload with no request for this long", "10m")
    .option("--idle-timeout <duration>", "close a connection with no traffic for this long", "60s")
    .option("--access-log", "one JSON line per request on stderr");
  addRegistryFlags(cmd);
  cmd
    .addHelpText(
      "after",
      `
Blobs are served when an image of the namespace references them (whatever
the repository in the path); tags come from image names: the repository
debian/bookworm with tag minbase is 127.0.0.1:5000/debian/bookworm:minbase.
Mirror requests (containerd's hosts.toml) carry ?ns=REGISTRY and see only
that registry's names. Without --user-file the server listens on loopback
only, unless --insecure-listen. Registry flags (--plain-http, --hosts-dir,
--tlscacert, -u ...) are those of the upstreams.

Examples:
  dist serve --listen 127.0.0.1:5000
  skopeo copy --src-tls-verify=false docker://127.0.0.1:5000/debian/bookworm:minbase oci:/tmp/bookworm:t
  dist serve --listen 0.0.0.0:5443 --user-file /etc/dist/htpasswd --tls-cert srv.crt --tls-key srv.key
  dist serve --upstream registry-1.example.com --hosts-dir /etc/dist/certs.d --peer-order digest --insecure-listen --listen 10.0.0.5:5000`,
    )
    .action(async (opts: ServeFlags, c: Command) => {
      const g = globals(c);
      const { host, port } = parseListen(opts.listen);
      if (Boolean(opts.tlsCert) !== Boolean(opts.tlsKey)) throw new UsageError("--tls-cert and --tls-key go together");
      if (opts.peerOrder !== "file" && opts.peerOrder !== "digest") {
        throw new UsageError(`invalid --peer-order "${opts.peerOrder}": file or digest`);
      }
      const { checkListen, Htpasswd } = await import("../registry/auth.ts");
      checkListen(host, {
        auth: Boolean(opts.userFile),
        tls: Boolean(opts.tlsCert),
        insecureListen: Boolean(opts.insecureListen),
      });
      const users = opts.userFile ? Htpasswd.load(opts.userFile) : undefined;
      const tls = opts.tlsCert ? { cert: readPem(opts.tlsCert), key: readPem(opts.tlsKey as string) } : undefined;
      const { isValidDomain } = await import("../reference/reference.ts");
      for (const r of [opts.registry, ...(opts.upstream ?? [])]) {
        if (r !== undefined && !isValidDomain(r)) throw new UsageError(`invalid registry host "${r}"`);
      }
      let upstream: import("../registry/upstream.ts").Upstream | undefined;
      if (opts.upstream && opts.upstream.length > 0) {
        const { Upstream } = await import("../registry/upstream.ts");
        const { createResolver } = await import("../remotes/docker/index.ts");
        const resolver = createResolver({
          ...registryOptions(opts as unknown as Record<string, unknown>),
          onWarning: (m) => log.debug(m),
        });
        upstream = new Upstream({ resolver, registries: opts.upstream, peerOrder: opts.peerOrder });
      }
      await holdCommandLease(g);
      const content = await openContentStore(g);
      const images = await openImageStore(g);
      const { RegistryServer } = await import("../registry/server.ts");
      const server = new RegistryServer({
        content,
        images,
        changes: g.address ? undefined : await recordChanges(g.root),
        registry: opts.registry,
        allowPush: Boolean(opts.allowPush),
        users,
        upstream,
        uploadLimits: {
          ...(opts.maxUploadSize ? { maxBytes: parseSize(opts.maxUploadSize) } : {}),
          idleMs: positive("--upload-timeout", opts.uploadTimeout),
        },
        onWarning: (m) => log.warn(m),
        onRequest: opts.accessLog ? (e) => process.stderr.write(`${JSON.stringify(e)}\n`) : undefined,
      });
      const { url } = await server.listen({
        host,
        port,
        tls,
        idleTimeoutMs: positive("--idle-timeout", opts.idleTimeout),
      });
      process.stdout.write(`dist serve: namespace ${g.namespace} on ${url}\n`);
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      });
      await server.close();
      await content.close?.();
    });
}

function readPem(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new InvalidArgumentError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code}`, { cause: err });
  }
}

function positive(flag: string, value: string): number {
  const ms = parseDuration(value);
  if (ms <= 0) throw new UsageError(`${flag} ${value}: must be more than 0`);
  return ms;
}

/** SQLite's data_version of the root's database: it moves when another process commits a change. */
async function recordChanges(root: string): Promise<() => unknown> {
  const { openDatabase } = await import("../metadata/db.ts");
  const db = openDatabase(root);
  const stmt = db.prepare("PRAGMA data_version");
  return () => (stmt.get() as { data_version: number }).data_version;
}
