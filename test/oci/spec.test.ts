import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseImageConfig } from "../../src/oci/image-config.ts";
import {
  buildSpec,
  DEFAULT_CAPABILITIES,
  DEFAULT_PATH,
  mergeEnv,
  OCI_VERSION,
  processArgs,
  type SpecOptions,
} from "../../src/oci/spec.ts";
import { type ResolvedUser, resolveUser } from "../../src/oci/user.ts";
import { checkSchema } from "./schema.ts";

const ROOT: ResolvedUser = { uid: 0, gid: 0, additionalGids: [0] };

function image(config: Record<string, unknown>, top: Record<string, unknown> = {}) {
  return parseImageConfig(
    JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] }, config, ...top }),
    "sha256:test",
  );
}

describe("processArgs (docker semantics)", () => {
  const cases: [string, Record<string, unknown>, Pick<SpecOptions, "args" | "entrypoint">, string[]][] = [
    ["Cmd only", { Cmd: ["/bin/sh"] }, {}, ["/bin/sh"]],
    ["Entrypoint + Cmd", { Entrypoint: ["/bin/echo"], Cmd: ["hello"] }, {}, ["/bin/echo", "hello"]],
    [
      "args replace Cmd, keep Entrypoint",
      { Entrypoint: ["/bin/echo"], Cmd: ["hello"] },
      { args: ["bye"] },
      ["/bin/echo", "bye"],
    ],
    ["args replace Cmd", { Cmd: ["/bin/sh"] }, { args: ["/bin/ls", "-l"] }, ["/bin/ls", "-l"]],
    [
      "--entrypoint drops Cmd",
      { Entrypoint: ["/bin/echo"], Cmd: ["hello"] },
      { entrypoint: ["/bin/true"] },
      ["/bin/true"],
    ],
    ["--entrypoint with args", { Cmd: ["x"] }, { entrypoint: ["/bin/echo"], args: ["a"] }, ["/bin/echo", "a"]],
    ["--entrypoint '' clears it", { Entrypoint: ["/bin/echo"] }, { entrypoint: [], args: ["/bin/id"] }, ["/bin/id"]],
    ["nothing", {}, {}, []],
    ["empty args keep Cmd", { Cmd: ["/bin/sh"] }, { args: [] }, ["/bin/sh"]],
  ];
  for (const [name, config, opts, want] of cases) {
    test(name, () => assert.deepEqual(processArgs(image(config).config, opts), want));
  }
});

describe("mergeEnv", () => {
  test("overrides replace in place, new keys append, duplicates collapse", () => {
    assert.deepEqual(mergeEnv(["PATH=/bin", "A=1", "B=2"], ["A=x", "C=3", "A=y"]), ["PATH=/bin", "A=y", "B=2", "C=3"]);
  });
  test("an empty value is a value", () => {
    assert.deepEqual(mergeEnv(["A=1"], ["A="]), ["A="]);
  });
});

describe("buildSpec", () => {
  test("image defaults and containerd's Linux defaults", () => {
    const img = image({
      Entrypoint: ["/bin/echo"],
      Cmd: ["hello"],
      Env: ["PATH=/bin", "FOO=bar"],
      WorkingDir: "/work",
      ExposedPorts: { "80/tcp": {}, "53/udp": {} },
      Volumes: { "/data": {}, "/dev": {} },
      Labels: { a: "b" },
      StopSignal: "SIGQUIT",
    });
    const s = buildSpec(img, {}, { uid: 1000, gid: 1000, additionalGids: [1000, 10], home: "/home/app" });
    assert.equal(s.ociVersion, OCI_VERSION);
    assert.deepEqual(s.process.args, ["/bin/echo", "hello"]);
    assert.deepEqual(s.process.env, ["PATH=/bin", "FOO=bar", "HOME=/home/app"]);
    assert.equal(s.process.cwd, "/work");
    assert.deepEqual(s.process.user, { uid: 1000, gid: 1000, additionalGids: [1000, 10] });
    assert.equal(s.process.terminal, false);
    assert.equal(s.process.noNewPrivileges, true);
    assert.deepEqual(s.process.capabilities.bounding, DEFAULT_CAPABILITIES);
    assert.deepEqual(s.process.rlimits, [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }]);
    assert.deepEqual(
      s.linux.namespaces.map((n) => n.type),
      ["pid", "ipc", "uts", "mount", "network"],
    );
    assert.deepEqual(
      s.mounts.map((m) => m.destination),
      ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/data"],
    );
    assert.equal(s.mounts.find((m) => m.destination === "/sys")?.options?.includes("ro"), true);
    assert.equal(s.mounts.find((m) => m.destination === "/data")?.type, "tmpfs");
    assert.ok(s.linux.maskedPaths.includes("/proc/kcore"));
    assert.ok(s.linux.readonlyPaths.includes("/proc/sys"));
    assert.deepEqual(s.linux.resources.devices, [{ allow: false, access: "rwm" }]);
    assert.equal(s.annotations["org.opencontainers.image.exposedPorts"], "53/udp,80/tcp");
    assert.equal(s.annotations["org.opencontainers.image.stopSignal"], "SIGQUIT");
    assert.equal(s.annotations["org.opencontainers.image.os"], "linux");
    assert.equal(s.annotations.a, "b");
    assert.deepEqual(s.root, { path: "rootfs", readonly: false });
    assert.deepEqual(checkSchema(JSON.parse(JSON.stringify(s))), []);
  });

  test("options override the image", () => {
    const img = image({ Cmd: ["/bin/sh"], Env: ["A=1", "TERM=dumb"], WorkingDir: "/w" });
    const s = buildSpec(
      img,
      {
        args: ["-c", "true"],
        entrypoint: ["/bin/sh"],
        env: ["A=2", "B=3"],
        cwd: "/tmp",
        tty: true,
        hostname: "box",
        readonlyRootfs: true,
        rootPath: "/abs/rootfs",
        cgroupsPath: "/dist/default/c1",
        annotations: { x: "y" },
      },
      ROOT,
    );
    assert.deepEqual(s.process.args, ["/bin/sh", "-c", "true"]);
    assert.deepEqual(s.process.env, [`PATH=${DEFAULT_PATH}`, "A=2", "TERM=dumb", "B=3"]);
    assert.equal(s.process.cwd, "/tmp");
    assert.equal(s.process.terminal, true);
    assert.equal(s.hostname, "box");
    assert.deepEqual(s.root, { path: "/abs/rootfs", readonly: true });
    assert.equal(s.linux.cgroupsPath, "/dist/default/c1");
    assert.equal(s.annotations.x, "y");
    assert.deepEqual(checkSchema(JSON.parse(JSON.stringify(s))), []);
  });

  test("PATH default when the image has none, TERM with a tty, HOME kept when set", () => {
    const s = buildSpec(image({ Cmd: ["x"], Env: ["HOME=/h"] }), { tty: true }, { ...ROOT, home: "/root" });
    assert.deepEqual(s.process.env, [`PATH=${DEFAULT_PATH}`, "HOME=/h", "TERM=xterm"]);
  });

  test("bad input is refused", () => {
    assert.throws(() => buildSpec(image({}), {}, ROOT), /no command/);
    assert.throws(() => buildSpec(image({ Cmd: ["x"] }), { env: ["NOEQUALS"] }, ROOT), /KEY=VALUE/);
    assert.throws(() => buildSpec(image({ Cmd: ["x"] }), { env: ["=v"] }, ROOT), /KEY=VALUE/);
    assert.throws(() => buildSpec(image({ Cmd: ["x"] }), { cwd: "relative" }, ROOT), /not an absolute path/);
    assert.throws(() => buildSpec(image({ Cmd: ["x"], WorkingDir: "w" }), {}, ROOT), /not an absolute path/);
    assert.throws(() => buildSpec(image({ Cmd: ["x"] }), { hostname: "bad host" }, ROOT), /invalid hostname/);
  });

  test("the image's user resolved against its files", () => {
    const files = {
      passwd: "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
      group: "root:x:0:\nnogroup:x:65534:\n",
    };
    const s = buildSpec(image({ Cmd: ["id"], User: "nobody" }), {}, resolveUser("nobody", files));
    assert.deepEqual(s.process.user, { uid: 65534, gid: 65534, additionalGids: [65534] });
    assert.ok(s.process.env.includes("HOME=/"));
  });
});

describe("parseImageConfig (hostile input)", () => {
  const bad: [string, string, RegExp][] = [
    ["not JSON", "{", /not JSON/],
    ["array", "[]", /not an object/],
    ["Env of numbers", JSON.stringify({ config: { Env: [1] } }), /config\.Env is not an array of strings/],
    ["Cmd a string", JSON.stringify({ config: { Cmd: "/bin/sh" } }), /config\.Cmd/],
    ["User a number", JSON.stringify({ config: { User: 0 } }), /config\.User is not a string/],
    ["Labels of numbers", JSON.stringify({ config: { Labels: { a: 1 } } }), /Labels/],
    ["Volumes an array", JSON.stringify({ config: { Volumes: ["/x"] } }), /Volumes is not an object/],
  ];
  for (const [name, text, re] of bad) {
    test(name, () => assert.throws(() => parseImageConfig(text, "sha256:x"), re));
  }
  test("null fields are absent (Docker writes Cmd: null)", () => {
    const c = parseImageConfig(JSON.stringify({ config: { Cmd: null, Entrypoint: null, Env: null } }), "d");
    assert.deepEqual(c.config, {});
  });
  test("no config object at all", () => {
    assert.deepEqual(parseImageConfig("{}", "d").config, {});
  });
});

describe("checkSchema", () => {
  test("catches wrong types, unknown fields and missing required ones", () => {
    const errs = checkSchema({
      ociVersion: "1.0.2",
      process: { cwd: "rel", args: [], user: { uid: -1 }, noNewPrivileges: "yes" },
      root: { path: "rootfs", readOnly: true },
      mounts: [{ destination: "proc" }],
      linux: { namespaces: [{ type: "time" }] },
    });
    for (const want of [
      "$.process.cwd",
      "$.process.args: fewer than 1",
      "$.process.user.uid: -1",
      "$.process.user.gid: required",
      "$.process.noNewPrivileges: expected a boolean",
      "$.root.readOnly: unknown field",
      "$.mounts[0].destination",
      "$.linux.namespaces[0].type",
    ]) {
      assert.ok(
        errs.some((e) => e.startsWith(want)),
        `missing ${want} in ${errs.join("; ")}`,
      );
    }
  });
});
