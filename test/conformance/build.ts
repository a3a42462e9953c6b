/**
 * Builds the Go programs of this directory once, offline, from Debian packages only:
 * Debian's Go (golang-go) in GOPATH mode over /usr/share/gocode, where
 * golang-github-containerd-containerd-dev and the other golang-*-dev packages put
 * their sources.
 *
 *  - suites/ (buildSuites): containerd 1.6's content and snapshot test suites behind
 *    containerd's proxy clients, as `suites.test` (`go test -c`; flags -address and
 *    -snapshotters), with `test2json` (from Go's own sources) to read its verbose
 *    output as JSON events;
 *  - remote-pull/ (buildRemotePull): containerd's own client pulling with the
 *    remote-snapshotter labels (see its main.go).
 *
 * Each goes under `<cache>/<name>-<hash>/`, where hash covers its Go sources, this
 * file, the Go version and the installed golang-* package versions.
 */
import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { builderHash, buildOnce, cacheRoot, pruneCache } from "../integration/fixtures/build.ts";
import { must, requireTools } from "../integration/fixtures/exec.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
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

/**
 * Builds the Go package in `sources` with `build(partial, env)` once per hash of its
 * sources into `<cache>/<name>-<hash>/`, which it returns.
 */
async function buildGo(
  name: string,
  sources: string,
  build: (partial: string, env: NodeJS.ProcessEnv) => Promise<void>,
): Promise<string> {
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
    ...readdirSync(sources)
      .filter((f) => f.endsWith(".go"))
      .sort()
      .map((f) => join(sources, f)),
  ];
  const dir = join(cacheRoot(), `${name}-${builderHash(files, goVersion + packages)}`);
  await buildOnce(dir, async (partial) => {
    process.stderr.write(`conformance: building ${name} into ${dir}\n`);
    // the Go build cache outlives a build: a change to the sources recompiles only them
    await build(partial, goEnv(join(cacheRoot(), "go-build-cache")));
  });
  pruneCache(dir, `${name}-`);
  return dir;
}

/** The suites binary and test2json, built on first use and cached by source hash. */
export async function buildSuites(): Promise<SuitesBinaries> {
  const cwd = join(HERE, "suites");
  const dir = await buildGo("containerd-suites", cwd, async (partial, env) => {
    await must("go", ["test", "-c", "-o", join(partial, "suites.test"), "."], { cwd, env });
    await must("go", ["build", "-o", join(partial, "test2json"), "cmd/test2json"], { cwd, env });
  });
  return { suites: join(dir, "suites.test"), test2json: join(dir, "test2json") };
}

/** The remote-pull binary (remote-pull/main.go), built on first use and cached by source hash. */
export async function buildRemotePull(): Promise<string> {
  const cwd = join(HERE, "remote-pull");
  const dir = await buildGo("remote-pull", cwd, async (partial, env) => {
    await must("go", ["build", "-o", join(partial, "remote-pull"), "."], { cwd, env });
  });
  return join(dir, "remote-pull");
}
