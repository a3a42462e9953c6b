/**
 * One layer of a manifest being unpacked, between the fetch and the unpack
 * loop: whether its blob is in the content store yet, and the stream of its
 * download when the fetch tees it to the loop (one pass over the bytes).
 */
import { PassThrough, type Readable, type Writable } from "node:stream";
import type { Descriptor } from "../descriptor.ts";

export class LayerSlot {
  readonly desc: Descriptor;
  readonly #stored = Promise.withResolvers<void>();
  #settled = false;
  #tapped = false;
  /** A download teed in before the loop asked for it. */
  #teed: Readable | undefined;
  /** Set while the loop waits for this layer's bytes. */
  #wanted: PromiseWithResolvers<Readable> | undefined;

  constructor(desc: Descriptor) {
    this.desc = desc;
    this.#stored.promise.catch(() => {});
  }

  /** The fetch: the blob is in the content store (committed, or it was there). */
  stored(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#stored.resolve();
  }

  /** The fetch failed for good, or the unpacking stopped. */
  failed(err: unknown): void {
    if (!this.#settled) {
      this.#settled = true;
      this.#stored.reject(err);
    }
    // a held download must not wait for a reader that will never come
    this.release();
  }

  /** Resolves once the blob is in the content store; rejects when its fetch failed. */
  whenStored(): Promise<void> {
    return this.#stored.promise;
  }

  /**
   * The fetch, as a fresh download of the blob starts while the loop is at this
   * layer: a stream for its bytes, kept until the loop takes it.
   */
  tee(): Writable | undefined {
    if (this.#settled || this.#tapped) return undefined;
    this.#tapped = true;
    const stream = new PassThrough({ highWaterMark: 1 << 20 });
    // its error reaches the loop where it reads (or nobody, once released)
    stream.on("error", () => {});
    if (this.#wanted) this.#wanted.resolve(stream);
    else this.#teed = stream;
    return stream;
  }

  /**
   * The loop: the layer's download when one is teed in before the blob is in
   * the store, else undefined (the blob is read back from the store).
   */
  async take(): Promise<Readable | undefined> {
    const teed = this.#teed;
    if (teed) {
      this.#teed = undefined;
      return teed;
    }
    if (this.#settled) return undefined;
    this.#wanted = Promise.withResolvers<Readable>();
    try {
      return await Promise.race([this.#wanted.promise, this.#stored.promise.then(() => undefined)]);
    } finally {
      this.#wanted = undefined;
    }
  }

  /** Lets a teed download the loop did not take run on at full speed (the blob is read back later). */
  release(): void {
    this.#teed?.destroy();
    this.#teed = undefined;
  }
}
