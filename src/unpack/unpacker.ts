/**
 * Layers → snapshots keyed by ChainID, as the layers arrive.
 *
 * One loop walks the layers in manifest order. For each: if the snapshot of
 * its chain exists it is skipped (`exists`); otherwise, under a cross-process
 * lock on the ChainID, a temporary active snapshot is prepared on the parent
 * chain, the layer is applied into it (the snapshot's own directory: the tree
 * itself for native, the upperdir for overlay), the diffID computed while
 * applying is checked against the config, the filesystem is flushed (in the
 * background as the layer is written, then once more: flusher.ts) and the
 * snapshot committed as the ChainID. Any failure removes the temporary
 * snapshot, so a partial tree is never committed.
 *
 * Bytes come from one of two places: when the loop is already waiting for a
 * layer as its download starts, the fetch flow tees the downloaded bytes into
 * the applier (one pass over the network bytes); otherwise the blob is read
 * back from the content store once it is there.
 */
import { randomBytes } from "node:crypto";
import { readdir, statfs } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { Transform, type TransformCallback } from "node:stream";
import { type ApplyOptions, applyLayer, type LayerFile } from "../archive/apply.ts";
import { decompressStream } from "../archive/compression.ts";
import type { Info, Provider } from "../content/content.ts";
import type { Descriptor } from "../descriptor.ts";
import type { Digest } from "../digest.ts";
import { DataLossError, errorMessage, FailedPreconditionError, InvalidArgumentError, isNotFound } from "../errors.ts";
import { removeTree } from "../snapshots/fs-snapshotter.ts";
import type { Snapshotter } from "../snapshots/snapshotter.ts";
import { chainIDs } from "./chainid.ts";
import { Flusher } from "./flusher.ts";
import { acquireLock, type Lock } from "./lock.ts";
import { type ApplyFn, applyTarget } from "./target.ts";

export type { ApplyFn } from "./target.ts";

export type UnpackStatus = "waiting" | "extracting" | "extracted" | "exists";

export interface UnpackEvent {
  layer: Descriptor;
  index: number;
  chainID: Digest;
  status: UnpackStatus;
  /** Compressed bytes consumed so far (extracting). */
  offset?: number;
}

export interface ContentAccess extends Provider {
  update?(digest: Digest, labels: Record<string, string>, fieldpaths?: string[]): Promise<Info>;
  /** The local file holding a committed blob, where the store has one (LocalStore does). */
  blobPath?(digest: Digest): string;
}

export interface UnpackerOptions {
  snapshotter: Snapshotter;
  content: ContentAccess;
  /** The applier (src/archive/apply.ts by default). */
  apply?: ApplyFn;
  /** Where the per-ChainID lock files live; defaults to `<snapshotter root>/locks`. */
  lockDir?: string;
  signal?: AbortSignal;
  /** Apply ownership from the tar (default: when root). */
  sameOwner?: boolean;
  /** Flush the filesystem once per layer before its commit (default true). */
  sync?: boolean;
  onEvent?: (e: UnpackEvent) => void;
  onWarning?: (message: string) => void;
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
  settled: boolean;
}
function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const d = {
    promise: new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    }),
    settled: false,
  } as Deferred<T>;
  d.resolve = (v) => {
    d.settled = true;
    resolve(v);
  };
  d.reject = (e) => {
    d.settled = true;
    reject(e);
  };
  d.promise.catch(() => {});
  return d;
}

interface Slot {
  desc: Descriptor;
  index: number;
  /** Settles when the blob is committed in the content store (or its fetch failed). */
  available: Deferred<void>;
  /** A download of this layer offered while the loop is at it (or about to be). */
  offered?: Readable;
  /** Set while the loop waits for this layer's bytes. */
  wanted?: Deferred<Readable>;
}

/** Counts bytes flowing through, for progress. */
class Counter extends Transform {
  bytes = 0;
  readonly #on: (n: number) => void;
  constructor(on: (n: number) => void) {
    super({ highWaterMark: 1 << 20 });
    this.#on = on;
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    this.#on(this.bytes);
    cb(null, chunk);
  }
}

export class Unpacker {
  readonly #opts: UnpackerOptions;
  readonly #slots: Slot[];
  readonly #done = deferred<Digest>();
  #started = false;
  /** The layer the loop works on next: downloads of it are worth teeing. */
  #cursor = 0;

  constructor(layers: Descriptor[], opts: UnpackerOptions) {
    this.#opts = opts;
    this.#slots = layers.map((desc, index) => ({ desc, index, available: deferred<void>() }));
  }

  /** Starts the loop once the config's diffIDs are known. */
  start(diffIDs: readonly string[]): void {
    if (this.#started) return;
    this.#started = true;
    if (diffIDs.length !== this.#slots.length) {
      this.#done.reject(
        new InvalidArgumentError(
          `image config has ${diffIDs.length} rootfs.diff_ids but the manifest has ${this.#slots.length} layers`,
        ),
      );
      return;
    }
    let chains: Digest[];
    try {
      chains = chainIDs(diffIDs);
    } catch (err) {
      this.#done.reject(new InvalidArgumentError(`image config: bad rootfs.diff_ids: ${errorMessage(err)}`));
      return;
    }
    this.#run(diffIDs as Digest[], chains).then(
      (top) => this.#done.resolve(top),
      (err) => {
        for (const s of this.#slots) this.#release(s);
        this.#done.reject(err);
      },
    );
  }

  /** Stops the loop before it starts (e.g. the config could not be read). */
  fail(err: unknown): void {
    if (!this.#started) {
      this.#started = true;
      this.#done.reject(err);
    }
    for (const s of this.#slots) {
      if (!s.available.settled) s.available.reject(err);
      // a held download must not wait for a reader that will never come
      this.#release(s);
    }
  }

  /** The top ChainID once every layer is committed (or existed). */
  wait(): Promise<Digest> {
    return this.#done.promise;
  }

  /** The fetch flow: this blob is now in the content store (committed or already there). */
  available(digest: string): void {
    for (const s of this.#slots) if (s.desc.digest === digest && !s.available.settled) s.available.resolve();
  }

  /** The fetch flow: fetching this blob failed for good. */
  fetchFailed(digest: string, err: unknown): void {
    for (const s of this.#slots) if (s.desc.digest === digest && !s.available.settled) s.available.reject(err);
  }

  /**
   * The fetch flow, as a fresh download of a blob starts: its bytes as they are
   * written to the store (ending after the blob is committed). Kept and applied
   * when the loop is at this layer; otherwise released at once (returns false)
   * so the download runs at full speed and the blob is read back later.
   */
  offer(digest: string, stream: Readable): boolean {
    const slot = this.#slots.find((s) => s.desc.digest === digest && s.index === this.#cursor && !s.offered);
    if (!slot || slot.available.settled) {
      stream.destroy();
      return false;
    }
    stream.on("error", () => {});
    if (slot.wanted && !slot.wanted.settled) slot.wanted.resolve(stream);
    else slot.offered = stream;
    return true;
  }

  #release(slot: Slot): void {
    slot.offered?.destroy();
    slot.offered = undefined;
  }

  #emit(e: UnpackEvent): void {
    this.#opts.onEvent?.(e);
  }

  async #exists(chain: Digest): Promise<boolean> {
    try {
      const i = await this.#opts.snapshotter.stat(chain);
      return i.kind === "committed";
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  async #run(diffIDs: Digest[], chains: Digest[]): Promise<Digest> {
    const o = this.#opts;
    const root = (o.snapshotter as { root?: string }).root;
    const lockDir = o.lockDir ?? (root ? join(root, "locks") : undefined);
    for (const s of this.#slots)
      this.#emit({ layer: s.desc, index: s.index, chainID: chains[s.index], status: "waiting" });
    let parent: Digest | undefined;
    for (const slot of this.#slots) {
      o.signal?.throwIfAborted();
      const chain = chains[slot.index];
      const diffID = diffIDs[slot.index];
      this.#cursor = slot.index;
      let status: UnpackStatus = "exists";
      if (!(await this.#exists(chain))) {
        const lock: Lock | undefined = lockDir ? await acquireLock(lockDir, chain, o.signal) : undefined;
        try {
          // whoever held the lock may have just committed it
          if (!(await this.#exists(chain))) {
            await this.#extract(slot, diffID, chain, parent);
            status = "extracted";
          }
        } finally {
          lock?.release();
        }
      }
      this.#release(slot);
      this.#emit({ layer: slot.desc, index: slot.index, chainID: chain, status });
      await this.#label(slot.desc.digest, { "containerd.io/uncompressed": diffID });
      parent = chain;
    }
    this.#cursor = this.#slots.length;
    return chains[chains.length - 1];
  }

  async #label(digest: Digest, labels: Record<string, string>): Promise<void> {
    const update = this.#opts.content.update;
    if (!update) return;
    try {
      await update.call(
        this.#opts.content,
        digest,
        labels,
        Object.keys(labels).map((k) => `labels.${k}`),
      );
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /**
   * The layer's compressed bytes: the download itself when offered, else the
   * stored blob: its file, for the built-in applier on a local store (the
   * decompression worker reads it: the main thread is left to make the files),
   * or a stream.
   */
  async #source(slot: Slot, wantFile: boolean): Promise<{ stream?: Readable; file?: LayerFile; teed: boolean }> {
    const offered = slot.offered;
    if (offered) {
      slot.offered = undefined;
      return { stream: offered, teed: true };
    }
    if (!slot.available.settled) {
      const want = deferred<Readable>();
      slot.wanted = want;
      const got = await Promise.race([want.promise, slot.available.promise.then(() => undefined)]);
      slot.wanted = undefined;
      if (got) return { stream: got, teed: true };
    }
    await slot.available.promise;
    const content = this.#opts.content;
    if (wantFile && content.blobPath) {
      // info() first: a missing blob is a NotFound error here as with openRead
      await content.info(slot.desc.digest);
      return { file: { path: content.blobPath(slot.desc.digest), length: slot.desc.size }, teed: false };
    }
    return { stream: await content.openRead(slot.desc.digest, { signal: this.#opts.signal }), teed: false };
  }

  async #extract(slot: Slot, diffID: Digest, chain: Digest, parent: Digest | undefined): Promise<void> {
    const o = this.#opts;
    const sn = o.snapshotter;
    for (let attempt = 0; ; attempt++) {
      const key = `extract-${randomBytes(6).toString("hex")} ${chain}`;
      const target = applyTarget(
        await sn.prepare(key, parent, { labels: { "containerd.io/snapshot.ref": chain }, applyOnly: true }),
      );
      let teed = false;
      let source: Readable | undefined;
      const flusher = o.sync !== false ? new Flusher(target.dir) : undefined;
      try {
        const src = await this.#source(slot, !o.apply);
        teed = src.teed;
        source = src.stream;
        this.#emit({ layer: slot.desc, index: slot.index, chainID: chain, status: "extracting", offset: 0 });
        const progress = (n: number) => {
          flusher?.progress(n);
          this.#emit({ layer: slot.desc, index: slot.index, chainID: chain, status: "extracting", offset: n });
        };
        const what = `layer ${slot.desc.digest}`;
        const applyOpts: ApplyOptions = {
          // the blob was verified (by the fetch, or by the store at its commit): no second hash
          verified: true,
          what,
          signal: o.signal,
          sameOwner: o.sameOwner ?? process.getuid?.() === 0,
          convertWhiteout: target.overlay ? "overlay" : undefined,
          lowerDirs: target.overlay ? target.lowerDirs : undefined,
          onWarning: o.onWarning,
        };
        let result: { diffID: Digest; size: number };
        if (!o.apply) {
          // the built-in applier decompresses off the main thread and counts what it consumes
          result = await applyLayer(target.dir, src.file ?? src.stream!, { ...applyOpts, onProgress: progress });
        } else {
          // another applier gets the plain tar
          const counter = new Counter(progress);
          src.stream!.on("error", (err) => counter.destroy(err));
          const tar = (await decompressStream(src.stream!.pipe(counter), { what })).stream;
          result = await o.apply(target.dir, tar, applyOpts);
        }
        if (result.diffID !== diffID) {
          throw new DataLossError(
            `layer ${slot.desc.digest}: uncompressed digest ${result.diffID} does not match the config's diff_id ${diffID}`,
          );
        }
        // the blob itself must have been verified too before the tree is kept
        await slot.available.promise;
        await flusher?.flush();
        await flusher?.close();
        await sn.commit(chain, key);
        return;
      } catch (err) {
        // an applier that failed stops reading (its pipe from the source is undone): a teed
        // download would wait for a reader forever, and a retry waits for that download
        source?.destroy();
        await flusher?.close();
        const full = await diskFull(target.dir);
        await discard(sn, key, target.dir);
        if (full) {
          throw new FailedPreconditionError(
            `unpacking layer ${slot.desc.digest}: no space left on device under ${target.dir} (the blobs fetched so far are kept; free space and pull again)`,
            { cause: err },
          );
        }
        o.signal?.throwIfAborted();
        // a teed download that broke is retried once from the store, if the blob made it there
        const retry = teed && attempt === 0 && !(err instanceof DataLossError);
        if (!retry) throw wrap(err, slot.desc);
        await slot.available.promise.catch(() => {
          throw wrap(err, slot.desc);
        });
      }
    }
  }
}

/** After a failed apply: is the filesystem full (ENOSPC), whatever error the applier reported? */
async function diskFull(dir: string): Promise<boolean> {
  try {
    const st = await statfs(dir);
    return st.bavail * st.bsize < 64 * 1024 || st.ffree === 0;
  } catch {
    return false;
  }
}

/**
 * Removes a failed temporary snapshot. Its files go first: on a full disk the
 * metadata update itself needs the space they hold.
 */
async function discard(sn: Snapshotter, key: string, dir: string): Promise<void> {
  try {
    for (const name of await readdir(dir)) await removeTree(join(dir, name));
  } catch {}
  for (let i = 0; i < 3; i++) {
    try {
      await sn.remove(key);
      return;
    } catch (err) {
      if (isNotFound(err)) return;
    }
  }
}

function wrap(err: unknown, desc: Descriptor): unknown {
  if (err instanceof Error && err.message.includes(desc.digest)) return err;
  if (err instanceof Error && "code" in err && typeof (err as { code: unknown }).code === "string") {
    const e = err as Error & { code: string };
    if (e.code === "ENOSPC") {
      return new FailedPreconditionError(
        `unpacking layer ${desc.digest}: no space left on device (the fetched blobs are kept)`,
        {
          cause: err,
        },
      );
    }
  }
  if (err instanceof Error) {
    err.message = `unpacking layer ${desc.digest}: ${err.message}`;
    return err;
  }
  return new Error(`unpacking layer ${desc.digest}: ${String(err)}`);
}
