/**
 * The container's user from a `User` string (image config or --user): `name`,
 * `uid`, `name:group`, `uid:gid` or mixed, looked up in the image's own
 * /etc/passwd and /etc/group (never the host's), with the supplementary groups
 * /etc/group lists the user in, as containerd and runc do. Pure: the caller
 * reads the files (see rootfs.ts).
 */
import { InvalidArgumentError, NotFoundError } from "../errors.ts";

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** The files a lookup may read; undefined when the image has no such file. */
export interface UserFiles {
  passwd?: string;
  group?: string;
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** The primary gid first, then supplementary groups (containerd puts the gid in too). */
  additionalGids: number[];
  /** Home directory from /etc/passwd, when the user has an entry. */
  home?: string;
  /** The user name, when known. */
  name?: string;
}

/** runc refuses ids above MaxInt32; so do we, early and with the input named. */
const MAX_ID = 2 ** 31 - 1;

function parseId(s: string): number | undefined {
  if (!/^\d{1,10}$/.test(s)) return undefined;
  const n = Number(s);
  return n <= MAX_ID ? n : undefined;
}

/** /etc/passwd lines `name:pw:uid:gid:gecos:home:shell`; malformed lines are skipped, as libc does. */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const f = line.split(":");
    if (f.length < 4) continue;
    const uid = parseId(f[2]);
    const gid = parseId(f[3]);
    if (!f[0] || uid === undefined || gid === undefined) continue;
    out.push({ name: f[0], uid, gid, home: f[5] ?? "", shell: f[6] ?? "" });
  }
  return out;
}

/** /etc/group lines `name:pw:gid:member,member`. */
export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const f = line.split(":");
    if (f.length < 3) continue;
    const gid = parseId(f[2]);
    if (!f[0] || gid === undefined) continue;
    const members = (f[3] ?? "")
      .split(",")
      .map((m) => m.trim())
      .filter(Boolean);
    out.push({ name: f[0], gid, members });
  }
  return out;
}

/**
 * Resolves `spec` ("" means root). A name that is not in the image's files is an
 * error; a numeric uid without an entry runs with gid 0, as runc and containerd do.
 */
export function resolveUser(spec: string, files: UserFiles): ResolvedUser {
  const parts = spec.split(":");
  if (parts.length > 2 || parts.some((p, i) => p === "" && (i > 0 || parts.length > 1))) {
    throw new InvalidArgumentError(`invalid user "${spec}": expected name, uid, name:group or uid:gid`);
  }
  const passwd = files.passwd === undefined ? undefined : parsePasswd(files.passwd);
  const groups = files.group === undefined ? undefined : parseGroup(files.group);
  const [userPart = "", groupPart] = parts;

  let entry: PasswdEntry | undefined;
  let uid: number;
  if (userPart === "") {
    uid = 0;
    entry = passwd?.find((p) => p.uid === 0);
  } else {
    const n = parseId(userPart);
    if (n !== undefined) {
      uid = n;
      entry = passwd?.find((p) => p.uid === n);
    } else {
      if (/^\d+$/.test(userPart)) throw new InvalidArgumentError(`invalid user "${spec}": uid over ${MAX_ID}`);
      if (passwd === undefined) {
        throw new NotFoundError(`user "${userPart}" not found: the image has no /etc/passwd (give a numeric uid)`);
      }
      entry = passwd.find((p) => p.name === userPart);
      if (!entry) throw new NotFoundError(`user "${userPart}" not found in the image's /etc/passwd`);
      uid = entry.uid;
    }
  }

  let gid = entry?.gid ?? 0;
  if (groupPart !== undefined) {
    const n = parseId(groupPart);
    if (n !== undefined) gid = n;
    else {
      if (/^\d+$/.test(groupPart)) throw new InvalidArgumentError(`invalid user "${spec}": gid over ${MAX_ID}`);
      if (groups === undefined) {
        throw new NotFoundError(`group "${groupPart}" not found: the image has no /etc/group (give a numeric gid)`);
      }
      const g = groups.find((x) => x.name === groupPart);
      if (!g) throw new NotFoundError(`group "${groupPart}" not found in the image's /etc/group`);
      gid = g.gid;
    }
  }

  const additionalGids = [gid];
  const name = entry?.name;
  if (name !== undefined && groups) {
    for (const g of groups) {
      // a group named like the user is its primary group, not a supplementary one
      if (g.name === name || !g.members.includes(name)) continue;
      if (!additionalGids.includes(g.gid)) additionalGids.push(g.gid);
    }
  }
  const out: ResolvedUser = { uid, gid, additionalGids };
  if (entry) {
    out.name = entry.name;
    if (entry.home) out.home = entry.home;
  }
  return out;
}
