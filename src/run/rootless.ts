/**
 * Running containers without root, as podman does: `dist run` re-executes
 * itself inside a new user namespace (and mount namespace) where the user is
 * root, made by util-linux's `unshare`:
 *
 *   the user → 0, and the user's /etc/subuid and /etc/subgid ranges → 1…N
 *     (through newuidmap/newgidmap, Debian package "uidmap"), where both exist;
 *   the user → 0 alone otherwise (only root exists in the container then).
 *
 * Inside, it runs as it does for root, with what a user namespace changes:
 * runc --rootless, no cgroups (unless the user's cgroup v2 subtree is
 * delegated), device nodes bound by runc, devpts without gid=5 when gid 5 is
 * not mapped. Files the container made as a subordinate id cannot be removed
 * by the user outside: `reclaimOwnership` chowns them back inside a namespace
 * of the same mapping first.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { userInfo } from "node:os";
import { delimiter, join } from "node:path";
import { FailedPreconditionError } from "../errors.ts";
import type { Spec } from "../oci/spec.ts";
import { findExecutable } from "./runc.ts";

/** Set in the re-executed process: it is the rootless run's namespace (with a mapping of `ROOTLESS_MAPPING`). */
export const ROOTLESS_ENV = "DIST_ROOTLESS";

/** One subordinate id range of /etc/subuid or /etc/subgid. */
export interface IdRange {
  start: number;
  count: number;
}

export interface RootlessPlan {
  uid: number;
  gid: number;
  user: string;
  /** The subordinate ranges mapped to 1…count, when the user has both and newuidmap/newgidmap exist. */
  subuid?: IdRange;
  subgid?: IdRange;
  /** Why there is a single mapping (no ranges, no newuidmap): for --debug, and for errors about other users. */
  single?: string;
  /** util-linux's unshare. */
  unshare: string;
}

export interface HostFiles {
  /** Where /proc/sys is (tests). */
  procSys?: string;
  subuid?: string;
  subgid?: string;
  /** Where programs are looked for (default $PATH and the sbin and bin directories). */
  path?: readonly string[];
  uid?: number;
  gid?: number;
  user?: string;
}

function readNumber(file: string): number | undefined {
  try {
    const n = Number(readFileSync(file, "utf8").trim());
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** The user's first range in a subordinate id file (`name:start:count` or `uid:start:count`). */
export function subordinateRange(text: string, user: string, id: number): IdRange | undefined {
  for (const line of text.split("\n")) {
    const [who, start, count] = line.trim().split(":");
    if (who !== user && who !== String(id)) continue;
    const s = Number(start);
    const c = Number(count);
    if (Number.isSafeInteger(s) && Number.isSafeInteger(c) && s > 0 && c > 0) return { start: s, count: c };
  }
  return undefined;
}

function readRange(file: string, user: string, id: number): IdRange | undefined {
  try {
    return subordinateRange(readFileSync(file, "utf8"), user, id);
  } catch {
    return undefined;
  }
}

/**
 * How this user can get a user namespace, or an error naming what is missing:
 * user namespaces (disabled by sysctl), util-linux's unshare. Subordinate ids
 * are optional (a single mapping without them).
 */
export function rootlessPlan(host: HostFiles = {}): RootlessPlan {
  const procSys = host.procSys ?? "/proc/sys";
  const path = host.path ?? [
    ...(process.env.PATH ?? "").split(delimiter).filter(Boolean),
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
  ];
  const uid = host.uid ?? process.getuid?.() ?? 0;
  const gid = host.gid ?? process.getgid?.() ?? 0;
  const user = host.user ?? userInfo().username;
  if (readNumber(join(procSys, "user", "max_user_namespaces")) === 0) {
    throw new FailedPreconditionError(
      "dist run without root needs user namespaces, and they are disabled here (sysctl user.max_user_namespaces = 0): run as root, or set it above 0",
    );
  }
  if (readNumber(join(procSys, "kernel", "unprivileged_userns_clone")) === 0) {
    throw new FailedPreconditionError(
      "dist run without root needs user namespaces, and unprivileged ones are disabled here (sysctl kernel.unprivileged_userns_clone = 0): run as root, or set it to 1",
    );
  }
  if (readNumber(join(procSys, "kernel", "apparmor_restrict_unprivileged_userns")) === 1) {
    throw new FailedPreconditionError(
      "dist run without root needs user namespaces, and AppArmor restricts unprivileged ones here (sysctl kernel.apparmor_restrict_unprivileged_userns = 1): run as root, or allow them",
    );
  }
  const unshare = findExecutable("unshare", path);
  if (!unshare) {
    throw new FailedPreconditionError(
      'dist run without root needs "unshare" (Debian package util-linux) to make its user namespace',
    );
  }
  const plan: RootlessPlan = { uid, gid, user, unshare };
  const subuid = readRange(host.subuid ?? "/etc/subuid", user, uid);
  const subgid = readRange(host.subgid ?? "/etc/subgid", user, uid);
  if (!subuid || !subgid) {
    plan.single = `no ${!subuid ? "/etc/subuid" : "/etc/subgid"} range for ${user}`;
  } else if (!findExecutable("newuidmap", path) || !findExecutable("newgidmap", path)) {
    plan.single = 'no newuidmap/newgidmap (Debian package "uidmap")';
  } else {
    plan.subuid = subuid;
    plan.subgid = subgid;
  }
  return plan;
}

/** The mapping options of unshare for a plan (the user → 0, the ranges → 1…). */
export function mappingArgs(plan: RootlessPlan): string[] {
  const args = ["--map-root-user"];
  if (plan.subuid && plan.subgid) {
    args.push(`--map-users=${plan.subuid.start},1,${plan.subuid.count}`);
    args.push(`--map-groups=${plan.subgid.start},1,${plan.subgid.count}`);
  }
  return args;
}

/**
 * Replaces this process with the same dist command inside a new user and mount
 * namespace (never returns). `env` adds to the environment: the store root and
 * snapshotter decided outside, which inside (as root) would default otherwise.
 */
export function reexecRootless(plan: RootlessPlan, args: string[], env: Record<string, string>): never {
  const node = [process.execPath, ...process.execArgv, process.argv[1], ...args];
  const argv = [plan.unshare, ...mappingArgs(plan), "--mount", "--propagation", "private", "--", ...node];
  process.execve?.(plan.unshare, argv, {
    ...process.env,
    ...env,
    [ROOTLESS_ENV]: JSON.stringify({ subuid: plan.subuid, subgid: plan.subgid, user: plan.user }),
  });
  throw new FailedPreconditionError("this Node.js cannot replace its process (process.execve): Node 24 is needed");
}

/** What the re-executed process knows of its namespace; undefined outside one (or as real root). */
export interface RootlessContext {
  user: string;
  subuid?: IdRange;
  subgid?: IdRange;
}

/** Whether this process is a rootless run's (ROOTLESS_ENV set, and really in a user namespace other than the first). */
export function rootlessContext(uidMap = "/proc/self/uid_map"): RootlessContext | undefined {
  const v = process.env[ROOTLESS_ENV];
  if (!v) return undefined;
  let map: string;
  try {
    map = readFileSync(uidMap, "utf8").trim();
  } catch {
    return undefined;
  }
  // the first namespace maps every id onto itself
  if (/^0\s+0\s+4294967295$/.test(map)) return undefined;
  try {
    return JSON.parse(v) as RootlessContext;
  } catch {
    return undefined;
  }
}

/** Whether an id exists in the container: 0 always, 1…count with a range. */
function mapped(id: number, range: IdRange | undefined): boolean {
  return id === 0 || (range !== undefined && id >= 1 && id <= range.count);
}

/**
 * The spec of a container in a rootless run: no cgroup path (no cgroups unless
 * delegated), no devpts gid=5 when gid 5 does not exist; a user or group the
 * namespace has no id for is an error saying what would map it.
 */
export function rootlessSpec(spec: Spec, ctx: RootlessContext): Spec {
  const { uid, gid } = spec.process.user;
  const need = `add ranges for ${ctx.user} to /etc/subuid and /etc/subgid (and install newuidmap/newgidmap, Debian package "uidmap")`;
  const ids = (r: IdRange | undefined) => (r ? `ids 0 to ${r.count} are` : "only id 0 (root) is");
  if (!mapped(uid, ctx.subuid)) {
    throw new FailedPreconditionError(
      `the container's user ${uid} does not exist in this rootless run (${ids(ctx.subuid)} mapped): ${need}, or run it as root (--user 0)`,
    );
  }
  if (!mapped(gid, ctx.subgid)) {
    throw new FailedPreconditionError(
      `the container's group ${gid} does not exist in this rootless run (${ids(ctx.subgid)} mapped): ${need}`,
    );
  }
  const out: Spec = structuredClone(spec);
  out.process.user.additionalGids = (out.process.user.additionalGids ?? []).filter((g) => mapped(g, ctx.subgid));
  delete out.linux.cgroupsPath;
  if (!mapped(5, ctx.subgid)) {
    for (const m of out.mounts) if (m.type === "devpts") m.options = m.options?.filter((o) => o !== "gid=5");
  }
  return out;
}

/**
 * Gives the user back files a rootless container made as one of its
 * subordinate ids (they belong to those ids outside): chown to the user, done
 * by root inside a namespace of the same mapping. Nothing to do without ranges.
 */
export function reclaimOwnership(dirs: readonly string[], ctx: RootlessContext, host: HostFiles = {}): void {
  if (!ctx.subuid || !ctx.subgid || dirs.length === 0) return;
  const plan = rootlessPlan(host);
  if (!plan.subuid || !plan.subgid) return;
  const r = spawnSync(plan.unshare, [...mappingArgs(plan), "--", "chown", "-R", "-h", "0:0", "--", ...dirs], {
    encoding: "utf8",
  });
  if (r.status !== 0) {
    throw new FailedPreconditionError(
      `could not take back the files of a rootless container in ${dirs.join(", ")}: ${(r.stderr || r.error?.message || "").trim()}`,
    );
  }
}
