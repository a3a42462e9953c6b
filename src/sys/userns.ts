/**
 * Whether this process runs in a user namespace other than the first (a
 * rootless run's): there overlayfs keeps its own attributes as user.overlay.*
 * (mounted with `userxattr`), trusted.* being out of reach.
 */
import { readFileSync } from "node:fs";

let inside: boolean | undefined;

/** True in a user namespace other than the first (its uid_map is not the identity of every id). */
export function inUserNamespace(): boolean {
  if (inside === undefined) {
    try {
      inside = !/^\s*0\s+0\s+4294967295\s*$/.test(readFileSync("/proc/self/uid_map", "utf8"));
    } catch {
      inside = false;
    }
  }
  return inside;
}

/** The xattr namespace of overlayfs's own attributes here: `trusted.overlay.`, or `user.overlay.` in a user namespace. */
export function overlayXattrPrefix(): string {
  return inUserNamespace() ? "user.overlay." : "trusted.overlay.";
}
