/**
 * The entries of an archive to import, from a tar stream (a file, gzip or
 * zstd compressed or not, or a pipe) or from a directory, as one sequence:
 * paths relative to the archive's root, checked not to leave it, and file
 * bodies to read once in order. Links are reported, never followed: in a
 * directory a symbolic link is read with readlink, and files are opened
 * without following one (and checked to be the file that was listed).
 */
import { constants, createReadStream } from "node:fs";
import { type FileHandle, lstat, open, opendir, readlink, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { decompressStream } from "../archive/compression.ts";
import { BLOCK, readTar } from "../archive/tar/index.ts";
import { InvalidArgumentError, wrapError } from "../errors.ts";

export type EntryType = "file" | "dir" | "symlink" | "link";

export interface ArchiveEntry {
  /** Relative to the archive's root, `/`-separated, without `.` or `..` components. */
  path: string;
  type: EntryType;
  /** Bytes of a file's body (0 for the rest). */
  size: number;
  /** A link's target as written (see linkTarget). */
  target?: string;
  /** A file's body: read it once, before asking for the next entry, or leave it. */
  body?: () => Promise<AsyncIterable<Uint8Array>>;
}

/** Reads that a file source is given in: large, so a 1 GiB import is a thousand reads, not sixteen thousand. */
const READ_CHUNK = 1 << 20;

/**
 * A path inside the archive, from an entry name or a link target relative to
 * `dir`: `./a//b/` → `a/b`; `""` for the root itself. A path that is absolute
 * or climbs above the root is refused.
 */
export function archivePath(name: string, dir = ""): string {
  if (name.startsWith("/")) throw new InvalidArgumentError(`"${name}" escapes the archive root (absolute path)`);
  const parts: string[] = dir ? dir.split("/") : [];
  for (const p of name.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") {
      if (parts.length === 0) {
        throw new InvalidArgumentError(`"${dir ? `${dir}/` : ""}${name}" escapes the archive root (a ".." above it)`);
      }
      parts.pop();
    } else parts.push(p);
  }
  return parts.join("/");
}

/** An entry's name as an archive path: no `..` at all (no image archive has one). */
export function entryPath(name: string): string {
  if (name.split("/").includes(".."))
    throw new InvalidArgumentError(`entry "${name}" escapes the archive root (a "..")`);
  return archivePath(name);
}

/**
 * Where a link entry points, as an archive path: a symbolic link's target is
 * relative to the link's directory, a hard link's to the root. Never followed
 * on disk, and refused when it leaves the archive.
 */
export function linkTarget(e: ArchiveEntry): string {
  const target = e.target ?? "";
  if (e.type === "link") return archivePath(target);
  const i = e.path.lastIndexOf("/");
  try {
    return archivePath(target, i < 0 ? "" : e.path.slice(0, i));
  } catch (err) {
    throw wrapError(err, `link ${e.path}`);
  }
}

/**
 * The entries of a tar stream, decompressed when it is gzip or zstd. When the
 * archive's size is known (`limit`, an uncompressed file), an entry claiming
 * more bytes than the archive holds is refused before anything is read.
 */
export async function* tarEntries(source: Readable, opts: { limit?: number } = {}): AsyncGenerator<ArchiveEntry> {
  const { compression, stream } = await decompressStream(source, { what: "archive" });
  const limit = compression === "none" ? opts.limit : undefined;
  for await (const { header: h, body } of readTar(stream)) {
    const path = entryPath(h.name);
    if (limit !== undefined && h.type === "file" && h.offset + BLOCK + h.size > limit) {
      throw new InvalidArgumentError(`entry ${path} claims ${h.size} bytes, more than the ${limit}-byte archive holds`);
    }
    switch (h.type) {
      case "file":
        yield { path, type: "file", size: h.size, body: async () => body };
        break;
      case "dir":
        yield { path, type: "dir", size: 0 };
        break;
      case "symlink":
        yield { path, type: "symlink", size: 0, target: h.linkname };
        break;
      case "link":
        yield { path, type: "link", size: 0, target: h.linkname };
        break;
      default:
        throw new InvalidArgumentError(`entry ${path}: a ${h.type} device or fifo has no place in an image archive`);
    }
  }
}

/** The entries of a tar file (see tarEntries); a FIFO or a device is read as a stream. */
export async function* tarFileEntries(file: string): AsyncGenerator<ArchiveEntry> {
  const st = await stat(file);
  const stream = createReadStream(file, { highWaterMark: READ_CHUNK });
  try {
    yield* tarEntries(stream, { limit: st.isFile() ? st.size : undefined });
  } finally {
    stream.destroy();
  }
}

/**
 * The entries of a directory, depth-first in name order. Symbolic links are
 * entries of their own (their target read, never followed); a file is
 * opened with O_NOFOLLOW and must be the one that was listed.
 */
export async function* directoryEntries(root: string, rel = ""): AsyncGenerator<ArchiveEntry> {
  const names: string[] = [];
  for await (const d of await opendir(rel ? join(root, rel) : root)) names.push(d.name);
  names.sort();
  for (const name of names) {
    const path = rel ? `${rel}/${name}` : name;
    const full = join(root, path);
    const st = await lstat(full);
    if (st.isSymbolicLink()) {
      yield { path, type: "symlink", size: 0, target: await readlink(full) };
    } else if (st.isDirectory()) {
      yield { path, type: "dir", size: 0 };
      yield* directoryEntries(root, path);
    } else if (st.isFile()) {
      yield { path, type: "file", size: st.size, body: () => openListed(full, path, st.ino, st.size) };
    } else {
      throw new InvalidArgumentError(`${path}: not a regular file, directory or symbolic link`);
    }
  }
}

async function openListed(full: string, path: string, ino: number, size: number): Promise<AsyncIterable<Uint8Array>> {
  let fh: FileHandle;
  try {
    fh = await open(full, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ELOOP") {
      throw new InvalidArgumentError(`${path} became a symbolic link while it was read`);
    }
    throw err;
  }
  const st = await fh.stat();
  if (st.ino !== ino || !st.isFile() || st.size !== size) {
    await fh.close();
    throw new InvalidArgumentError(`${path} changed while it was read`);
  }
  return fh.createReadStream({ highWaterMark: READ_CHUNK, end: size > 0 ? size - 1 : undefined, start: 0 });
}
