/**
 * Image config → OCI runtime spec (config.json of a bundle), after the
 * image-spec's conversion rules and with containerd's Linux defaults
 * (namespaces, mounts, capabilities, rlimits, masked and read-only paths).
 * Pure functions: the user lookup's files are read by the caller.
 *
 *   const args = processArgs(img.config, { args: ["-c", "echo hi"] });
 *   const spec = buildSpec(img, { args: ["-c", "echo hi"], hostname: "c1" }, resolveUser("", files));
 */
import { InvalidArgumentError } from "../errors.ts";
import type { ExecConfig, ImageConfig } from "./image-config.ts";
import type { ResolvedUser } from "./user.ts";

export const OCI_VERSION = "1.0.2";
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export interface SpecMount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

export interface Spec {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number; additionalGids?: number[] };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: { bounding: string[]; effective: string[]; permitted: string[] };
    rlimits: { type: string; hard: number; soft: number }[];
    noNewPrivileges: boolean;
  };
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: SpecMount[];
  annotations: Record<string, string>;
  linux: {
    cgroupsPath?: string;
    resources: { devices: { allow: boolean; access: string }[] };
    namespaces: { type: string }[];
    maskedPaths: string[];
    readonlyPaths: string[];
  };
}

/** What the caller may override; everything absent comes from the image or the defaults. */
export interface SpecOptions {
  /** Replaces the image's Cmd (docker's arguments after the image). */
  args?: string[];
  /** Replaces the image's Entrypoint and drops its Cmd, as docker's --entrypoint; [] clears it. */
  entrypoint?: string[];
  /** KEY=VALUE entries applied over the image's Env (same key replaced). */
  env?: string[];
  cwd?: string;
  tty?: boolean;
  hostname?: string;
  readonlyRootfs?: boolean;
  /** root.path: "rootfs" (relative to the bundle) unless given. */
  rootPath?: string;
  cgroupsPath?: string;
  annotations?: Record<string, string>;
}

/** containerd's default capability set (docker's too). */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
];

export const DEFAULT_NAMESPACES: readonly string[] = ["pid", "ipc", "uts", "mount", "network"];

export const MASKED_PATHS: readonly string[] = [
  "/proc/acpi",
  "/proc/asound",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/sys/firmware",
  "/proc/scsi",
];

export const READONLY_PATHS: readonly string[] = [
  "/proc/bus",
  "/proc/fs",
  "/proc/irq",
  "/proc/sys",
  "/proc/sysrq-trigger",
];

export function defaultMounts(): SpecMount[] {
  return [
    { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
    {
      destination: "/dev",
      type: "tmpfs",
      source: "tmpfs",
      options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    {
      destination: "/dev/shm",
      type: "tmpfs",
      source: "shm",
      options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
  ];
}

/**
 * The process arguments, docker's way: Entrypoint + Cmd; arguments replace Cmd
 * and keep the Entrypoint; an --entrypoint replaces the Entrypoint and drops the
 * image's Cmd. Empty means the image has no command and none was given.
 */
export function processArgs(config: ExecConfig, opts: Pick<SpecOptions, "args" | "entrypoint"> = {}): string[] {
  const entrypoint = opts.entrypoint ?? config.Entrypoint ?? [];
  const cmd = opts.args && opts.args.length > 0 ? opts.args : opts.entrypoint ? [] : (config.Cmd ?? []);
  return [...entrypoint, ...cmd];
}

function envKey(entry: string): string {
  const i = entry.indexOf("=");
  return i < 0 ? entry : entry.slice(0, i);
}

/** Checks one KEY=VALUE entry given by a user (the image's own are taken as they are). */
export function checkEnvEntry(entry: string): string {
  const i = entry.indexOf("=");
  if (i <= 0) throw new InvalidArgumentError(`invalid environment entry "${entry}": expected KEY=VALUE`);
  if (entry.slice(0, i).includes("\0") || entry.includes("\0")) {
    throw new InvalidArgumentError(`invalid environment entry "${entry}": contains a NUL byte`);
  }
  return entry;
}

/** Image env, then overrides replacing the same key in place (else appended); one entry per key. */
export function mergeEnv(base: readonly string[], overrides: readonly string[]): string[] {
  const out: string[] = [];
  const index = new Map<string, number>();
  for (const e of [...base, ...overrides]) {
    const k = envKey(e);
    const at = index.get(k);
    if (at === undefined) {
      index.set(k, out.length);
      out.push(e);
    } else out[at] = e;
  }
  return out;
}

function absolutePath(p: string, what: string): string {
  if (!p.startsWith("/")) throw new InvalidArgumentError(`${what} "${p}" is not an absolute path`);
  if (p.includes("\0")) throw new InvalidArgumentError(`${what} contains a NUL byte`);
  return p;
}

/** An RFC 1123 host name label, as runc's hostname needs (UTS, at most 64 bytes). */
export function checkHostname(h: string): string {
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]{0,62}[A-Za-z0-9])?$/.test(h)) {
    throw new InvalidArgumentError(`invalid hostname "${h}": letters, digits, "-" and "." only, at most 64`);
  }
  return h;
}

/** image-spec conversion: annotations from the config (labels first, the spec's own keys over them). */
export function imageAnnotations(img: ImageConfig): Record<string, string> {
  const c = img.config;
  const a: Record<string, string> = { ...(c.Labels ?? {}) };
  if (img.os) a["org.opencontainers.image.os"] = img.os;
  if (img.architecture) a["org.opencontainers.image.architecture"] = img.architecture;
  if (img.variant) a["org.opencontainers.image.variant"] = img.variant;
  if (img.author) a["org.opencontainers.image.author"] = img.author;
  if (img.created) a["org.opencontainers.image.created"] = img.created;
  const ports = Object.keys(c.ExposedPorts ?? {}).sort();
  if (ports.length > 0) a["org.opencontainers.image.exposedPorts"] = ports.join(",");
  if (c.StopSignal) a["org.opencontainers.image.stopSignal"] = c.StopSignal;
  return a;
}

/**
 * The runtime spec for an image, its resolved user and the caller's options.
 * Throws InvalidArgumentError when there is no command to run.
 */
export function buildSpec(img: ImageConfig, opts: SpecOptions, user: ResolvedUser): Spec {
  const c = img.config;
  const args = processArgs(c, opts);
  if (args.length === 0) {
    throw new InvalidArgumentError("the image has no command (no Entrypoint or Cmd): give one after the image");
  }
  const overrides = (opts.env ?? []).map(checkEnvEntry);
  let env = mergeEnv(c.Env ?? [], overrides);
  const has = (k: string) => env.some((e) => envKey(e) === k);
  if (!has("PATH")) env = [`PATH=${DEFAULT_PATH}`, ...env];
  if (opts.tty && !has("TERM")) env.push("TERM=xterm");
  if (user.home && !has("HOME")) env.push(`HOME=${user.home}`);

  const cwd = absolutePath(opts.cwd ?? (c.WorkingDir || "/"), "working directory");
  const hostname = checkHostname(opts.hostname ?? "dist");

  const mounts = defaultMounts();
  const taken = new Set(mounts.map((m) => m.destination));
  for (const dest of Object.keys(c.Volumes ?? {}).sort()) {
    // image-spec: volumes are not written to the rootfs; an empty tmpfs as umoci does
    const d = absolutePath(dest, "volume").replace(/\/+$/, "") || "/";
    if (d === "/" || taken.has(d)) continue;
    taken.add(d);
    mounts.push({ destination: d, type: "tmpfs", source: "none", options: ["rw", "nosuid", "nodev", "relatime"] });
  }

  const caps = [...DEFAULT_CAPABILITIES];
  const spec: Spec = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: Boolean(opts.tty),
      user: { uid: user.uid, gid: user.gid, additionalGids: [...user.additionalGids] },
      args,
      env,
      cwd,
      capabilities: { bounding: [...caps], effective: [...caps], permitted: [...caps] },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: opts.rootPath ?? "rootfs", readonly: Boolean(opts.readonlyRootfs) },
    hostname,
    mounts,
    annotations: { ...imageAnnotations(img), ...(opts.annotations ?? {}) },
    linux: {
      resources: { devices: [{ allow: false, access: "rwm" }] },
      namespaces: DEFAULT_NAMESPACES.map((type) => ({ type })),
      maskedPaths: [...MASKED_PATHS],
      readonlyPaths: [...READONLY_PATHS],
    },
  };
  if (opts.cgroupsPath) spec.linux.cgroupsPath = opts.cgroupsPath;
  return spec;
}
