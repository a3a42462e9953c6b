// The CLI's registry flags and the RegistryOptions they make.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Command } from "commander";
import { addRegistryFlags, registryOptions } from "../../src/cli/registry-flags.ts";

function parse(args: string[]) {
  const cmd = addRegistryFlags(new Command("x").exitOverride().argument("[ref]"));
  cmd.parse(args, { from: "user" });
  return cmd.opts();
}

describe("registry flags", () => {
  it("maps every flag", () => {
    const o = registryOptions(
      parse([
        "--plain-http",
        "-u",
        "bob:pw:x",
        "--tlscacert",
        "/a.pem",
        "--tlscacert",
        "/b.pem",
        "-k",
        "--hosts-dir",
        "/etc/dist/certs.d",
        "--stall-timeout",
        "90s",
        "ref",
      ]),
    );
    assert.equal(o.plainHttp, true);
    assert.equal(o.user, "bob:pw:x");
    assert.deepEqual(o.tlsCaCert, ["/a.pem", "/b.pem"]);
    assert.equal(o.skipVerify, true);
    assert.equal(o.hostsDir, "/etc/dist/certs.d");
    assert.equal(o.stallTimeoutMs, 90_000);
    assert.equal(o.promptPassword, undefined);
  });

  it("leaves defaults alone", () => {
    const o = registryOptions(parse([]));
    assert.equal(o.plainHttp, undefined);
    assert.equal(o.user, undefined);
    assert.equal(o.tlsCaCert, undefined);
    assert.equal(o.stallTimeoutMs, undefined);
  });

  it("a user without a password needs a terminal", { skip: process.stdin.isTTY && "stdin is a terminal" }, () => {
    assert.throws(
      () => registryOptions(parse(["-u", "bob"])),
      /--user bob: no password given and stdin is not a terminal/,
    );
  });

  it("rejects bad values", () => {
    assert.throws(() => registryOptions(parse(["--stall-timeout", "soon"])), /invalid duration "soon"/);
    assert.throws(() => registryOptions(parse(["--stall-timeout", "0s"])), /must be more than 0/);
    assert.throws(() => registryOptions(parse(["-u", ":pw"])), /empty user name/);
  });
});
