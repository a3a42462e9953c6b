/**
 * The progress adapter of unpacking: unpack events → the states of the
 * table's layer rows. A layer teed while it downloads shows its download, then
 * its extraction; one read back from the store shows its extraction, with the
 * bytes already counted by its download not counted again.
 */
import { refKey } from "../images/mediatypes.ts";
import type { UnpackEvent } from "../unpack/layers.ts";
import type { ProgressTracker } from "./tracker.ts";

export function unpackProgress(progress: ProgressTracker): (e: UnpackEvent) => void {
  /** Bytes each layer key downloaded in this run, so extraction does not count them twice. */
  const downloaded = new Map<string, number>();
  return (e) => {
    const key = refKey(e.layer);
    const entry = progress.get(key);
    if (e.status === "extracting") {
      // a teed layer still downloading shows its download; extraction follows it
      if (entry && (entry.state === "downloading" || entry.state === "committing")) return;
      if (!downloaded.has(key)) downloaded.set(key, entry ? Math.max(0, entry.offset - entry.startOffset) : 0);
      const d = downloaded.get(key) ?? 0;
      const off = e.offset ?? 0;
      progress.update(key, { state: "extracting", offset: off, startOffset: off - d, total: e.layer.size });
    } else if (e.status === "extracted") {
      const d = downloaded.get(key) ?? (entry ? Math.max(0, entry.offset - entry.startOffset) : 0);
      progress.update(key, { state: "done", startOffset: e.layer.size - d, total: e.layer.size });
    } else if (e.status === "exists" && entry?.state === "waiting") {
      progress.update(key, { state: "exists" });
    }
  };
}
