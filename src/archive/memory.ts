/**
 * Stream chunks are ArrayBuffers outside the JS heap; when a thread allocates
 * little else (the main thread of an apply, which only hashes and forwards),
 * V8 lets tens of MiB of dead chunks pile up before it collects them. A young
 * generation collection (~0.3 ms) every few MiB of data keeps RSS flat.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

type Gc = (opts?: { type?: "major" | "minor" }) => void;
let gc: Gc | null | undefined;

/** Frees dead young objects (and their buffers) now; a no-op where gc cannot be exposed. */
export function collectYoung(): void {
  if (gc === undefined) {
    try {
      setFlagsFromString("--expose-gc");
      gc = runInNewContext("gc") as Gc;
    } catch {
      gc = null;
    }
  }
  gc?.({ type: "minor" });
}

/** Calls collectYoung() once per `every` bytes reported. */
export function garbageMeter(every = 16 << 20): (bytes: number) => void {
  let n = 0;
  return (bytes) => {
    n += bytes;
    if (n >= every) {
      n = 0;
      collectYoung();
    }
  };
}
