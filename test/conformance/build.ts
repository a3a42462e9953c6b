/**
 * Builds the Go test program in suites/ (containerd 1.6's content and snapshot test
 * suites behind containerd's proxy clients) once, offline, from Debian packages only:
 * Debian's Go (golang-go) in GOPATH mode over /usr/share/gocode, where
 * golang-github-containerd-containerd-dev and the other golang-*-dev packages put
 * their sources. test2json (from Go's own sources) is built next to it, so a run
 * needs nothing but the two binaries.
 *
 * Result, under `<cache>/containerd-suites-<hash>/` where hash covers the Go sources,
 * this file, the Go version and the installed golang-* package versions:
 *   suites.test   the test binary (`go test -c`), flags -address and -snapshotters
 *   test2json     `go tool test2json`, to read its verbose output as JSON events
 */
import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { builderHash, buildOnce, cacheRoot, pruneCache } from "../integration/fixtures/build.ts";
import { must, requireTools } from "../integration/fixtures/exec.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
const SOURCES = join(HERE, "suites");
const GOPATH = "/usr/share/gocode";
const CONTAINERD_SRC = join(GOPATH, "src", "github.com", "containerd", "containerd");

export interface SuitesBinaries {
  suites: string;
  test2json: string;
}

/** GOPATH mode, nothing from the network, no C compiler, no user Go settings. */
function goEnv(gocache: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    GOENV: "off",
    GO111MODULE: "off",
    GOFLAGS: "",
    GOPATH,
    GOPROXY: "off",
    GOCACHE: gocache,
    CGO_ENABLED: "0",
    GOTOOLCHAIN: "local", // a newer Go must not try to download another toolchain
  };
}

/** The suites binary and test2json, built on first use and cached by source hash. */
export async function buildSuites(): Promise<SuitesBinaries> {
  requireTools(["go", "dpkg-query"]);
  if (!existsSync(join(CONTAINERD_SRC, "content", "testsuite"))) {
    throw new Error(
      `conformance: containerd's Go sources are missing (${CONTAINERD_SRC}); install the Debian package ` +
        "golang-github-containerd-containerd-dev (as root: bash scripts/test-deps.sh)",
    );
  }
  const goVersion = await must("go", ["version"]);
  const packages = await must("dpkg-query", ["-W", "golang-*"]);
  const files = [
    fileURLToPath(import.meta.url),
    ...readdirSync(SOURCES)
      .filter((f) => f.endsWith(".go"))
      .sort()
      .map((f) => join(SOURCES, f)),
  ];
  const dir = join(cacheRoot(), `containerd-suites-${builderHash(files, goVersion + packages)}`);
  const out = { suites: join(dir, "suites.test"), test2json: join(dir, "test2json") };
  await buildOnce(dir, async (partial) => {
    process.stderr.write(`conformance: building containerd's test suites into ${dir}\n`);
    // the Go build cache outlives a build: a change to the sources recompiles only them
    const env = goEnv(join(cacheRoot(), "go-build-cache"));
    await must("go", ["test", "-c", "-o", join(partial, "suites.test"), "."], { cwd: SOURCES, env });
    await must("go", ["build", "-o", join(partial, "test2json"), "cmd/test2json"], { cwd: SOURCES, env });
  });
  pruneCache(dir, "containerd-suites-");
  return out;
}
