/**
 * The daemon's garbage collection driven by the real ctr (containerd 1.6):
 * leases, `ctr images rm --sync` freeing blobs and snapshots, a collection
 * after a plain delete; and the oracle: one sequence of pulls, tags, deletes
 * and leases run by ctr against dist daemon and against a private real
 * containerd keeps the same digests and snapshots in both.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type DaemonProcess, startDaemonProcess } from "../services/fixture.ts";
import { type Containerd, startContainerd } from "./fixtures/containerd.ts";
import { run } from "./fixtures/exec.ts";
import { type Testbed, testbed } from "./harness.ts";

let tb: Testbed;
let d: DaemonProcess;
let containerd: Containerd;
let tmp: string;

before(async () => {
  tb = await testbed();
  tmp = mkdtempSync(join(tmpdir(), "dist-gc-daemon-"));
  [d, containerd] = await Promise.all([
    startDaemonProcess(join(tmp, "root"), join(tmp, "dist.sock")),
    startContainerd(join(tmp, "containerd")),
  ]);
});

after(async () => {
  await d?.stop();
  await containerd?.stop();
  rmSync(tmp, { recursive: true, force: true });
  await tb?.stop();
});

async function ctr(sock: string, ns: string, args: string[]): Promise<string> {
  const r = await run("ctr", ["--address", sock, "--namespace", ns, ...args], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, `ctr ${args.join(" ")}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

const lines = (s: string) =>
  s
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .sort();
const native = ["snapshots", "--snapshotter", "native"];

describe("ctr against dist daemon: leases and collection", () => {
  test("ctr leases create, ls, rm", async () => {
    const c = (args: string[]) => ctr(d.sock, "gc-leases", args);
    assert.equal((await c(["leases", "create", "--id", "ctr-lease", "-x", "1h", "team=a"])).trim(), "ctr-lease");
    const ls = await c(["leases", "ls"]);
    assert.match(ls, /ctr-lease\s+.*containerd\.io\/gc\.expire=/);
    assert.match(ls, /team=a/);
    await c(["leases", "rm", "--sync", "ctr-lease"]);
    assert.deepEqual(lines(await c(["leases", "ls", "-q"])), []);
  });

  test("ctr images rm --sync frees the blobs and snapshots; a plain rm is followed by a collection", async () => {
    const ns = "gc-images";
    const c = (args: string[]) => ctr(d.sock, ns, args);
    const ref = `${tb.plain}/tiny/busybox:oci`;
    await c(["images", "pull", "--plain-http", "--snapshotter", "native", ref]);
    assert.equal(lines(await c(["content", "ls", "-q"])).length, 3);
    assert.ok(lines(await c([...native, "ls"])).length > 1);
    await c(["images", "rm", "--sync", ref]);
    assert.deepEqual(lines(await c(["content", "ls", "-q"])), []);
    assert.deepEqual(lines(await c([...native, "ls"])).slice(1), [], "only the header");

    await c(["images", "pull", "--plain-http", "--snapshotter", "native", ref]);
    await c(["images", "rm", ref]);
    for (let i = 0; i < 100 && lines(await c(["content", "ls", "-q"])).length > 0; i++) await sleep(100);
    assert.deepEqual(lines(await c(["content", "ls", "-q"])), [], "collected after the delete");
  });

  test("the oracle: the same pulls, tags, deletes and leases keep the same digests in containerd and in dist", async () => {
    const ns = "oracle";
    const a = `${tb.plain}/tiny/busybox:oci`;
    const b = `${tb.plain}/tiny/busybox:docker`;
    const state = async (sock: string) => ({
      content: lines(await ctr(sock, ns, ["content", "ls", "-q"])),
      snapshots: lines(await ctr(sock, ns, [...native, "ls"])).map((l) => l.split(/\s+/).slice(0, 2).join(" ")),
      images: lines(await ctr(sock, ns, ["images", "ls", "-q"])),
    });
    const steps: string[][] = [
      ["images", "pull", "--plain-http", "--snapshotter", "native", a],
      ["images", "pull", "--plain-http", "--snapshotter", "native", b],
      ["images", "tag", a, `${a}-copy`],
      ["leases", "create", "--id", "oracle-lease", "-x", "1h"],
      ["images", "rm", "--sync", a],
    ];
    const seen: Awaited<ReturnType<typeof state>>[][] = [[], []];
    for (const step of steps) {
      for (const [i, sock] of [d.sock, containerd.sock].entries()) {
        await ctr(sock, ns, step);
        seen[i].push(await state(sock));
      }
    }
    for (const last of [
      ["images", "rm", "--sync", b],
      ["leases", "rm", "--sync", "oracle-lease"],
      ["images", "rm", "--sync", `${a}-copy`],
    ]) {
      for (const [i, sock] of [d.sock, containerd.sock].entries()) {
        await ctr(sock, ns, last);
        seen[i].push(await state(sock));
      }
    }
    assert.deepEqual(seen[0], seen[1], "dist daemon and containerd agree after each step");
    const final = seen[0][seen[0].length - 1];
    assert.deepEqual(final.content, [], "nothing left once every image is gone");
  });
});
