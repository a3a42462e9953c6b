/**
 * Early writeback: sync_file_range(SYNC_FILE_RANGE_WRITE) starts writing an
 * ingest's dirty pages to disk while the download goes on, so the fsync
 * before commit waits for the tail only, not for the whole blob.
 */
import koffi from "koffi";

const SYNC_FILE_RANGE_WRITE = 2;
/** Start writeback each time this many more bytes are written. */
export const WRITEBACK_EVERY = 16 << 20;

type SyncFileRange = (fd: number, offset: number, nbytes: number, flags: number) => number;
let fn: SyncFileRange | null | undefined;

/** Best effort: does nothing where the call is unavailable. */
export function startWriteback(fd: number, offset: number, length: number): void {
  if (fn === undefined) {
    try {
      fn = koffi
        .load("libc.so.6")
        .func("int sync_file_range(int fd, int64_t offset, int64_t nbytes, unsigned int flags)") as SyncFileRange;
    } catch {
      fn = null;
    }
  }
  fn?.(fd, offset, length, SYNC_FILE_RANGE_WRITE);
}
