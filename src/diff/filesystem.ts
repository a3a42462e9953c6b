/**
 * The Applier over a content provider, onto a directory (containerd's
 * fsApplier): the mounts name the directory (a bind mount's source, an
 * overlay's upperdir), the layer comes from the provider, or from the stream of
 * its download when one is teed in, and src/archive/apply.ts applies it. A
 * provider whose blobs are local files (BlobFiles) has the decompression worker
 * read the file itself.
 */
import type { Readable } from "node:stream";
import { applyLayer, type LayerFile } from "../archive/apply.ts";
import { hasBlobFiles, type Provider } from "../content/content.ts";
import type { Descriptor } from "../descriptor.ts";
import { InvalidArgumentError } from "../errors.ts";
import type { Mount } from "../snapshots/snapshotter.ts";
import type { AppliedDiff, Applier, ApplyConfig } from "./applier.ts";
import { applyTarget } from "./mounts.ts";

/** The Applier onto a directory (a bind mount's source, an overlay's upperdir), reading layers from a content provider (its files directly when it declares BlobFiles). */
export class FileSystemApplier implements Applier {
  readonly #content: Provider;

  constructor(content: Provider) {
    this.#content = content;
  }

  async apply(desc: Descriptor, mounts: Mount[], config: ApplyConfig = {}): Promise<AppliedDiff> {
    const target = applyTarget(mounts);
    const layer = config.stream ?? (await this.#open(desc, config.signal));
    const { diffID, size } = await applyLayer(target.dir, layer, {
      // the bytes are verified: by the store at its commit, or by the teed download before it ends
      verified: true,
      what: `layer ${desc.digest}`,
      signal: config.signal,
      sameOwner: config.sameOwner,
      convertWhiteout: target.overlay ? "overlay" : undefined,
      lowerDirs: target.overlay ? target.lowerDirs : undefined,
      onWarning: config.onWarning,
      onProgress: config.onProgress,
    });
    return { diffID, size };
  }

  /** The stored blob: its file where the provider has one, else a stream. */
  async #open(desc: Descriptor, signal?: AbortSignal): Promise<Readable | LayerFile> {
    // info() first: a missing blob is a NotFoundError here, as with openRead
    const info = await this.#content.info(desc.digest);
    if (desc.size > 0 && info.size !== desc.size) {
      throw new InvalidArgumentError(`apply: ${desc.digest} is ${info.size} bytes, the descriptor says ${desc.size}`);
    }
    if (hasBlobFiles(this.#content)) return { path: this.#content.blobPath(desc.digest), length: info.size };
    return this.#content.openRead(desc.digest, { signal });
  }
}
