// The rootless run's plan (what the host offers, what is missing), its unshare options and its spec.
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import type { Spec } from "../../src/oci/spec.ts";
import { mappingArgs, rootlessPlan, rootlessSpec, subordinateRange } from "../../src/run/rootless.ts";

const top = mkdtempSync(join(tmpdir(), "dist-rootless-"));
after(() => rmSync(top, { recursive: true, force: true }));

function file(path: string, content: string): string {
  const p = join(top, path);
  mkdirSync(join(p, ".."), { recursive: true });
  writeFileSync(p, content);
  return p;
}

/** A host: /proc/sys values, subordinate id files, programs on the path. */
function host(name: string, opts: { sysctl?: Record<string, string>; subids?: string; programs?: string[] } = {}) {
  const procSys = join(top, name, "proc-sys");
  mkdirSync(procSys, { recursive: true });
  for (const [k, v] of Object.entries(opts.sysctl ?? {})) file(join(name, "proc-sys", k), `${v}\n`);
  const bin = join(top, name, "bin");
  mkdirSync(bin, { recursive: true });
  for (const p of opts.programs ?? ["unshare", "newuidmap", "newgidmap"]) {
    chmodSync(file(join(name, "bin", p), "#!/bin/sh\n"), 0o755);
  }
  return {
    procSys,
    path: [bin],
    subuid: file(join(name, "subuid"), opts.subids ?? ""),
    subgid: file(join(name, "subgid"), opts.subids ?? ""),
    uid: 1000,
    gid: 1000,
    user: "alice",
  };
}

describe("rootless plan", () => {
  it("maps the user's subordinate ranges when it has them and newuidmap is there", () => {
    const h = host("ranges", {
      subids: "bob:100000:65536\nalice:200000:65536\n",
      sysctl: { "user/max_user_namespaces": "100" },
    });
    const plan = rootlessPlan(h);
    assert.deepEqual(plan.subuid, { start: 200000, count: 65536 });
    assert.equal(plan.single, undefined);
    assert.deepEqual(mappingArgs(plan), [
      "--map-root-user",
      "--map-users=200000,1,65536",
      "--map-groups=200000,1,65536",
    ]);
  });

  it("falls back to a single mapping, saying why", () => {
    assert.equal(rootlessPlan(host("none")).single, "no /etc/subuid range for alice");
    const noTools = rootlessPlan(host("tools", { subids: "1000:300000:1000", programs: ["unshare"] }));
    assert.equal(noTools.single, 'no newuidmap/newgidmap (Debian package "uidmap")');
    assert.deepEqual(mappingArgs(noTools), ["--map-root-user"]);
  });

  it("names what is missing: user namespaces, unshare", () => {
    assert.throws(
      () => rootlessPlan(host("off", { sysctl: { "user/max_user_namespaces": "0" } })),
      /needs user namespaces, and they are disabled here \(sysctl user\.max_user_namespaces = 0\)/,
    );
    assert.throws(
      () => rootlessPlan(host("debian", { sysctl: { "kernel/unprivileged_userns_clone": "0" } })),
      /unprivileged ones are disabled here \(sysctl kernel\.unprivileged_userns_clone = 0\)/,
    );
    assert.throws(
      () => rootlessPlan(host("ubuntu", { sysctl: { "kernel/apparmor_restrict_unprivileged_userns": "1" } })),
      /AppArmor restricts unprivileged ones/,
    );
    assert.throws(() => rootlessPlan(host("bare", { programs: [] })), /needs "unshare" \(Debian package util-linux\)/);
  });

  it("reads subordinate ranges by name or uid, the first one", () => {
    assert.deepEqual(subordinateRange("# c\n1000:5:10\nalice:50:5\n", "alice", 1000), { start: 5, count: 10 });
    assert.equal(subordinateRange("alice:x:5\nalice:0:0\n", "alice", 1), undefined);
  });
});

describe("rootless spec", () => {
  const spec = (uid: number, gid: number, gids: number[]): Spec =>
    ({
      process: { user: { uid, gid, additionalGids: gids } },
      mounts: [{ destination: "/dev/pts", type: "devpts", source: "devpts", options: ["newinstance", "gid=5"] }],
      linux: { cgroupsPath: "/dist/default/x" },
    }) as unknown as Spec;
  const ranges = { user: "alice", subuid: { start: 200000, count: 65536 }, subgid: { start: 200000, count: 65536 } };

  it("has no cgroup path; keeps ids the ranges map", () => {
    const s = rootlessSpec(spec(65534, 65534, [65534, 5]), ranges);
    assert.equal(s.linux.cgroupsPath, undefined);
    assert.deepEqual(s.mounts[0].options, ["newinstance", "gid=5"]);
    assert.deepEqual(s.process.user.additionalGids, [65534, 5]);
  });

  it("with only root mapped: no gid=5, no other groups, and another user is an error saying what maps it", () => {
    const single = { user: "alice" };
    const s = rootlessSpec(spec(0, 0, [0, 10]), single);
    assert.deepEqual(s.mounts[0].options, ["newinstance"]);
    assert.deepEqual(s.process.user.additionalGids, [0]);
    assert.throws(
      () => rootlessSpec(spec(65534, 65534, []), single),
      /the container's user 65534 does not exist in this rootless run \(only id 0 \(root\) is mapped\): add ranges for alice to \/etc\/subuid and \/etc\/subgid/,
    );
    assert.throws(() => rootlessSpec(spec(70000, 0, []), ranges), /user 70000 .*\(ids 0 to 65536 are mapped\)/);
  });
});
