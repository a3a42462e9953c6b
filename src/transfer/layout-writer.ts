/**
 * Writing an OCI image layout: into a tar stream with the project's tar
 * writer (the small files first, so a reader of the stream meets index.json
 * before the blobs), into a tar file (written under a temporary name beside
 * it, renamed in once complete), or into a directory (each blob renamed in
 * once complete, index.json last, so a failed export leaves no layout naming
 * what is not there; an existing layout is added to). Each blob streams from
 * the content store through a verifier: a blob that no longer matches its
 * digest fails the export.
 */
import { constants, createWriteStream } from "node:fs";
import { type FileHandle, lstat, mkdir, open, readdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { Writable } from "node:stream";
import { TarWriter } from "../archive/tar/index.ts";
import { hasBlobFiles, type Provider } from "../content/content.ts";
import { checkSize, MAX_MANIFEST_SIZE } from "../content/helpers.ts";
import type { Descriptor } from "../descriptor.ts";
import { algorithmOf, Digester, parseDigest } from "../digest.ts";
import { DataLossError, InvalidArgumentError, NotFoundError, wrapError } from "../errors.ts";
import { refKey } from "../images/mediatypes.ts";
import type { ProgressTracker } from "../progress/tracker.ts";
import { DOCKER_MANIFEST_FILE, type DockerArchiveEntry, parseDockerManifest } from "./docker-archive.ts";
import {
  ANNOTATION_IMAGE_NAME,
  ANNOTATION_REF_NAME,
  BLOBS_DIR,
  blobPath,
  checkLayoutFile,
  INDEX_FILE,
  indexBytes,
  LAYOUT_FILE,
  layoutFileBytes,
  parseLayoutIndex,
} from "./oci-layout.ts";

/** What a layout holds: index.json's entries, manifest.json's (maybe none), the blobs. */
export interface LayoutContents {
  index: Descriptor[];
  docker: DockerArchiveEntry[];
  blobs: Descriptor[];
}

export interface WriteOptions {
  provider: Provider;
  progress?: ProgressTracker;
  signal?: AbortSignal;
}

/** Two buffers an export copies blobs through, in turn: one is read into while the other is written out. */
const COPY_BUFFER = 1 << 20;
function copyBuffers(): [Buffer, Buffer] {
  return [Buffer.allocUnsafeSlow(COPY_BUFFER), Buffer.allocUnsafeSlow(COPY_BUFFER)];
}

/** Positional reads of a blob: its file, when the provider keeps blobs in files, else readAt. */
async function openBlob(
  provider: Provider,
  desc: Descriptor,
): Promise<{ read(buf: Buffer, position: number): Promise<number>; close(): Promise<void> }> {
  if (!hasBlobFiles(provider)) {
    return { read: (buf, position) => provider.readAt(desc.digest, buf, position), close: async () => {} };
  }
  let fh: FileHandle;
  try {
    fh = await open(provider.blobPath(desc.digest), "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new NotFoundError(`content ${desc.digest}: not found`);
    throw err;
  }
  return {
    read: async (buf, position) => (await fh.read(buf, 0, buf.length, position)).bytesRead,
    close: () => fh.close(),
  };
}

/**
 * Copies a blob of the store to `write` through the two buffers, verifying
 * its size and digest as it goes (a blob that no longer matches fails the
 * export): one read and one write in flight, and no garbage per megabyte,
 * which would otherwise wait for the collector in the process's RSS.
 * `write` must be done with a chunk when its promise resolves.
 */
async function copyBlob(
  desc: Descriptor,
  opts: WriteOptions,
  buffers: [Buffer, Buffer],
  write: (chunk: Buffer) => Promise<void>,
): Promise<void> {
  const key = refKey(desc);
  const what = `blob ${desc.digest} in the content store`;
  opts.progress?.update(key, { state: "exporting", offset: 0, startOffset: 0, total: desc.size });
  const digester = new Digester(algorithmOf(desc.digest));
  const src = await openBlob(opts.provider, desc);
  let pos = 0;
  let i = 0;
  let writing: Promise<void> | undefined;
  try {
    while (pos < desc.size) {
      opts.signal?.throwIfAborted();
      const buf = buffers[i];
      const n = await src.read(buf.subarray(0, Math.min(buf.length, desc.size - pos)), pos);
      if (n === 0) throw new DataLossError(`${what}: got ${pos} bytes, expected ${desc.size}`);
      digester.update(buf.subarray(0, n));
      pos += n;
      // the other buffer is free again once its write is done
      await writing;
      writing = write(buf.subarray(0, n));
      i ^= 1;
      opts.progress?.update(key, { offset: pos });
    }
    await writing;
  } finally {
    await writing?.catch(() => {});
    await src.close();
  }
  const actual = digester.digest();
  if (actual !== desc.digest)
    throw new DataLossError(`${what}: digest mismatch: got ${actual}, expected ${desc.digest}`);
  opts.progress?.update(key, { state: "done" });
}

function dockerBytes(entries: DockerArchiveEntry[]): Buffer {
  return Buffer.from(JSON.stringify(entries));
}

/** The algorithms of the blobs: the directories under blobs/. */
function algorithms(blobs: Descriptor[]): string[] {
  return [...new Set(blobs.map((b) => parseDigest(b.digest).algorithm))].sort();
}

/** Writes the layout as a tar into `out` (not ended: the caller owns it). */
export async function writeTarLayout(out: Writable, c: LayoutContents, opts: WriteOptions): Promise<void> {
  for (const b of c.blobs) opts.progress?.update(refKey(b), { state: "waiting", total: b.size });
  const tw = new TarWriter(out);
  const file = (name: string, bytes: Buffer, mode: number) =>
    tw.add({ name, type: "file", mode, size: bytes.length }, bytes);
  await file(LAYOUT_FILE, layoutFileBytes(), 0o444);
  await file(INDEX_FILE, indexBytes(c.index), 0o644);
  if (c.docker.length > 0) await file(DOCKER_MANIFEST_FILE, dockerBytes(c.docker), 0o644);
  await tw.add({ name: `${BLOBS_DIR}/`, type: "dir", mode: 0o755 });
  for (const alg of algorithms(c.blobs)) await tw.add({ name: `${BLOBS_DIR}/${alg}/`, type: "dir", mode: 0o755 });
  const buffers = copyBuffers();
  for (const b of c.blobs) {
    opts.signal?.throwIfAborted();
    await tw.addWritten({ name: blobPath(b.digest), type: "file", mode: 0o444, size: b.size }, (write) =>
      copyBlob(b, opts, buffers, write),
    );
  }
  await tw.finish({ end: false });
}

/**
 * Writes the layout as a tar file: under a temporary name in the same
 * directory, renamed to `path` once complete (a failed export leaves nothing).
 * A path that is not a regular file (a FIFO, /dev/stdout) is written in place.
 */
export async function writeTarFile(path: string, c: LayoutContents, opts: WriteOptions): Promise<void> {
  let inPlace = false;
  try {
    inPlace = !(await lstat(path)).isFile();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const tmp = inPlace ? path : join(dirname(path), `.${basename(path)}.partial-${process.pid}`);
  const stream = createWriteStream(tmp, { flags: inPlace ? "w" : "wx", mode: 0o644, highWaterMark: 1 << 20 });
  const closed = new Promise<void>((resolve, reject) => {
    stream.once("close", resolve);
    stream.once("error", reject);
  });
  try {
    await Promise.race([writeTarLayout(stream, c, opts), closed]);
    stream.end();
    await closed;
    if (!inPlace) await rename(tmp, path);
  } catch (err) {
    stream.destroy();
    await closed.catch(() => {});
    if (!inPlace) await rm(tmp, { force: true });
    throw wrapError(err, `writing ${path}`);
  }
}

/** Whether a path exists (as itself: a symbolic link is not followed). */
async function lexists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

/** A directory of the layout, made if absent; a symbolic link in its place is refused. */
async function layoutDir(p: string, what: string): Promise<void> {
  try {
    const st = await lstat(p);
    if (st.isSymbolicLink()) throw new InvalidArgumentError(`${what} is a symbolic link: refused`);
    if (!st.isDirectory()) throw new InvalidArgumentError(`${what} is not a directory`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    await mkdir(p, { mode: 0o755 });
  }
}

/** A small file of an existing layout, read without following a link and capped. */
async function readLayoutFile(dir: string, name: string): Promise<Buffer | undefined> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(join(dir, name), constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new InvalidArgumentError(`${name} in ${dir} is not a regular file`);
    checkSize(`${name} in ${dir}`, st.size, MAX_MANIFEST_SIZE);
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

/** Writes a small file whole under a temporary name, then renames it in. */
async function replaceFile(path: string, bytes: Buffer, mode = 0o644): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.partial-${process.pid}`);
  try {
    const fh = await open(tmp, "w", mode);
    try {
      await fh.writeFile(bytes);
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Index entries and manifest.json entries of an existing layout that the new ones do not replace. */
function merged(
  oldIndex: Descriptor[],
  oldDocker: DockerArchiveEntry[],
  c: LayoutContents,
): { index: Descriptor[]; docker: DockerArchiveEntry[] } {
  const names = new Set(c.index.map((d) => d.annotations?.[ANNOTATION_IMAGE_NAME]));
  const refs = new Set(c.index.map((d) => d.annotations?.[ANNOTATION_REF_NAME]));
  const replaced = (d: Descriptor) => {
    const n = d.annotations?.[ANNOTATION_IMAGE_NAME];
    return n !== undefined ? names.has(n) : refs.has(d.annotations?.[ANNOTATION_REF_NAME]);
  };
  const tags = new Set(c.docker.flatMap((e) => e.RepoTags));
  const docker = oldDocker
    .map((e) => ({ ...e, RepoTags: e.RepoTags.filter((t) => !tags.has(t)) }))
    .filter((e, i) => e.RepoTags.length > 0 || oldDocker[i].RepoTags.length === 0);
  return { index: [...oldIndex.filter((d) => !replaced(d)), ...c.index], docker: [...docker, ...c.docker] };
}

/**
 * Writes the layout into a directory: a new one, an empty one, or an OCI
 * layout to add to (its index.json entries of the same names are replaced).
 */
export async function writeDirectoryLayout(dir: string, c: LayoutContents, opts: WriteOptions): Promise<void> {
  await mkdir(dir, { recursive: true });
  const layout = await readLayoutFile(dir, LAYOUT_FILE);
  let oldIndex: Descriptor[] = [];
  let oldDocker: DockerArchiveEntry[] = [];
  if (layout) {
    checkLayoutFile(layout);
    const idx = await readLayoutFile(dir, INDEX_FILE);
    if (idx) oldIndex = parseLayoutIndex(idx).manifests;
    const dm = await readLayoutFile(dir, DOCKER_MANIFEST_FILE);
    if (dm) oldDocker = parseDockerManifest(dm);
  } else {
    if ((await readdir(dir)).length > 0) {
      throw new InvalidArgumentError(`${dir} is neither empty nor an OCI layout: refusing to write into it`);
    }
  }
  await layoutDir(join(dir, BLOBS_DIR), `${BLOBS_DIR}/ in ${dir}`);
  for (const alg of algorithms(c.blobs)) await layoutDir(join(dir, BLOBS_DIR, alg), `${BLOBS_DIR}/${alg}/ in ${dir}`);
  const buffers = copyBuffers();
  for (const b of c.blobs) {
    opts.signal?.throwIfAborted();
    const path = join(dir, blobPath(b.digest));
    const key = refKey(b);
    try {
      const st = await lstat(path);
      if (st.isFile() && st.size === b.size) {
        opts.progress?.update(key, { state: "exists", total: b.size });
        continue;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    await writeBlobFile(path, b, opts, buffers);
  }
  const m = merged(oldIndex, oldDocker, c);
  if (!(await lexists(join(dir, LAYOUT_FILE)))) await replaceFile(join(dir, LAYOUT_FILE), layoutFileBytes(), 0o444);
  if (m.docker.length > 0) await replaceFile(join(dir, DOCKER_MANIFEST_FILE), dockerBytes(m.docker));
  await replaceFile(join(dir, INDEX_FILE), indexBytes(m.index));
}

async function writeBlobFile(
  path: string,
  b: Descriptor,
  opts: WriteOptions,
  buffers: [Buffer, Buffer],
): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.partial-${process.pid}`);
  const fh = await open(tmp, "w", 0o444);
  try {
    let pos = 0;
    await copyBlob(b, opts, buffers, async (chunk) => {
      for (let done = 0; done < chunk.length; ) {
        const { bytesWritten } = await fh.write(chunk, done, chunk.length - done, pos);
        done += bytesWritten;
        pos += bytesWritten;
      }
    });
    await fh.close();
    await rename(tmp, path);
  } catch (err) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true });
    throw err;
  }
}
