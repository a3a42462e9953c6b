/**
 * `dist daemon`: serves a dist root over containerd's gRPC API on a unix
 * socket. Start-up refuses a root another daemon holds (flock on
 * <root>/daemon.lock) and a socket path another server answers on; a stale
 * socket is replaced. The root is made private (store-root.ts); the socket is
 * 0600, or 0660 owned by the group given (socket-access.ts), in a 0711
 * directory. Shutdown stops
 * accepting calls, gives in-flight ones a short grace, then aborts them (their
 * writers close, so ingests stay resumable) and removes the socket.
 */
import { closeSync, constants, ftruncateSync, mkdirSync, openSync, readSync, type Stats, writeSync } from "node:fs";
import { access, chmod, chown, lstat, unlink } from "node:fs/promises";
import { connect } from "node:net";
import { dirname, join, resolve } from "node:path";
import * as grpc from "@grpc/grpc-js";
import pino, { type Logger } from "pino";
import type { Provider } from "../content/content.ts";
import type { Applier } from "../diff/applier.ts";
import {
  errorMessage,
  FailedPreconditionError,
  InvalidArgumentError,
  PermissionDeniedError,
  UnavailableError,
  wrapError,
} from "../errors.ts";
import { closeAllDatabases } from "../metadata/db.ts";
import { createResolver } from "../remotes/docker/index.ts";
import type { RegistryOptions } from "../remotes/docker/options.ts";
import type { SnapshotterName } from "../snapshots/open.ts";
import { prepareRoot } from "../store-root.ts";
import { flock, LOCK_EX, LOCK_NB, LOCK_UN } from "../sys/index.ts";
import { RemoteUnpacker } from "../unpack/remote.ts";
import type { Backend } from "./server/backend.ts";
import { embeddedBackend } from "./server/embedded.ts";
import { createServer, type DaemonServer } from "./server/server.ts";
import { hostGroupId, openSocketPath } from "./socket-access.ts";

export function defaultSocket(): string {
  if (process.env.DIST_ADDRESS) return process.env.DIST_ADDRESS;
  if (process.getuid?.() === 0) return "/run/dist/dist.sock";
  const runtime = process.env.XDG_RUNTIME_DIR || `/tmp/dist-${process.getuid?.() ?? "user"}`;
  return join(runtime, "dist", "dist.sock");
}

export interface DaemonOptions {
  root: string;
  address: string;
  log?: Logger;
  logLevel?: string;
  /** How long in-flight calls may run after a shutdown request (ms). */
  grace?: number;
  /**
   * The group (name or gid) whose members may use the socket (0660, owned by it), as
   * containerd's `[grpc] gid`; without it the socket is 0600, its owner's alone.
   */
  group?: string | number;
  /** Snapshotter names for containerd's proxy plugins: NAME → overlay or native (default `dist` → the root's default). */
  snapshotterAliases?: Record<string, SnapshotterName>;
  /** How long after a delete the root's garbage is collected (ms; default 100); false: only on a sync delete. */
  gcDelayMs?: number | false;
  /**
   * The registry client's settings (hosts directory, docker config, CAs) with
   * which the daemon unpacks the layers a containerd Prepare names by its
   * remote-snapshotter labels (server/remote-snapshots.ts). Default: the
   * client's defaults (docker config of the daemon's user, HTTPS).
   */
  registry?: RegistryOptions;
  backend?: Backend;
  /** The Diff service's Applier over a store (default: FileSystemApplier, loaded when first needed). */
  loadApplier?: (content: Provider) => Promise<Applier>;
}

export interface Daemon {
  address: string;
  root: string;
  log: Logger;
  stop(reason?: string): Promise<void>;
  /** Resolves when the daemon has stopped. */
  stopped: Promise<void>;
}

/** Takes the root's daemon lock; throws when another live daemon holds it. */
function lockRoot(root: string): () => void {
  const path = join(root, "daemon.lock");
  const fd = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o600);
  try {
    flock(fd, LOCK_EX | LOCK_NB);
  } catch (err) {
    let holder = "";
    try {
      const pid = Buffer.alloc(32);
      const n = readSync(fd, pid, 0, 32, 0);
      holder = pid.subarray(0, n).toString().trim();
    } catch {
      // the pid is only for the message
    }
    closeSync(fd);
    throw new FailedPreconditionError(
      `another dist daemon${holder ? ` (pid ${holder})` : ""} is already serving the root ${root} (${path} is locked: ${errorMessage(err)})`,
      { cause: err },
    );
  }
  ftruncateSync(fd, 0);
  writeSync(fd, `${process.pid}\n`, 0);
  return () => {
    try {
      flock(fd, LOCK_UN);
    } finally {
      closeSync(fd);
    }
  };
}

/** True when something accepts connections on the unix socket at `path`. */
export function socketLive(path: string, timeout = 1000): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const s = connect({ path });
    const done = (live: boolean) => {
      s.destroy();
      resolvePromise(live);
    };
    s.setTimeout(timeout, () => done(true));
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

/** Prepares the socket path: directory (0711), a live server refused, a stale socket removed. */
async function prepareSocket(path: string): Promise<void> {
  const dir = dirname(path);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o711 });
  } catch (err) {
    throw wrapError(err, `cannot create the socket directory ${dir}`, "PermissionDenied");
  }
  try {
    await access(dir, constants.W_OK | constants.X_OK);
  } catch {
    throw new PermissionDeniedError(`cannot create the socket ${path}: directory ${dir} is not writable`);
  }
  let st: Stats;
  try {
    st = await lstat(path);
  } catch {
    return;
  }
  if (!st.isSocket()) {
    throw new FailedPreconditionError(`cannot listen on ${path}: it exists and is not a socket`);
  }
  if (await socketLive(path)) {
    throw new UnavailableError(`cannot listen on ${path}: another server is already answering on it`);
  }
  await unlink(path);
}

/** Starts the daemon; resolves once it is listening. */
export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  const root = resolve(opts.root);
  const address = resolve(opts.address);
  if (Buffer.byteLength(address) > 107) {
    throw new InvalidArgumentError(`socket path ${address} is too long for a unix socket (at most 107 bytes)`);
  }
  const log =
    opts.log ??
    pino({ level: opts.logLevel ?? "info", base: { pid: process.pid }, name: "dist-daemon" }, pino.destination(2));
  const gid = opts.group === undefined ? undefined : hostGroupId(opts.group);
  prepareRoot(root, { onNote: (msg) => log.info({ root }, msg), onWarning: (msg) => log.warn({ root }, msg) });
  const unlock = lockRoot(root);
  let backend: Backend | undefined;
  let ds: DaemonServer | undefined;
  let remote: RemoteUnpacker | undefined;
  try {
    await prepareSocket(address);
    backend =
      opts.backend ??
      embeddedBackend(root, {
        snapshotterAliases: opts.snapshotterAliases,
        gc: {
          delayMs: opts.gcDelayMs,
          onCollected: (r) => {
            const removed = Object.fromEntries(Object.entries(r.totals).map(([k, t]) => [k, t.count]));
            log.info({ removed, ms: r.elapsedMs }, "garbage collected");
            for (const p of r.problems) log.warn({ problem: p }, "garbage collection");
          },
          onError: (err) => log.error({ err: errorMessage(err) }, "garbage collection failed"),
        },
      });
    const resolver = createResolver({ ...opts.registry, onWarning: (m) => log.debug(m) });
    remote = new RemoteUnpacker({ resolver, onWarning: (m) => log.warn(m) });
    ds = createServer({ backend, log, loadApplier: opts.loadApplier ?? defaultApplier, remote });
    const server = ds.server;
    const old = process.umask(0o177);
    try {
      await new Promise<void>((res, rej) => {
        server.bindAsync(`unix:${address}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? rej(err) : res()));
      });
    } finally {
      process.umask(old);
    }
    if (gid === undefined) {
      await chmod(address, 0o600);
    } else {
      await chown(address, -1, gid).catch((err: unknown) => {
        throw wrapError(err, `cannot give the socket ${address} to group ${opts.group}`, "PermissionDenied");
      });
      await chmod(address, 0o660);
      openSocketPath(address, gid, String(opts.group), {
        onNote: (msg) => log.info(msg),
        onWarning: (msg) => log.warn(msg),
      });
    }
  } catch (err) {
    await remote?.close();
    ds?.server.forceShutdown();
    await backend?.close().catch(() => undefined);
    unlock();
    throw err;
  }
  const live = ds;
  const be = backend;
  log.info(
    {
      address,
      root,
      ...(gid === undefined ? {} : { group: String(opts.group), gid }),
      services: "content,images,namespaces,leases,snapshots,diff,version,introspection,events",
      snapshotters: be.snapshotters().join(","),
    },
    "listening",
  );
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => {
    resolveStopped = r;
  });
  let stopping: Promise<void> | undefined;
  const stop = (reason = "stop requested") => {
    stopping ??= (async () => {
      log.info({ reason, inFlight: live.inFlight() }, "shutting down");
      const grace = opts.grace ?? 5000;
      const drained = new Promise<void>((r) => live.server.tryShutdown(() => r()));
      const wait = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());
      const abort = () => live.abortAll(new UnavailableError(`daemon shutting down (${reason})`));
      // calls already running get the grace period; subscriptions would hold it all, so they end at once
      live.abortIdle(new UnavailableError(`daemon shutting down (${reason})`));
      await Promise.race([drained, wait(grace)]);
      if (live.inFlight() > 0) {
        log.warn({ inFlight: live.inFlight() }, "aborting calls still running after the grace period");
        abort();
        await Promise.race([drained, wait(1000)]);
      }
      live.server.forceShutdown();
      await remote?.close();
      await be.close().catch((err: unknown) => log.warn({ err: errorMessage(err) }, "closing stores"));
      await unlink(address).catch(() => undefined);
      unlock();
      log.info("stopped");
      log.debug({ handles: process.getActiveResourcesInfo() }, "still active after stop");
      resolveStopped();
    })();
    return stopping;
  };
  return { address, root, log, stop, stopped };
}

async function defaultApplier(content: Provider): Promise<Applier> {
  return new (await import("../diff/filesystem.ts")).FileSystemApplier(content);
}

/** Runs the daemon until SIGTERM/SIGINT (the CLI's entry). */
export async function runDaemon(opts: DaemonOptions): Promise<void> {
  const d = await startDaemon(opts);
  const onSignal = (sig: NodeJS.Signals) => {
    void d.stop(`received ${sig}`);
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    await d.stopped;
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
    closeAllDatabases();
  }
}
