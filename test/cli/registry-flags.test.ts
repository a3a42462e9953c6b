// The CLI's registry flags and the RegistryOptions they make.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Command } from "commander";
import { UsageError } from "../../src/cli/args.ts";
import { addRegistryFlags, readPasswordFromStdin, registryOptions } from "../../src/cli/registry-flags.ts";

function parse(args: string[]) {
  const cmd = addRegistryFlags(new Command("x").exitOverride().argument("[ref]"));
  cmd.parse(args, { from: "user" });
  return cmd.opts();
}

/** What fn writes to stderr (the CLI's warnings), and its result. */
function stderrOf<T>(fn: () => T): { result: T; stderr: string } {
  const write = process.stderr.write;
  let stderr = "";
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    return { result: fn(), stderr };
  } finally {
    process.stderr.write = write;
  }
}

async function* chunks(...parts: string[]): AsyncGenerator<Buffer> {
  for (const p of parts) yield Buffer.from(p);
}

describe("registry flags", () => {
  it("maps every flag", () => {
    const { result: o } = stderrOf(() =>
      registryOptions(
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
      ),
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

  it("a password on the command line works, with a warning that others can see it", () => {
    const { result, stderr } = stderrOf(() => registryOptions(parse(["-u", "bob:s3cret"])));
    assert.equal(result.user, "bob:s3cret");
    assert.equal(
      stderr,
      "dist: warning: a password on the command line can be seen by other users (ps, /proc) and stays in shell history: use --user bob --password-stdin\n",
    );
    assert.ok(!stderr.includes("s3cret"), "the warning does not repeat the password");
    assert.equal(stderrOf(() => registryOptions(parse(["-u", "bob", "--password-stdin"]))).stderr, "");
  });

  it("--password-stdin: the password is read from stdin when the registry asks for it", async () => {
    const o = registryOptions(parse(["-u", "bob", "--password-stdin"]));
    assert.equal(o.user, "bob");
    assert.equal(typeof o.promptPassword, "function", "asked only when a registry wants credentials");
  });

  it("--password-stdin needs --user USER without a password", () => {
    assert.throws(
      () => registryOptions(parse(["--password-stdin"])),
      (e: unknown) => {
        assert.ok(e instanceof UsageError);
        assert.match(e.message, /--password-stdin needs --user USER/);
        return true;
      },
    );
    assert.throws(
      () => registryOptions(parse(["-u", "bob:pw", "--password-stdin"])),
      /--password-stdin with --user bob:PASSWORD: give the password one way/,
    );
  });

  it("reads all of stdin, less one final line break", async () => {
    assert.equal(await readPasswordFromStdin(chunks("s3cr", "et\n")), "s3cret");
    assert.equal(await readPasswordFromStdin(chunks("pass word \r\n")), "pass word ");
    assert.equal(await readPasswordFromStdin(chunks("two\n\n")), "two\n", "only the last line break goes");
    await assert.rejects(readPasswordFromStdin(chunks("\n")), /--password-stdin: no password on stdin/);
    await assert.rejects(readPasswordFromStdin(chunks()), /--password-stdin: no password on stdin/);
    await assert.rejects(readPasswordFromStdin(chunks("x".repeat(70_000))), /more than 65536 bytes on stdin/);
  });

  it("rejects bad values", () => {
    assert.throws(() => registryOptions(parse(["--stall-timeout", "soon"])), /invalid duration "soon"/);
    assert.throws(() => registryOptions(parse(["--stall-timeout", "0s"])), /must be more than 0/);
    assert.throws(() => registryOptions(parse(["-u", ":pw"])), /empty user name/);
  });
});
