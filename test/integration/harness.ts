/**
 * The integration test bed: real registries on loopback, the test images, and helpers
 * to run `bin/dist` and the reference tools (skopeo, umoci) the tests compare against.
 *
 *   const tb = await testbed();
 *   after(() => tb.stop());
 *   const r = await tb.dist(["fetch", "--plain-http", `${tb.plain}/tiny/busybox:oci`]);
 *
 * The images are built once per builder version into /var/tmp/dist-testbed (see
 * fixtures/build.ts; DIST_TESTBED_CACHE moves it). Each test process then starts its
 * own registries on free 127.0.0.1 ports over a private copy of the pushed storage
 * (blob data hardlinked, metadata copied), so tests may push and delete freely:
 *   plain  anonymous, plain HTTP          basic  htpasswd basic auth (user/password)
 *   tls    HTTPS, cert from caFile         token  Bearer tokens from a Node token server
 * Everything started is stopped by stop() and, failing that, at process exit
 * (registries also through PR_SET_PDEATHSIG).
 *
 * DIST_TESTBED_SKIP_DEBIAN=1 leaves the Debian image out (local iteration only; tests
 * that need it call testbed({ debian: true }) and fail loudly without it).
 */
import {
  chmodSync,
  chownSync,
  copyFileSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import {
  alive,
  type BuiltImages,
  buildImages,
  type ImageInfo,
  PASSWORD,
  TOKEN_ISSUER,
  TOKEN_SERVICE,
  USER,
} from "./fixtures/build.ts";
import { must, type RunResult, requireTools, run } from "./fixtures/exec.ts";
import { type ProxyMode, type ProxyOptions, startProxy } from "./fixtures/proxy.ts";
import { type Registry, type RegistryOptions, startRegistry } from "./fixtures/registry.ts";
import { type Squid, startSquid } from "./fixtures/squid.ts";
import { startTokenServer, type TokenServer } from "./fixtures/token-server.ts";

export type { BlobInfo, ImageInfo, ManifestInfo, NestedIndexInfo, PlatformInfo } from "./fixtures/build.ts";
export { GENERAL } from "./fixtures/general.ts";
export type { ProxyMode } from "./fixtures/proxy.ts";
export type { Registry } from "./fixtures/registry.ts";
export type { Squid } from "./fixtures/squid.ts";
export { UNUSUAL } from "./fixtures/unusual.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
/** The repository's top directory. */
export const TOP = join(HERE, "..", "..");
export const DIST = join(TOP, "bin", "dist");

export interface TestbedOptions {
  /** Fail unless the Debian minbase image is there (it is, unless DIST_TESTBED_SKIP_DEBIAN=1). */
  debian?: boolean;
}

export interface DistOptions {
  /** stdin for the command. */
  input?: string | Buffer;
  /** Extra environment (merged over the test process's, with DOCKER_CONFIG set to an empty dir). */
  env?: Record<string, string | undefined>;
  /** Run as this user (runuser -u USER); the default root is then a directory that user owns. */
  user?: string;
  /** --root for this call (default: tb.root, or tb.rootFor(user)). `null` passes no --root at all. */
  root?: string | null;
  /** Kill the command after this long (default 180 s). */
  timeoutMs?: number;
}

export interface DistResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout as bytes (fetch-object, get). */
  stdoutBytes: Buffer;
}

export interface Testbed {
  /** "127.0.0.1:PORT" of the anonymous plain-HTTP registry. */
  plain: string;
  /** htpasswd basic auth (user / password), plain HTTP. */
  basic: string;
  /** HTTPS with a certificate signed by caFile (SAN IP:127.0.0.1), anonymous. */
  tls: string;
  /** Bearer token auth, plain HTTP; anonymous tokens may pull, the user may do anything. */
  token: string;
  user: string;
  password: string;
  /** The test CA's certificate (PEM), and a directory holding only it (skopeo --cert-dir). */
  caFile: string;
  caDir: string;
  /** The token server (realm URL, service name, and every request it answered). */
  tokenRealm: string;
  tokenService: string;
  tokenRequests: TokenServer["requests"];
  /** OCI layout of the built images (tags busybox, busybox-arm64, multi, multi-plain,
   * busybox-uncompressed, edge-whiteouts, edge-xlayer, edge-breakout, debian; the unusual ones
   * of fixtures/unusual.ts: zstd-pzstd, zstd-concat, zstd-skippable, deep-127, deep-500,
   * nested-inner, nested), its zstd copies (busybox, edge-whiteouts, debian) and its zstd:chunked
   * copies (busybox, edge-whiteouts). Read-only: shared by every test process. */
  layout: string;
  layoutZstd: string;
  layoutChunked: string;
  /** Registry refs ("tiny/busybox:oci", ...) → what the registry serves for them. */
  images: Record<string, ImageInfo>;
  hasDebian: boolean;
  /** This process's registry storage directory (shared by its four registries). */
  storage: string;
  /** The log files of the four registries (a "response completed" line per request: method, URI, status). */
  logs: { plain: string; basic: string; tls: string; token: string };
  /**
   * Starts another registry (stopped by stop()): by default anonymous, plain HTTP, over a
   * fresh empty storage; `storage`, `auth` and `tls` as for the test bed's own.
   */
  registry(opts?: Partial<Omit<RegistryOptions, "dir">>): Promise<Registry>;
  /** Starts a squid forward proxy (stopped by stop()) that alone resolves `hosts` (name → IP). */
  squid(hosts: Record<string, string>): Promise<Squid>;
  /** The default --root of dist(); empty at start. */
  root: string;
  /** A fresh temporary directory, removed by stop(). */
  tempDir(prefix?: string): string;
  /** A fresh, empty directory to use as a dist --root. */
  newRoot(): string;
  /** A directory owned by `user` (e.g. "nobody"), the default --root of dist({ user }). */
  rootFor(user: string): Promise<string>;
  /** Starts a corrupting proxy in front of `target` (a plain-HTTP registry address); returns its address. */
  proxy(target: string, mode: ProxyMode, opts?: ProxyOptions): Promise<string>;
  /** "127.0.0.1:PORT" where nothing listens (connection refused); a different one each call (up to 12). */
  deadAddr(): Promise<string>;
  /** Runs bin/dist --root ROOT ARGS... and captures its output and exit code. */
  dist(args: readonly string[], opts?: DistOptions): Promise<DistResult>;
  /** umoci unpack --image IMAGE BUNDLE (IMAGE is "LAYOUT:TAG"); --rootless when not root. */
  umociUnpack(image: string, bundle: string, args?: readonly string[]): Promise<void>;
  /** skopeo copy -q SRC DEST, with TLS verification off for docker:// ends. */
  skopeoCopy(src: string, dest: string, args?: readonly string[]): Promise<void>;
  /**
   * Copies `ADDR/REPO:TAG` from a plain registry into a fresh OCI layout (tag "t"), or with
   * transport "dir" into a directory of blobs named by hex digest (bytes as served: no
   * Docker-to-OCI conversion); returns the directory.
   */
  skopeoPull(ref: string, args?: readonly string[], transport?: "oci" | "dir"): Promise<string>;
  stop(): Promise<void>;
}

/** Copies a registry storage tree: blob data (immutable, content-addressed) hardlinked, the rest copied. */
function cloneStorage(from: string, to: string): void {
  for (const e of readdirSync(from, { withFileTypes: true, recursive: true })) {
    const src = join(e.parentPath, e.name);
    const dst = join(to, relative(from, src));
    if (e.isDirectory()) mkdirSync(dst, { recursive: true });
    else if (e.isFile()) {
      mkdirSync(dirname(dst), { recursive: true });
      if (e.name === "data" && src.includes("/blobs/")) linkSync(src, dst);
      else copyFileSync(src, dst);
    }
  }
}

/** Whether a TCP connection to 127.0.0.1:port is refused (nothing listens there). */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: "127.0.0.1", port });
    sock.once("connect", () => {
      sock.destroy();
      resolve(false);
    });
    sock.once("error", (e: NodeJS.ErrnoException) => resolve(e.code === "ECONNREFUSED"));
  });
}

/**
 * Low, privileged ports: no test server ever gets one (they bind port 0, which picks from
 * the ephemeral range), so a parallel test process cannot start listening there between
 * this check and the test's connection attempt.
 */
const DEAD_PORTS = [1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 18];
let deadNext = 0;
async function deadAddr(): Promise<string> {
  while (deadNext < DEAD_PORTS.length) {
    const port = DEAD_PORTS[deadNext++];
    if (await refused(port)) return `127.0.0.1:${port}`;
  }
  throw new Error("integration testbed: no unused low port left for a connection-refused address");
}

/** Temp dirs of test processes that were killed before their exit handlers ran. */
function removeStaleTempDirs(): void {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith("dist-it-")) continue;
    const dir = join(tmpdir(), name);
    try {
      const pid = Number(readFileSync(join(dir, "owner.pid"), "utf8"));
      if (pid > 0 && !alive(pid)) rmSync(dir, { recursive: true, force: true });
    } catch {}
  }
}

let shared: { tb: Promise<Testbed>; refs: number } | undefined;

/**
 * The test bed of this process: built and started on the first call, shared by later
 * calls; stop() of the last user stops it.
 */
export async function testbed(opts: TestbedOptions = {}): Promise<Testbed> {
  if (!shared) shared = { tb: start(), refs: 0 };
  shared.refs++;
  const tb = await shared.tb;
  if (opts.debian && !tb.hasDebian) {
    throw new Error("integration testbed: the Debian image was not built (DIST_TESTBED_SKIP_DEBIAN=1 is set)");
  }
  return tb;
}

async function start(): Promise<Testbed> {
  requireTools(["docker-registry", "skopeo", "umoci", "setpriv"]);
  const built: BuiltImages = await buildImages();
  removeStaleTempDirs();
  const tmp = mkdtempSync(join(tmpdir(), "dist-it-"));
  writeFileSync(join(tmp, "owner.pid"), String(process.pid));
  const cleanup: (() => Promise<void> | void)[] = [];
  let stopped = false;
  const removeTmp = () => rmSync(tmp, { recursive: true, force: true });
  process.on("exit", removeTmp);

  const stopAll = async () => {
    if (stopped) return;
    stopped = true;
    for (const f of cleanup.reverse()) {
      try {
        await f();
      } catch {}
    }
    removeTmp();
    process.off("exit", removeTmp);
  };

  try {
    const storage = join(tmp, "registry-data");
    cloneStorage(built.storage, storage);
    const dockerConfig = join(tmp, "docker-config");
    mkdirSync(dockerConfig);

    const token = await startTokenServer({
      key: readFileSync(built.certs.tokenKey, "utf8"),
      cert: readFileSync(built.certs.tokenCert, "utf8"),
      issuer: TOKEN_ISSUER,
      service: TOKEN_SERVICE,
      user: USER,
      password: PASSWORD,
      unref: true,
    });
    cleanup.push(() => token.close());

    const regs: Registry[] = await Promise.all([
      startRegistry({ name: "plain", storage, dir: tmp }),
      startRegistry({ name: "basic", storage, dir: tmp, auth: { kind: "htpasswd", path: built.htpasswd } }),
      startRegistry({
        name: "tls",
        storage,
        dir: tmp,
        tls: { cert: built.certs.serverCert, key: built.certs.serverKey },
      }),
      startRegistry({
        name: "token",
        storage,
        dir: tmp,
        auth: {
          kind: "token",
          realm: token.realm,
          service: TOKEN_SERVICE,
          issuer: TOKEN_ISSUER,
          rootCertBundle: built.certs.tokenCert,
        },
      }),
    ]);
    for (const r of regs) cleanup.push(() => r.stop());
    const [plain, basic, tls, tok] = regs.map((r) => r.addr);

    const root = join(tmp, "root");
    mkdirSync(root);
    chmodSync(tmp, 0o755); // other users (runuser) reach their roots and the configs below
    const userRoots = new Map<string, string>();
    const rootFor = async (user: string) => {
      let dir = userRoots.get(user);
      if (!dir) {
        const uid = Number((await must("id", ["-u", user])).trim());
        const gid = Number((await must("id", ["-g", user])).trim());
        dir = join(tmp, `root-${user}`);
        mkdirSync(dir);
        chownSync(dir, uid, gid);
        userRoots.set(user, dir);
      }
      return dir;
    };
    let n = 0;
    let extra = 0;
    const tempDir = (prefix = "d") => mkdtempSync(join(tmp, `${prefix}-`));

    const tb: Testbed = {
      plain,
      basic,
      tls,
      token: tok,
      user: USER,
      password: PASSWORD,
      caFile: built.certs.ca,
      caDir: built.certs.caDir,
      tokenRealm: token.realm,
      tokenService: TOKEN_SERVICE,
      tokenRequests: token.requests,
      layout: built.layout,
      layoutZstd: built.layoutZstd,
      layoutChunked: built.layoutChunked,
      images: built.images,
      hasDebian: built.hasDebian,
      storage,
      logs: { plain: regs[0].log, basic: regs[1].log, tls: regs[2].log, token: regs[3].log },
      registry: async (o = {}) => {
        const name = o.name ?? `extra${++extra}`;
        const r = await startRegistry({ name, storage: o.storage ?? tempDir(`storage-${name}`), dir: tmp, ...o });
        cleanup.push(() => r.stop());
        return r;
      },
      squid: async (hosts) => {
        const s = await startSquid(tempDir("squid"), hosts);
        cleanup.push(() => s.stop());
        return s;
      },
      root,
      tempDir,
      newRoot: () => tempDir(`root${++n}`),
      rootFor,
      proxy: async (target, mode, o) => {
        const p = await startProxy(target, mode, o);
        cleanup.push(() => p.close());
        return p.addr;
      },
      deadAddr,
      dist: async (args, o = {}) => {
        const defaultRoot = o.user ? await rootFor(o.user) : root;
        const rootArgs = o.root === null ? [] : ["--root", o.root ?? defaultRoot];
        const cmd = o.user ? "runuser" : DIST;
        const argv = o.user ? ["-u", o.user, "--", DIST, ...rootArgs, ...args] : [...rootArgs, ...args];
        const env = { ...process.env, DOCKER_CONFIG: dockerConfig, ...o.env };
        const r: RunResult = await run(cmd, argv, {
          input: o.input,
          env,
          timeoutMs: o.timeoutMs ?? 180_000,
          cwd: TOP,
        });
        return {
          code: r.code,
          stdout: r.stdout.toString(),
          stderr: r.stderr.toString(),
          stdoutBytes: r.stdout,
        };
      },
      umociUnpack: async (image, bundle, args = []) => {
        const rootless = process.getuid?.() === 0 ? [] : ["--rootless"];
        await must("umoci", ["unpack", ...rootless, ...args, "--image", image, bundle]);
      },
      skopeoCopy: async (src, dest, args = []) => {
        const tlsArgs = [
          ...(src.startsWith("docker://") ? ["--src-tls-verify=false"] : []),
          ...(dest.startsWith("docker://") ? ["--dest-tls-verify=false"] : []),
        ];
        await must("skopeo", ["copy", "-q", ...tlsArgs, ...args, src, dest]);
      },
      skopeoPull: async (ref, args = [], transport = "oci") => {
        const dir = tempDir("skopeo");
        await tb.skopeoCopy(`docker://${ref}`, transport === "oci" ? `oci:${dir}:t` : `dir:${dir}`, args);
        return dir;
      },
      stop: async () => {
        if (!shared) return;
        if (--shared.refs > 0) return;
        shared = undefined;
        await stopAll();
      },
    };
    writeFileSync(join(tmp, "testbed.json"), JSON.stringify({ plain, basic, tls, token: tok }, null, 1));
    return tb;
  } catch (e) {
    await stopAll();
    throw e;
  }
}
