/**
 * Running an image with runc, as `ctr run` does, in steps that each undo
 * themselves on failure: resolve the image to its manifest, config and ChainID;
 * claim the container id; prepare a snapshot keyed by the id on the ChainID;
 * mount it (overlay) or use its directory (native); resolve the user in the
 * rootfs; write config.json; hand the bundle to runc.
 */

import { createHash } from "node:crypto";
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { constants } from "node:os";
import { join, resolve } from "node:path";
import { readBlob } from "../content/helpers.ts";
import type { Descriptor } from "../descriptor.ts";
import type { Digest } from "../digest.ts";
import {
  AlreadyExistsError,
  errorMessage,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from "../errors.ts";
import type { ImageStore } from "../images/image.ts";
import { selectManifest } from "../images/lookup.ts";
import type { Manifest } from "../images/manifest.ts";
import type { PlatformMatcher } from "../images/platforms.ts";
import { type ImageConfig, MAX_CONFIG_SIZE, parseImageConfig, parseImageRootfs } from "../oci/image-config.ts";
import { readUserFiles } from "../oci/rootfs.ts";
import { buildSpec, processArgs, type Spec, type SpecOptions } from "../oci/spec.ts";
import { resolveUser } from "../oci/user.ts";
import { normalize } from "../reference/index.ts";
import { mountAll, unmount } from "../snapshots/mount.ts";
import type { Mount, Snapshotter } from "../snapshots/snapshotter.ts";
import { chainID as chainIDOf } from "../unpack/chainid.ts";
import { type UnpackContent, unpackManifest } from "../unpack/unpacker.ts";
import {
  type ContainerRecord,
  containerDir,
  readRecord,
  reserveContainer,
  validateContainerId,
  writeRecord,
} from "./containers.ts";
import { isMountPoint, removeTree } from "./mounts.ts";
import { type RootlessContext, reclaimOwnership, rootlessSpec } from "./rootless.ts";
import { Runc } from "./runc.ts";

export interface RunDeps {
  content: UnpackContent;
  images: ImageStore;
  snapshotter: Snapshotter;
  /** Where debug notes and warnings (a cleanup that failed) go; nowhere when absent. */
  log?: RunLog;
}

/** What the run library says that is not an error. */
export interface RunLog {
  debug(msg: string): void;
  warn(msg: string): void;
}

export interface ResolvedImage {
  name: string;
  manifestDesc: Descriptor;
  manifest: Manifest;
  config: ImageConfig;
  chainID: Digest;
}

/** The image record, its manifest for the platform, its config and the ChainID of its layers. */
export async function resolveImage(
  deps: Pick<RunDeps, "content" | "images">,
  ref: string,
  matcher?: PlatformMatcher,
): Promise<ResolvedImage> {
  const name = normalize(ref);
  let target: Descriptor;
  try {
    target = (await deps.images.get(name)).target;
  } catch (err) {
    if (err instanceof NotFoundError)
      throw new NotFoundError(`image "${name}" not found: pull it first (dist pull ${ref})`);
    throw err;
  }
  const bytes = await readBlob(deps.content, target);
  const { desc, manifest } = await selectManifest(deps.content, target, bytes, matcher);
  const cbytes = await readBlob(deps.content, manifest.config, { max: MAX_CONFIG_SIZE });
  const config = parseImageConfig(cbytes, manifest.config.digest);
  const chainID = chainIDOf(parseImageRootfs(cbytes, manifest.config.digest).diffIDs);
  if (!chainID) throw new InvalidArgumentError(`image "${name}" has no layers: nothing to run`);
  return { name, manifestDesc: desc, manifest, config, chainID };
}

/** Unpacks the image into the snapshotter unless its top snapshot is already there. */
export async function ensureUnpacked(deps: RunDeps, image: ResolvedImage, signal?: AbortSignal): Promise<void> {
  try {
    await deps.snapshotter.stat(image.chainID);
    return;
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
  }
  deps.log?.debug(`unpacking ${image.name} into the ${deps.snapshotter.name} snapshotter`);
  await unpackManifest(image.manifestDesc, image.manifest, {
    content: deps.content,
    snapshotter: deps.snapshotter,
    signal,
  });
}

/** Steps to undo, last first; the failure of one is reported and the rest still run. */
export class Undo {
  #steps: { what: string; fn: () => unknown }[] = [];
  readonly #log: RunLog | undefined;
  constructor(log?: RunLog) {
    this.#log = log;
  }
  push(what: string, fn: () => unknown): void {
    this.#steps.push({ what, fn });
  }
  async run(): Promise<void> {
    while (this.#steps.length > 0) {
      const s = this.#steps.pop();
      if (!s) break;
      try {
        await s.fn();
      } catch (err) {
        this.#log?.warn(`cleanup: ${s.what}: ${errorMessage(err)}`);
      }
    }
  }
  clear(): void {
    this.#steps = [];
  }
}

/** The directories an active snapshot's mounts write to: a bind's source, an overlay's upper and work directories. */
function writableDirs(mounts: Mount[]): string[] {
  const dirs: string[] = [];
  for (const m of mounts) {
    if (m.type === "bind" && !m.options.includes("ro")) dirs.push(m.source);
    for (const o of m.options) {
      const [k, v] = [o.slice(0, o.indexOf("=")), o.slice(o.indexOf("=") + 1)];
      if (k === "upperdir" || k === "workdir") dirs.push(v);
    }
  }
  return dirs;
}

/** A single read-write bind of a directory (native snapshotter): runc can use it as root.path directly. */
function plainDirectory(mounts: Mount[]): string | undefined {
  if (mounts.length !== 1) return undefined;
  const m = mounts[0];
  if (m.type !== "bind" || m.options.includes("ro")) return undefined;
  return m.source;
}

/**
 * Prepares snapshot `key` on the image and makes it a directory: the snapshot's own
 * directory when it is a plain bind, else mounted at `mountpoint`. Undo steps go to `undo`.
 */
export async function prepareRootfs(
  snapshotter: Snapshotter,
  key: string,
  parent: Digest,
  mountpoint: string,
  undo: Undo,
  labels: Record<string, string> = {},
): Promise<{ rootfs: string; mounted: boolean }> {
  let mounts: Mount[];
  try {
    mounts = await snapshotter.prepare(key, parent, { labels });
  } catch (err) {
    if (err instanceof AlreadyExistsError) {
      throw new AlreadyExistsError(
        `snapshot "${key}" already exists in the ${snapshotter.name} snapshotter: it is in use by another container (dist rm ${key}, or dist snapshots rm ${key})`,
      );
    }
    throw err;
  }
  undo.push(`remove snapshot ${key}`, () => snapshotter.remove(key));
  const dir = plainDirectory(mounts);
  if (dir) return { rootfs: dir, mounted: false };
  await mkdir(mountpoint, { recursive: true });
  mountAll(mounts, mountpoint);
  undo.push(`unmount ${mountpoint}`, () => unmount(mountpoint));
  return { rootfs: mountpoint, mounted: true };
}

/** Where runc keeps its state: tmpfs for the system-wide root, else inside --root. */
export function defaultRuntimeRoot(root: string): string {
  return process.getuid?.() === 0 && root === "/var/lib/dist" ? "/run/dist/runc" : join(root, "runc");
}

export interface CreateOptions {
  root: string;
  namespace: string;
  id: string;
  ref: string;
  matcher?: PlatformMatcher;
  /** The runtime binary (findRuntime) and its state root. */
  runtime: string;
  runtimeRoot: string;
  /** --user; the image's User when absent. */
  user?: string;
  spec: SpecOptions;
  detach: boolean;
  autoRemove: boolean;
  /** Aborts the creation (SIGINT while unpacking): everything done so far is undone. */
  signal?: AbortSignal;
  /** In a rootless run's user namespace (rootless.ts): runc --rootless, no cgroups, only mapped ids. */
  rootless?: RootlessContext;
}

/** The runtime of a container, rootless as it was created. */
function runcOf(record: ContainerRecord): Runc {
  return new Runc(record.runtime, record.runtimeRoot, { rootless: record.rootless !== undefined });
}

/**
 * The container's cgroup: `/dist/<namespace>/<id>` for the system root; other
 * roots (tests, users' own) get their own parent, so equal ids never share a cgroup.
 */
export function cgroupsPathFor(root: string, namespace: string, id: string): string {
  if (root === "/var/lib/dist") return `/dist/${namespace}/${id}`;
  const tag = createHash("sha256").update(resolve(root)).digest("hex").slice(0, 8);
  return `/dist-${tag}/${namespace}/${id}`;
}

/**
 * Removes the now empty parents of a container's cgroup in every hierarchy
 * (runc removes the container's own); busy or missing ones are left alone.
 */
export function pruneCgroupParents(cgroupsPath: string, base = "/sys/fs/cgroup"): void {
  const parts = cgroupsPath.split("/").filter(Boolean);
  let hierarchies: string[];
  try {
    hierarchies = [base, ...readdirSync(base).map((d) => join(base, d))];
  } catch {
    return;
  }
  for (const h of hierarchies) {
    for (let n = parts.length - 1; n > 0; n--) {
      try {
        rmdirSync(join(h, ...parts.slice(0, n)));
      } catch {
        break;
      }
    }
  }
}

/** A container's hostname: its id, made a valid host name label. */
function hostnameFor(id: string): string {
  return (
    id
      .replace(/[^A-Za-z0-9.-]/g, "-")
      .slice(0, 63)
      .replace(/[.-]+$/, "") || "dist"
  );
}

/** Creates everything a container needs, or nothing at all. */
export async function createContainer(
  deps: RunDeps,
  opts: CreateOptions,
): Promise<{ record: ContainerRecord; spec: Spec }> {
  const id = validateContainerId(opts.id);
  const image = await resolveImage(deps, opts.ref, opts.matcher);
  if (processArgs(image.config.config, opts.spec).length === 0) {
    throw new InvalidArgumentError(
      `image "${image.name}" has no command (no Entrypoint or Cmd): give one after the image name`,
    );
  }
  const undo = new Undo(deps.log);
  try {
    const dir = reserveContainer(opts.root, id);
    undo.push(`remove ${dir}`, () => removeTree(dir));
    await ensureUnpacked(deps, image, opts.signal);
    opts.signal?.throwIfAborted();
    const bundle = join(dir, "bundle");
    await mkdir(bundle, { mode: 0o700 });
    const { rootfs, mounted } = await prepareRootfs(deps.snapshotter, id, image.chainID, join(bundle, "rootfs"), undo, {
      "dist.container": id,
    });
    const user = resolveUser(opts.user ?? image.config.config.User ?? "", await readUserFiles(rootfs));
    let spec = buildSpec(
      image.config,
      {
        hostname: hostnameFor(id),
        cgroupsPath: opts.rootless ? undefined : cgroupsPathFor(opts.root, opts.namespace, id),
        ...opts.spec,
        rootPath: rootfs,
      },
      user,
    );
    if (opts.rootless) spec = rootlessSpec(spec, opts.rootless);
    writeFileSync(join(bundle, "config.json"), `${JSON.stringify(spec, null, 2)}\n`, { mode: 0o600 });
    const record: ContainerRecord = {
      id,
      namespace: opts.namespace,
      image: image.name,
      manifest: image.manifestDesc.digest,
      snapshotter: deps.snapshotter.name,
      snapshotKey: id,
      bundle,
      rootfs,
      mounted,
      runtime: opts.runtime,
      runtimeRoot: opts.runtimeRoot,
      args: spec.process.args,
      detached: opts.detach,
      autoRemove: opts.autoRemove,
      createdAt: new Date().toISOString(),
    };
    if (opts.rootless) record.rootless = opts.rootless;
    const stop = image.config.config.StopSignal;
    if (stop) record.stopSignal = stop;
    if (opts.detach) record.log = join(dir, "output.log");
    writeRecord(opts.root, record);
    opts.signal?.throwIfAborted();
    undo.clear();
    return { record, spec };
  } catch (err) {
    await undo.run();
    throw err;
  }
}

function runcLogError(file: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  let msg: string | undefined;
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      const e = JSON.parse(line) as { level?: string; msg?: string };
      if ((e.level === "error" || e.level === "fatal") && e.msg) msg = e.msg;
    } catch {}
  }
  return msg;
}

/** docker's codes for a command that could not start: 127 not found, 126 not executable, 125 otherwise. */
function startFailureCode(msg: string): number {
  if (/no such file or directory|executable file not found/.test(msg)) return 127;
  if (/permission denied|exec format error/.test(msg)) return 126;
  return 125;
}

export interface StartOptions {
  /** Keep stdin attached (docker -i); a TTY implies it. */
  interactive?: boolean;
  log?: RunLog;
}

export interface StartResult {
  /** The container's exit status, 128+n when killed by signal n; 125–127 when it never started. */
  exitCode: number;
  /** runc's own error when the container could not start. */
  startError?: string;
}

const FORWARDED: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"];

/**
 * Runs a created container in the foreground: its stdout and stderr are ours
 * (runc passes its descriptors through when there is no terminal), its exit
 * status comes back, and SIGINT/SIGTERM/SIGHUP/SIGQUIT sent to us are forwarded
 * with `runc kill`.
 */
export async function startForeground(
  root: string,
  record: ContainerRecord,
  opts: StartOptions = {},
): Promise<StartResult> {
  const runc = runcOf(record);
  const tty = readConfigTerminal(record);
  const attachStdin = tty || Boolean(opts.interactive);
  // with a terminal (or stdin from one) runc must stay in our foreground process group;
  // otherwise it gets its own, and terminal signals reach the container once, through us
  const sameGroup = tty || (attachStdin && process.stdin.isTTY === true);
  const logFile = join(containerDir(root, record.id), "runc.log");
  const child = runc.run(record.id, record.bundle, {
    stdio: [attachStdin ? "inherit" : "ignore", "inherit", "inherit"],
    processGroup: !sameGroup,
    log: logFile,
  });
  const handlers = new Map<NodeJS.Signals, () => void>();
  let interrupts = 0;
  for (const sig of FORWARDED) {
    const h = () => {
      if (sameGroup && (sig === "SIGINT" || sig === "SIGQUIT")) return; // the terminal sent it to runc too
      // a process 1 without a handler ignores SIGINT: the third one kills the container, as docker's CLI does
      const send = sig === "SIGINT" && ++interrupts >= 3 ? "SIGKILL" : sig;
      if (send === "SIGKILL") opts.log?.warn(`third interrupt: killing container ${record.id}`);
      runc.kill(record.id, send, { all: send === "SIGKILL" }).catch(() => {
        // not created yet (or gone): runc itself forwards what it receives
        child.kill(sig); // never SIGKILL runc itself: its container would be orphaned
      });
    };
    handlers.set(sig, h);
    process.on(sig, h);
  }
  try {
    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
      (resolve, reject) => {
        child.once("error", reject);
        child.once("exit", (code, signal) => resolve({ code, signal }));
      },
    );
    const startError = runcLogError(logFile);
    if (startError && /runc run failed|unable to start|container_linux|create failed/.test(startError)) {
      return { exitCode: startFailureCode(startError), startError };
    }
    if (code !== null) return { exitCode: code };
    return { exitCode: 128 + (signal ? (constants.signals[signal] ?? 0) : 0) };
  } finally {
    for (const [sig, h] of handlers) process.off(sig, h);
  }
}

/**
 * Runs a created container in the foreground (startForeground), then removes it
 * when it was created to be removed or never started (of no use then), else
 * only unmounts its rootfs (docker keeps stopped containers). Returns its exit status.
 */
export async function runForeground(
  root: string,
  record: ContainerRecord,
  snapshotter: Snapshotter,
  opts: StartOptions = {},
): Promise<number> {
  let exitCode = 125;
  let startError: string | undefined;
  try {
    ({ exitCode, startError } = await startForeground(root, record, opts));
  } finally {
    try {
      if (record.autoRemove || startError !== undefined || exitCode === 125) {
        await removeContainer(root, record.id, snapshotter, { force: true });
      } else releaseMount(root, record);
    } catch (err) {
      opts.log?.warn(`cleanup of ${record.id}: ${errorMessage(err)}`);
    }
  }
  return exitCode;
}

/** Starts a created container detached (startDetached); one that does not start is removed. */
export async function runDetached(
  root: string,
  record: ContainerRecord,
  snapshotter: Snapshotter,
  log?: RunLog,
): Promise<void> {
  try {
    await startDetached(root, record);
  } catch (err) {
    await removeContainer(root, record.id, snapshotter, { force: true }).catch((e) =>
      log?.warn(`cleanup of ${record.id}: ${errorMessage(e)}`),
    );
    throw err;
  }
}

/** Starts a created container detached: its output goes to the record's log file. */
export async function startDetached(root: string, record: ContainerRecord): Promise<void> {
  const runc = runcOf(record);
  const logFile = join(containerDir(root, record.id), "runc.log");
  const out = openSync(record.log ?? "/dev/null", "a", 0o600);
  try {
    const child = runc.run(record.id, record.bundle, {
      detach: true,
      stdio: ["ignore", out, out],
      processGroup: true,
      log: logFile,
    });
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once("error", reject);
      child.once("exit", (c) => resolve(c));
    });
    if (code !== 0) {
      throw new FailedPreconditionError(
        `container ${record.id} did not start: ${runcLogError(logFile) ?? `runc exited with ${code}`}`,
      );
    }
  } finally {
    closeSync(out);
  }
}

function readConfigTerminal(record: ContainerRecord): boolean {
  try {
    const spec = JSON.parse(readFileSync(join(record.bundle, "config.json"), "utf8")) as Spec;
    return Boolean(spec.process?.terminal);
  } catch {
    return false;
  }
}

export type ContainerStatus = "created" | "running" | "paused" | "stopped" | "creating" | "unknown";

export async function containerStatus(record: ContainerRecord): Promise<{ status: ContainerStatus; pid?: number }> {
  const st = await runcOf(record)
    .state(record.id)
    .catch(() => undefined);
  if (!st) return { status: "stopped" };
  const known = ["created", "running", "paused", "stopped", "creating"];
  return {
    status: (known.includes(st.status) ? st.status : "unknown") as ContainerStatus,
    pid: st.pid || undefined,
  };
}

/** SIGTERM, TERM, 15 → what runc kill accepts; anything else is InvalidArgument. */
export function signalName(s: string): string {
  if (/^\d{1,2}$/.test(s) && Number(s) >= 1 && Number(s) <= 64) return s;
  const name = s.toUpperCase().replace(/^SIG/, "");
  if (Object.hasOwn(constants.signals, `SIG${name}`)) return `SIG${name}`;
  throw new InvalidArgumentError(`invalid signal "${s}": expected a name like SIGTERM, TERM or KILL, or a number`);
}

/**
 * Sends a signal (signalName) to a container's process, all of its processes
 * with `all`; by default the image's StopSignal, else SIGTERM, as docker does.
 */
export async function killContainer(
  root: string,
  id: string,
  signal: string | undefined,
  opts: { all?: boolean } = {},
): Promise<void> {
  const record = readRecord(root, id);
  signal = signalName(signal ?? record.stopSignal ?? "SIGTERM");
  const { status } = await containerStatus(record);
  if (status !== "running" && status !== "paused" && status !== "created") {
    throw new FailedPreconditionError(`container ${id} is not running (it is ${status})`);
  }
  await runcOf(record).kill(id, signal, opts);
}

/**
 * Removes a container: runc's state, our mount, the snapshot and the directory.
 * A running container is refused unless `force` (then killed first).
 */
export async function removeContainer(
  root: string,
  id: string,
  snapshotter: Snapshotter | undefined,
  opts: { force?: boolean } = {},
): Promise<void> {
  validateContainerId(id);
  const record = readRecord(root, id);
  const runc = runcOf(record);
  const { status } = await containerStatus(record);
  if (status === "running" || status === "paused" || status === "creating") {
    if (!opts.force) {
      throw new FailedPreconditionError(`container ${id} is ${status}: stop it first (dist kill ${id}) or use rm -f`);
    }
    await runc.kill(id, "KILL", { all: true }).catch(() => {});
  }
  if (status !== "stopped" || (await runc.state(id).catch(() => undefined))) {
    await runc.delete(id, { force: true }).catch((err) => {
      if (!(err instanceof NotFoundError)) throw err;
    });
  }
  if (record.mounted && isMountPoint(record.rootfs)) unmount(record.rootfs);
  if (snapshotter) {
    // outside its namespace, the user cannot remove what a rootless container made as another id
    if (record.rootless && process.getuid?.() !== 0) {
      const dirs = writableDirs(await snapshotter.mounts(record.snapshotKey).catch(() => []));
      reclaimOwnership(dirs, record.rootless);
    }
    await snapshotter.remove(record.snapshotKey).catch((err) => {
      if (!(err instanceof NotFoundError)) throw err;
    });
  }
  await removeTree(containerDir(root, id));
  pruneCgroupParents(cgroupsPathFor(root, record.namespace, id));
}

/**
 * Removes container `id` (removeContainer) or, where a creation was killed before
 * its record was written, what it left (removeIncomplete). The snapshotter is
 * opened by the name and namespace in the record (the default ones for such remains).
 */
export async function removeContainerOrRemains(
  root: string,
  id: string,
  openSnapshotter: (name?: string, namespace?: string) => Promise<Snapshotter>,
  opts: { force?: boolean } = {},
): Promise<void> {
  let record: ContainerRecord;
  try {
    record = readRecord(root, id);
  } catch (err) {
    if (!(err instanceof NotFoundError) || !existsSync(containerDir(root, id))) throw err;
    return removeIncomplete(root, id, await openSnapshotter());
  }
  await removeContainer(root, id, await openSnapshotter(record.snapshotter, record.namespace), opts);
}

/**
 * Removes what an interrupted creation left (a container directory without its
 * record): our mount in it, and snapshot `id` when it carries our label.
 */
export async function removeIncomplete(root: string, id: string, snapshotter: Snapshotter | undefined): Promise<void> {
  const dir = containerDir(root, id);
  const rootfs = join(dir, "bundle", "rootfs");
  if (isMountPoint(rootfs)) unmount(rootfs);
  if (snapshotter) {
    const info = await snapshotter.stat(id).catch(() => undefined);
    if (info?.labels["dist.container"] === id) await snapshotter.remove(id);
  }
  await removeTree(dir);
}

/** After a foreground run without --rm: unmount, keep the snapshot and record (docker keeps stopped containers). */
export function releaseMount(root: string, record: ContainerRecord): void {
  if (record.mounted && isMountPoint(record.rootfs)) unmount(record.rootfs);
  if (record.mounted) writeRecord(root, { ...record, mounted: false });
}
