/**
 * The version of dist: git describe of a checkout (".m" when modified), else
 * package.json. `dist --version` prints it and the daemon serves it.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const top = join(dirname(fileURLToPath(import.meta.url)), "..");

export function packageInfo(): { name: string; version: string } {
  const pkg = JSON.parse(readFileSync(join(top, "package.json"), "utf8")) as { name: string; version: string };
  return { name: pkg.name, version: pkg.version };
}

export function version(): string {
  if (existsSync(join(top, ".git"))) {
    try {
      return execFileSync(
        "git",
        ["-C", top, "-c", `safe.directory=${top}`, "describe", "--tags", "--dirty=.m", "--always"],
        {
          encoding: "utf8",
          stdio: ["ignore", "pipe", "ignore"],
        },
      ).trim();
    } catch {
      // not a usable checkout (no git, no commits): fall back to the package version
    }
  }
  return packageInfo().version;
}
