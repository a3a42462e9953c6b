/** Deleting several blobs, as `dist delete` and `ctr content rm` do. */
import { type Digest, validateDigest } from "../digest.ts";
import type { Manager } from "./content.ts";

export interface DeleteReport {
  onDeleted(digest: Digest): void;
  onError(digest: string, err: unknown): void;
}

/**
 * Deletes each blob in order; a digest that is invalid or not there goes to
 * onError and the others are still deleted.
 */
export async function deleteBlobs(
  store: Pick<Manager, "delete">,
  digests: string[],
  report: DeleteReport,
): Promise<void> {
  for (const d of digests) {
    let digest: Digest;
    try {
      digest = validateDigest(d);
      await store.delete(digest);
    } catch (err) {
      report.onError(d, err);
      continue;
    }
    report.onDeleted(digest);
  }
}
