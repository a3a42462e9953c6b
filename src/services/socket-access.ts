/**
 * Who may use the daemon's socket: its owner only, or the members of one group
 * (`dist daemon --group NAME|GID`, containerd's `[grpc] gid`). A group member
 * reaches the socket only through directories it may search, so the socket's
 * own directory is opened for search (0711, as containerd's state directory),
 * never for listing, and an ancestor that still stops the group is named.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, readFileSync, type Stats, statSync } from "node:fs";
import { dirname } from "node:path";
import { InvalidArgumentError } from "../errors.ts";
import { parseGroup } from "../oci/user.ts";
import { formatMode } from "../store-root.ts";

const MAX_ID = 2 ** 31 - 1;

/** The gid of a host group given by name or number, as getent finds it (NSS), else in /etc/group. */
export function hostGroupId(group: string | number): number {
  const spec = String(group).trim();
  if (/^\d+$/.test(spec)) {
    const gid = Number(spec);
    if (gid > MAX_ID) throw new InvalidArgumentError(`invalid group id ${spec}: at most ${MAX_ID}`);
    return gid;
  }
  if (!/^[A-Za-z_][A-Za-z0-9_.-]*\$?$/.test(spec)) {
    throw new InvalidArgumentError(`invalid group "${spec}": expected a group name or a numeric gid`);
  }
  const entry = parseGroup(groupDatabase(spec)).find((g) => g.name === spec);
  if (!entry) throw new InvalidArgumentError(`group "${spec}" not found on this host`);
  return entry.gid;
}

/** getent's line for the group (empty when it has none), or /etc/group where getent is missing. */
function groupDatabase(name: string): string {
  try {
    return execFileSync("getent", ["group", name], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { status?: number };
    if (e.code !== "ENOENT") return ""; // getent exits 2 for a group it does not know
    try {
      return readFileSync("/etc/group", "utf8");
    } catch {
      return "";
    }
  }
}

function searchable(st: Stats, gid: number): boolean {
  return (st.mode & 0o001) !== 0 || ((st.mode & 0o010) !== 0 && st.gid === gid);
}

/** Where openSocketPath reports what it changed and what stops the group. */
export interface SocketPathLog {
  onNote(msg: string): void;
  onWarning(msg: string): void;
}

/**
 * Lets members of group `gid` (named `group` in messages) reach the socket at `path`:
 * its directory, when the daemon's user owns it, gets search permission for everyone
 * (listing stays the owner's); a directory above it that stops them is reported, not
 * changed. Returns whether they can reach it.
 */
export function openSocketPath(path: string, gid: number, group: string, log: SocketPathLog): boolean {
  const dir = dirname(path);
  const st = statSync(dir);
  if (!searchable(st, gid) && st.uid === process.geteuid?.()) {
    const from = st.mode & 0o7777;
    chmodSync(dir, from | 0o011);
    log.onNote(
      `made the socket directory ${dir} searchable (${formatMode(from)} → ${formatMode(from | 0o011)}) so that group ${group} reaches the socket`,
    );
  }
  for (let d = dir; ; d = dirname(d)) {
    const s = statSync(d);
    if (!searchable(s, gid)) {
      log.onWarning(
        `members of group ${group} cannot reach the socket ${path}: ${d} (mode ${formatMode(s.mode)}, uid ${s.uid}, gid ${s.gid}) does not let them search it`,
      );
      return false;
    }
    if (d === dirname(d)) return true;
  }
}
