/**
 * Gathers the small chunks of a stream (64 KiB network or pipe reads) into
 * 1 MiB writes: fewer syscalls, and one write in flight while the next batch
 * fills. The buffers are reused (a writer is done with a buffer once its write
 * resolves) and pooled across copies, so a transfer leaves no garbage per
 * megabyte: dead buffers wait for the garbage collector outside the JS heap,
 * and that shows in the process's RSS.
 */
import type { Writer } from "./content.ts";

const WRITE_BATCH = 1 << 20;
/**
 * Batch buffers kept for the next copy. Only one copy's worth: once the
 * downloads are over (a pull then unpacks for seconds) a fuller pool was ~9 MiB
 * of the process's peak RSS holding nothing.
 */
const POOL_MAX = 2;
const pool: Buffer[] = [];

/** Two buffers used in turn: one is being written while the other fills. */
export class WriteBatcher {
  readonly #w: Writer;
  readonly #bufs: Buffer[] = [];
  /** Index of the buffer being filled. */
  #cur = 0;
  #fill = 0;
  #inflight: Promise<void> | undefined;
  constructor(w: Writer) {
    this.#w = w;
  }
  /** Takes a chunk; a promise only when a write had to be waited for (most chunks just copy). */
  add(chunk: Buffer): Promise<void> | undefined {
    let off = 0;
    while (off < chunk.length) {
      if (!this.#bufs[this.#cur]) this.#bufs[this.#cur] = pool.pop() ?? Buffer.allocUnsafeSlow(WRITE_BATCH);
      const n = chunk.copy(this.#bufs[this.#cur], this.#fill, off);
      this.#fill += n;
      off += n;
      if (this.#fill === WRITE_BATCH) return this.#startThenAdd(chunk.subarray(off));
    }
    return undefined;
  }
  async #startThenAdd(rest: Buffer): Promise<void> {
    await this.#start();
    if (rest.length > 0) await this.add(rest);
  }
  async #start(): Promise<void> {
    // the other buffer must be written before it is filled again
    await this.settle();
    if (this.#fill === 0) return;
    const p = this.#w.write(this.#bufs[this.#cur].subarray(0, this.#fill));
    // an error surfaces at the next settle(); until then it must not be unhandled
    p.catch(() => {});
    this.#inflight = p;
    this.#cur ^= 1;
    this.#fill = 0;
  }
  /** Writes what is left and waits for it. */
  async flush(): Promise<void> {
    await this.#start();
    await this.settle();
  }
  /** Waits for the write in flight, if any, rethrowing its error. */
  async settle(): Promise<void> {
    const p = this.#inflight;
    this.#inflight = undefined;
    if (p) await p;
  }
  /** Gives the buffers back to the pool; only once no write is in flight (after settle). */
  release(): void {
    if (this.#inflight) return;
    for (const b of this.#bufs.splice(0)) if (b && pool.length < POOL_MAX) pool.push(b);
    this.#fill = 0;
  }
}
