#!/usr/bin/env node
/**
 * The `dist` command of the installed package (npm install -g, npx, node_modules/.bin;
 * the checkout's bin/dist runs main.ts itself). It checks the Node.js that runs it,
 * then replaces itself (execve: same pid, same stdio and terminal, signals and exit
 * status pass straight through) with that Node.js running main under the V8 flag
 * bin/dist passes, which no running process can set for itself: a 1 MiB young
 * generation frees dead network buffers at each scavenge (bin/dist says what it saves).
 *
 * Written for any Node.js that loads ES modules: nothing newer is used before the
 * version check, so an old Node.js says what it needs instead of failing on a module
 * it lacks.
 */
import { extname } from "node:path";
import { fileURLToPath } from "node:url";

const NEEDED_MAJOR = 24;
const major = Number(process.versions.node.split(".")[0]);
if (!(major >= NEEDED_MAJOR)) {
  process.stderr.write(
    `dist: needs Node.js ${NEEDED_MAJOR} or newer; ${process.execPath} is Node.js ${process.versions.node}\n`,
  );
  process.exit(1);
}
// main with this module's own extension: .js once compiled, .ts in the checkout
const main = fileURLToPath(new URL(`./main${extname(new URL(import.meta.url).pathname)}`, import.meta.url));
// (optional in the types only because Windows lacks it: dist runs on Linux)
process.execve!(
  process.execPath,
  [
    process.execPath,
    "--max-semi-space-size=1",
    "--disable-warning=ExperimentalWarning",
    ...process.execArgv,
    main,
    ...process.argv.slice(2),
  ],
  process.env,
);
