// Completion from the real command tree, with image names and container ids from a stand-in store.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type CompletionSource, complete, completionScript } from "../../src/cli/completion.ts";
import { buildProgram } from "../../src/cli/program.ts";

const IMAGES = ["127.0.0.1:5000/tiny/busybox:oci", "docker.io/library/redis:latest"];
const asked: { root?: string; namespace?: string }[] = [];
const source: CompletionSource = {
  images: async (ctx) => {
    asked.push(ctx);
    return IMAGES;
  },
  containers: async () => ["web", "worker"],
};

async function values(...words: string[]): Promise<string[]> {
  return (await complete(buildProgram(), words, source)).candidates.map((c) => c.value);
}

describe("completion", () => {
  it("completes commands and subcommands from the tree, hidden ones left out", async () => {
    const top = await values("");
    for (const c of ["pull", "fetch", "images", "run", "completion"]) assert.ok(top.includes(c), c);
    assert.ok(!top.includes("__complete"));
    assert.deepEqual(await values("fe"), ["fetch-object", "fetch"]);
    assert.deepEqual(await values("images", ""), ["ls", "rm", "tag", "check"]);
    assert.deepEqual(await values("snapshot", "u"), ["umount", "usage"], "through an alias");
  });

  it("completes a command's options and its parents' after it", async () => {
    const pull = await values("pull", "--");
    for (const f of [
      "--plain-http",
      "--platform",
      "--progress",
      "--snapshotter",
      "--print-chainid",
      "--root",
      "--help",
    ]) {
      assert.ok(pull.includes(f), f);
    }
    assert.deepEqual(await values("pull", "--pr"), ["--progress", "--print-chainid"]);
    assert.deepEqual(await values("--ro"), ["--root"]);
  });

  it("completes option values, after a space or an =", async () => {
    assert.deepEqual(await values("pull", "--progress", ""), ["auto", "tty", "plain", "json"]);
    assert.deepEqual(await values("pull", "--snapshotter", "n"), ["native"]);
    assert.deepEqual(await values("pull", "--progress=j"), ["--progress=json"]);
    assert.deepEqual(await values("images", "ls", "--output", ""), ["table", "json"]);
    const dirs = await complete(buildProgram(), ["--root", ""], source);
    assert.deepEqual(dirs, { candidates: [], directive: "dirs" });
    assert.equal((await complete(buildProgram(), ["fetch", "--tlscacert", ""], source)).directive, "files");
  });

  it("completes image names for image arguments, from the store the line names", async () => {
    asked.length = 0;
    assert.deepEqual(await values("--root", "/srv/dist", "-n", "ci", "run", "127"), [IMAGES[0]]);
    assert.deepEqual(asked, [{ root: "/srv/dist", namespace: "ci" }]);
    assert.deepEqual(await values("rmi", IMAGES[0], "d"), [IMAGES[1]], "every name of a variadic argument");
    assert.deepEqual(await values("images", "tag", ""), IMAGES);
    assert.deepEqual(await values("pull", "docker"), [IMAGES[1]]);
    assert.deepEqual(await values("push", "docker"), [IMAGES[1]]);
    assert.deepEqual(await values("push", "registry.example.com/app:1", "127"), [IMAGES[0]], "the local name");
    assert.deepEqual(await values("export", "out.tar", IMAGES[0], "d"), [IMAGES[1]]);
    assert.equal((await complete(buildProgram(), ["export", ""], source)).directive, "files", "the output");
    // the container's command after the image: the shell's own completion
    assert.equal((await complete(buildProgram(), ["run", IMAGES[0], ""], source)).directive, "files");
  });

  it("completes container ids for kill and rm; paths where an argument is a path", async () => {
    assert.deepEqual(await values("kill", "w"), ["web", "worker"]);
    assert.deepEqual(await values("kill", "-s", "SIGK"), ["SIGKILL"]);
    assert.equal((await complete(buildProgram(), ["apply", ""], source)).directive, "files");
    assert.deepEqual(await complete(buildProgram(), ["ps", ""], source), { candidates: [], directive: "none" });
  });

  it("has a script for bash, zsh and fish, and refuses other shells", () => {
    assert.match(completionScript("bash"), /complete -F _dist_complete dist/);
    assert.match(completionScript("zsh"), /compdef _dist dist/);
    assert.match(completionScript("fish"), /complete -c dist -f -a '\(__dist_complete\)'/);
    assert.throws(() => completionScript("tcsh"), /unknown shell "tcsh": expected bash, zsh, fish/);
  });
});
