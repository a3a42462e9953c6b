/**
 * Digests (`algorithm:hex`), validated strictly: a known algorithm, lowercase
 * hex of exactly the right length. Anything else is an InvalidArgument error.
 */
import { createHash, type Hash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { DataLossError, InvalidArgumentError } from "./errors.ts";

/** A content digest, `algorithm:hex` (e.g. `sha256:…`); validateDigest checks one. */
export type Digest = `${string}:${string}`;
/** The digest algorithms accepted: sha256 (the default) and sha512. */
export type Algorithm = "sha256" | "sha512";

const HEX_LENGTH: Record<Algorithm, number> = { sha256: 64, sha512: 128 };
export const CANONICAL: Algorithm = "sha256";

export function isAlgorithm(s: string): s is Algorithm {
  return Object.hasOwn(HEX_LENGTH, s);
}

/** Splits and validates a digest; throws InvalidArgumentError naming the input. */
export function parseDigest(s: string): { algorithm: Algorithm; hex: string } {
  const i = s.indexOf(":");
  if (i <= 0) throw new InvalidArgumentError(`invalid digest "${s}": expected algorithm:hex`);
  const algorithm = s.slice(0, i);
  const hex = s.slice(i + 1);
  if (!isAlgorithm(algorithm)) {
    throw new InvalidArgumentError(`invalid digest "${s}": unsupported algorithm "${algorithm}"`);
  }
  const want = HEX_LENGTH[algorithm];
  if (hex.length !== want || !/^[0-9a-f]+$/.test(hex)) {
    throw new InvalidArgumentError(`invalid digest "${s}": ${algorithm} needs ${want} lowercase hex characters`);
  }
  return { algorithm, hex };
}

/** Returns `s` as a Digest when it is one (known algorithm, lowercase hex of the right length); throws InvalidArgumentError otherwise. */
export function validateDigest(s: string): Digest {
  parseDigest(s);
  return s as Digest;
}

export function isDigest(s: string): s is Digest {
  try {
    parseDigest(s);
    return true;
  } catch {
    return false;
  }
}

export function algorithmOf(d: Digest): Algorithm {
  return parseDigest(d).algorithm;
}

export function hexOf(d: Digest): string {
  return parseDigest(d).hex;
}

/** A running digest over bytes fed in order. */
export class Digester {
  readonly algorithm: Algorithm;
  #hash: Hash;
  constructor(algorithm: Algorithm = CANONICAL) {
    this.algorithm = algorithm;
    this.#hash = createHash(algorithm);
  }
  update(chunk: Uint8Array): void {
    this.#hash.update(chunk);
  }
  /** The digest of the bytes so far; the digester stays usable. */
  digest(): Digest {
    return `${this.algorithm}:${this.#hash.copy().digest("hex")}`;
  }
}

/** The digest of bytes (or a string's UTF-8) held in memory. */
export function digestOf(data: Uint8Array | string, algorithm: Algorithm = CANONICAL): Digest {
  return `${algorithm}:${createHash(algorithm).update(data).digest("hex")}`;
}

/**
 * A pass-through stream that hashes what flows through it and, at the end,
 * fails with DataLossError when the size or digest differ from what was expected.
 */
export class VerifyingStream extends Transform {
  readonly digester: Digester;
  bytes = 0;
  readonly #expected: Digest | undefined;
  readonly #size: number | undefined;
  readonly #what: string;
  constructor(opts: { expected?: Digest; size?: number; what?: string; highWaterMark?: number }) {
    super({ highWaterMark: opts.highWaterMark });
    this.#expected = opts.expected;
    this.#size = opts.size;
    this.#what = opts.what ?? opts.expected ?? "content";
    this.digester = new Digester(opts.expected ? algorithmOf(opts.expected) : CANONICAL);
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.#size !== undefined && this.bytes > this.#size) {
      cb(new DataLossError(`${this.#what}: more than the expected ${this.#size} bytes`));
      return;
    }
    this.digester.update(chunk);
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    if (this.#size !== undefined && this.bytes !== this.#size) {
      cb(new DataLossError(`${this.#what}: got ${this.bytes} bytes, expected ${this.#size}`));
      return;
    }
    const actual = this.digester.digest();
    if (this.#expected && actual !== this.#expected) {
      cb(new DataLossError(`${this.#what}: digest mismatch: got ${actual}, expected ${this.#expected}`));
      return;
    }
    cb();
  }
}
