/**
 * ChainIDs (OCI image-spec identity): ChainID(L0) = DiffID(L0) and
 * ChainID(L0..n) = sha256(ChainID(L0..n-1) + " " + DiffID(Ln)). Snapshots are
 * named by them, so identical layer stacks are shared.
 */
import { type Digest, digestOf, validateDigest } from "../digest.ts";

/** The ChainID of every prefix of the stack: result[i] names layers 0..i. */
export function chainIDs(diffIDs: readonly string[]): Digest[] {
  const out: Digest[] = [];
  for (const d of diffIDs) {
    const diffID = validateDigest(d);
    const prev = out[out.length - 1];
    out.push(prev === undefined ? diffID : digestOf(`${prev} ${diffID}`));
  }
  return out;
}

/** The ChainID of the whole stack; undefined for an empty one. */
export function chainID(diffIDs: readonly string[]): Digest | undefined {
  const all = chainIDs(diffIDs);
  return all[all.length - 1];
}
