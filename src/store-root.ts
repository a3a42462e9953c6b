/**
 * The store's permissions: everything dist keeps under its root is its owner's
 * alone. The root is 0700; the metadata database 0600, and SQLite gives its WAL
 * and shared-memory files the database's mode; the directories below the root
 * (content with its blobs, ingests and locks; snapshots; containers) 0700.
 *
 * An existing store is tightened when it is opened, as containerd chmods its root
 * at every start: a store made by an older dist (0755 directories, a 0644
 * database) becomes private without anything moved or rewritten. Only group and
 * other bits are taken away, and only from the root and the entries dist makes
 * there: files further down keep their modes (a snapshot's tree keeps the
 * image's own, a blob stays read-only), because the directories above them are
 * what keeps other users out.
 */
import {
  accessSync,
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  type Stats,
  statSync,
} from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { FailedPreconditionError, PermissionDeniedError, wrapError } from "./errors.ts";

/** The mode of the root and of every directory dist makes directly under it. */
export const PRIVATE_DIR = 0o700;
/** The mode of files only the store's owner may read (the database, records that may hold environment variables). */
export const PRIVATE_FILE = 0o600;

/** What dist makes in a root, tightened when the store is opened (relative paths). */
const STORE_ENTRIES = [
  "content",
  "content/blobs",
  "content/ingest",
  "content/locks",
  "metadata.db",
  "metadata.db-wal",
  "metadata.db-shm",
  "snapshots",
  "containers",
  "runc",
  "daemon.lock",
  "daemon.uuid",
];
/** Directories whose every subdirectory is dist's too (one per digest algorithm). */
const STORE_DIR_CHILDREN = ["content/blobs"];

/** Options of prepareRoot. */
export interface PrepareRootOptions {
  /** Told, in one line, when an existing store's permissions were tightened. */
  onNote?: (msg: string) => void;
  /** Told when the root is a shared directory whose mode was left alone. */
  onWarning?: (msg: string) => void;
}

/** One permission change made by prepareRoot. */
export interface ModeChange {
  path: string;
  from: number;
  to: number;
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if (errno(err) === "ENOENT" || errno(err) === "ENOTDIR") return undefined;
    throw err;
  }
}

/** "0755" */
export function formatMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}

/**
 * A directory that is never a store of its own even when --root names it: the
 * file system's root, a home directory, a sticky directory such as /tmp. Making
 * it 0700 would lock every other user out of it.
 */
function sharedDirectory(root: string, st: Stats): boolean {
  const sticky = (st.mode & 0o1000) !== 0;
  return root === "/" || root === resolve(homedir()) || sticky;
}

/**
 * Creates the store's root (0700) when it is missing, else takes group and other
 * permissions away from the root and the entries dist makes in it (see the
 * module comment), and returns what it changed. Cheap (a dozen lstat calls), so
 * every open may call it. Entries owned by another user are left as they are
 * when the caller may not change them. Throws PermissionDeniedError when the
 * caller cannot use the store at all (another user's private store).
 */
export function prepareRoot(root: string, opts: PrepareRootOptions = {}): ModeChange[] {
  const dir = resolve(root);
  let st: Stats;
  try {
    st = statSync(dir);
  } catch (err) {
    if (errno(err) !== "ENOENT") throw wrapError(err, `cannot open the store ${dir}`);
    createPrivateDir(dir);
    return [];
  }
  if (!st.isDirectory()) throw new FailedPreconditionError(`the store ${dir} is not a directory`);
  const changes: ModeChange[] = [];
  const tighten = (path: string, s: Stats) => {
    const mode = s.mode & 0o7777;
    if ((mode & 0o077) === 0) return;
    try {
      chmodSync(path, mode & ~0o077);
      changes.push({ path, from: mode, to: mode & ~0o077 });
    } catch (err) {
      // another user's entry: its owner's dist tightens it
      if (errno(err) !== "EPERM") throw wrapError(err, `cannot make the store ${dir} private`);
    }
  };
  if (sharedDirectory(dir, st)) {
    if ((st.mode & 0o077) !== 0) {
      opts.onWarning?.(
        `the store ${dir} is a shared directory (mode ${formatMode(st.mode)}): its mode is left alone; give dist a directory of its own`,
      );
    }
  } else {
    tighten(dir, st);
  }
  try {
    accessSync(dir, constants.R_OK | constants.X_OK);
  } catch (err) {
    throw new PermissionDeniedError(
      `cannot open the store ${dir}: it is private to its owner (uid ${st.uid}, mode ${formatMode(st.mode)})`,
      { cause: err },
    );
  }
  const entries = [...STORE_ENTRIES];
  for (const parent of STORE_DIR_CHILDREN) entries.push(...subdirectories(join(dir, parent), parent));
  for (const rel of entries) {
    const path = join(dir, rel);
    const s = lstatOrUndefined(path);
    if (s && (s.isDirectory() || s.isFile())) tighten(path, s);
  }
  if (changes.length > 0) opts.onNote?.(describe(dir, changes));
  return changes;
}

function subdirectories(path: string, rel: string): string[] {
  try {
    return readdirSync(path).map((n) => join(rel, n));
  } catch {
    return [];
  }
}

/** One line: what was open to other users and is not any more. */
function describe(root: string, changes: ModeChange[]): string {
  const shown = changes.slice(0, 3).map((c) => {
    const name = c.path === root ? root : c.path.slice(root.length + 1);
    return `${name} ${formatMode(c.from)} → ${formatMode(c.to)}`;
  });
  const more = changes.length > 3 ? `, and ${changes.length - 3} more` : "";
  return `the store ${root} was open to other users: made it private to its owner (${shown.join(", ")}${more})`;
}

/** mkdir with mode 0700 set explicitly (a umask may take owner bits too); the parents get the usual modes. */
function createPrivateDir(dir: string): void {
  try {
    mkdirSync(dirname(dir), { recursive: true });
    mkdirSync(dir, { mode: PRIVATE_DIR });
  } catch (err) {
    if (errno(err) === "EEXIST") return;
    throw wrapError(err, `cannot create the store ${dir}`, "PermissionDenied");
  }
  chmodSync(dir, PRIVATE_DIR);
}

/**
 * Creates `path` as an empty file of `mode` (default 0600) unless it exists, the
 * mode set explicitly rather than left to the umask. SQLite then opens it as it
 * is, and creates the database's -wal and -shm files with the same mode.
 */
export function createPrivateFile(path: string, mode = PRIVATE_FILE): void {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_CREAT | constants.O_NOFOLLOW, mode);
  } catch (err) {
    throw wrapError(err, `cannot create ${path}`);
  }
  try {
    const st = fstatSync(fd);
    if (st.size === 0 && (st.mode & 0o7777) !== mode && st.uid === process.geteuid?.()) fchmodSync(fd, mode);
  } finally {
    closeSync(fd);
  }
}
