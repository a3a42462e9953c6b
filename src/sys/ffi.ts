/**
 * The one loader of koffi (FFI into C libraries): libc's bindings (index.ts) and
 * ISA-L's (archive/isal.ts) take their library handles from here. Each thread
 * that binds something loads koffi and each library once, on first use, so
 * importing this module costs nothing.
 */
import { createRequire } from "node:module";

type Koffi = typeof import("koffi");
export type Library = ReturnType<Koffi["load"]>;

let koffi: Koffi | undefined;
const libraries = new Map<string, Library>();

function ffi(): Koffi {
  koffi ??= createRequire(import.meta.url)("koffi") as Koffi;
  return koffi;
}

/** A shared library by soname (e.g. "libc.so.6"), loaded once; throws where it cannot be loaded. */
export function loadLibrary(soname: string): Library {
  let lib = libraries.get(soname);
  if (!lib) {
    lib = ffi().load(soname);
    libraries.set(soname, lib);
  }
  return lib;
}

/** The errno of the last call made through koffi on this thread. */
export function lastErrno(): number {
  return ffi().errno();
}

/** The address of a buffer's first byte, for C structures that hold pointers. */
export function addressOf(buf: Uint8Array): bigint {
  return ffi().address(buf);
}
