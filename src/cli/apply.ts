/** `dist apply DIR < layer`: applies a layer tar (gzip, zstd or plain) from stdin onto a directory. */
import { closeSync, createReadStream, fstatSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { isatty } from "node:tty";
import type { Command } from "commander";
import type { LayerFile } from "../archive/apply.ts";
import { UsageError } from "./args.ts";
import { commandSignal, globals } from "./globals.ts";
import { log } from "./log.ts";

export function register(program: Command): void {
  program
    .command("apply")
    .description("apply a layer (tar, tar+gzip or tar+zstd) read from stdin onto DIR, with the OCI whiteout rules")
    .argument("<dir>", "the directory to apply onto (created if missing)")
    .option("--print-diffid", "print the layer's diffID (sha256 of the uncompressed tar) on success")
    .option("--no-same-owner", "do not apply the archive's numeric owners (the default when not root)")
    .addHelpText(
      "after",
      `
Entries are confined to DIR: a name climbing out with ".." is refused, and symlinks
met on the way are resolved inside DIR. Devices are skipped with a warning when not root.

Examples:
  dist apply ./rootfs < layer.tar
  dist apply ./rootfs < $(dist path -q sha256:0e1b...)
  dist apply --print-diffid ./rootfs < layer.tar.gz
  zstd -dc layer.tar.zst | dist apply ./rootfs`,
    )
    .action(async (dir: string, o: { printDiffid?: boolean; sameOwner: boolean }, cmd: Command) => {
      const g = globals(cmd);
      if (isatty(0)) {
        throw new UsageError("apply: expected a layer on stdin (dist apply DIR < layer.tar)");
      }
      mkdirSync(dir, { recursive: true });
      // loaded here so that other commands do not pay for the archive modules at startup
      const { applyLayer } = await import("../archive/apply.ts");
      const started = Date.now();
      const input = stdinFile() ?? createReadStream("", { fd: 0, highWaterMark: 1 << 20, autoClose: false });
      const res = await applyLayer(dir, input, {
        signal: commandSignal(g),
        sameOwner: o.sameOwner === false ? false : undefined,
        onWarning: (m) => log.warn(m),
      });
      log.debug(
        `applied ${res.diffID} (${res.compression}, ${res.size} bytes uncompressed) in ${Date.now() - started} ms`,
      );
      if (o.printDiffid) process.stdout.write(`${res.diffID}\n`);
    });
}

/**
 * Stdin as a file range when it is a regular file (`dist apply DIR < layer`),
 * from its current position: the decompression worker then reads it itself and
 * the main thread only makes the files. Undefined for pipes, or where the file
 * cannot be opened again through /proc.
 */
function stdinFile(): LayerFile | undefined {
  try {
    const st = fstatSync(0);
    if (!st.isFile()) return undefined;
    const pos = Number(/^pos:\s*(\d+)/m.exec(readFileSync("/proc/self/fdinfo/0", "utf8"))?.[1]);
    if (!Number.isSafeInteger(pos) || pos > st.size) return undefined;
    const path = "/proc/self/fd/0";
    closeSync(openSync(path, "r"));
    return { path, offset: pos, length: st.size - pos };
  } catch {
    return undefined;
  }
}
