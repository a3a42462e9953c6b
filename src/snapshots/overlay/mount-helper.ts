/**
 * Run by stack.ts as a short-lived child process started in the common parent of
 * an overlay's lowerdirs, which the option string names relatively:
 * `node mount-helper.ts TARGET FLAGS DATA`. Exits 0, or 1 with `errno N` on stderr.
 */
import { mount, SysError } from "../../sys/index.ts";

const [target, flags, data] = process.argv.slice(2);
try {
  mount("overlay", target, "overlay", Number(flags), data);
} catch (err) {
  process.stderr.write(err instanceof SysError ? `errno ${err.errno}\n` : `${(err as Error).message}\n`);
  process.exitCode = 1;
}
