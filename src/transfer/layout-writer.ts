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
import { lstat, mkdir, open, readdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { TarWriter } from "../archive/tar/index.ts";
import type { Provider } from "../content/content.ts";
import { checkSize, MAX_MANIFEST_SIZE } from "../content/helpers.ts";
import type { Descriptor } from "../descriptor.ts";
import { parseDigest, VerifyingStream } from "../digest.ts";
import { InvalidArgumentError } from "../errors.ts";
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

/** A blob's bytes from the store, verified against its descriptor as they stream, counted for progress. */
async function* blobBytes(desc: Descriptor, opts: WriteOptions): AsyncGenerator<Uint8Array> {
  const key = refKey(desc);
  opts.progress?.update(key, { state: "exporting", offset: 0, startOffset: 0, total: desc.size });
  const src: Readable = await opts.provider.openRead(desc.digest, { signal: opts.signal });
  const verify = new VerifyingStream({
    expected: desc.digest,
    size: desc.size,
    what: `blob ${desc.digest} in the content store`,
  });
  src.on("error", (e) => verify.destroy(e));
  let n = 0;
  for await (const chunk of src.pipe(verify)) {
    n += (chunk as Buffer).length;
    opts.progress?.update(key, { offset: n });
    yield chunk as Buffer;
  }
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
  for (const b of c.blobs) {
    opts.signal?.throwIfAborted();
    await tw.add({ name: blobPath(b.digest), type: "file", mode: 0o444, size: b.size }, blobBytes(b, opts));
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
    throw err;
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
    await writeBlobFile(path, b, opts);
  }
  const m = merged(oldIndex, oldDocker, c);
  if (!(await lexists(join(dir, LAYOUT_FILE)))) await replaceFile(join(dir, LAYOUT_FILE), layoutFileBytes(), 0o444);
  if (m.docker.length > 0) await replaceFile(join(dir, DOCKER_MANIFEST_FILE), dockerBytes(m.docker));
  await replaceFile(join(dir, INDEX_FILE), indexBytes(m.index));
}

async function writeBlobFile(path: string, b: Descriptor, opts: WriteOptions): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.partial-${process.pid}`);
  const fh = await open(tmp, "w", 0o444);
  try {
    let pos = 0;
    for await (const chunk of blobBytes(b, opts)) {
      let done = 0;
      while (done < chunk.length) {
        const { bytesWritten } = await fh.write(chunk, done, chunk.length - done, pos);
        done += bytesWritten;
        pos += bytesWritten;
      }
    }
    await fh.close();
    await rename(tmp, path);
  } catch (err) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true });
    throw err;
  }
}
