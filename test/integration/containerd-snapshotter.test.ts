/**
 * `dist daemon` as a real containerd 1.6's snapshotter: a private containerd with two
 * proxy plugins on one daemon (`dist`, overlay; `dist-native`, native), ctr pulling and
 * running containers (runc, through containerd's own shim) on dist's snapshots, and
 * the remote-snapshotter fast path driven by containerd's own client
 * (conformance/remote-pull: Client.Pull with snapshotters.AppendInfoHandlerWrapper),
 * checked against the registry's log (who fetched which blob) and containerd's
 * content store (which blobs containerd holds).
 */
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { buildRemotePull } from "../conformance/build.ts";
import { type DaemonProcess, startDaemonProcess } from "../services/fixture.ts";
import { type Containerd, startContainerd } from "./fixtures/containerd.ts";
import { run } from "./fixtures/exec.ts";
import { lineCount, loggedRequests } from "./fixtures/registry.ts";
import { type ImageInfo, type Testbed, testbed } from "./harness.ts";

const isRoot = process.getuid?.() === 0;

describe("dist daemon as containerd's snapshotter", { skip: !isRoot && "containerd mounts snapshots: root" }, () => {
  let tb: Testbed;
  let d: DaemonProcess;
  let containerd: Containerd;
  let remotePull: string;

  const img = (ref: string): ImageInfo => {
    const i = tb.images[ref];
    assert.ok(i, `test image ${ref}`);
    return i;
  };
  const layersOf = (ref: string) => (img(ref).layers ?? []).map((l) => l.digest);

  /** ctr against the private containerd; fails the test unless it succeeds. */
  const cctr = async (args: string[]) => {
    const r = await containerd.ctr(args);
    assert.equal(r.code, 0, `ctr ${args.join(" ")}: ${r.stderr}\ndaemon log tail:\n${tail(d.logs())}`);
    return r.stdout;
  };
  /** ctr against dist's daemon itself, in one of its namespaces. */
  const dctr = async (ns: string, args: string[]) => {
    const r = await run("ctr", ["-a", d.sock, "-n", ns, ...args], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, `ctr -n ${ns} ${args.join(" ")}: ${r.stderr.toString()}`);
    return r.stdout.toString();
  };
  /** containerd's own client pulling with unpack into `snapshotter`, with -info the remote-snapshotter labels. */
  const pull = async (ref: string, flags: string[]) => {
    const r = await run(remotePull, ["-address", containerd.sock, "-plain-http", ...flags, ref], {
      timeoutMs: 120_000,
    });
    assert.equal(r.code, 0, `remote-pull ${ref}: ${r.stderr.toString()}\ndaemon log tail:\n${tail(d.logs())}`);
    return JSON.parse(r.stdout.toString()) as { name: string; digest: string };
  };
  const committed = async (ns: string, snapshotter: string) =>
    (await dctr(ns, ["snapshots", "--snapshotter", snapshotter, "ls"]))
      .split("\n")
      .filter((l) => / Committed\s*$/.test(l))
      .map((l) => l.split(/\s+/)[0]);
  /** The blobs in containerd's own content store. */
  const containerdBlobs = async () => new Set((await cctr(["content", "ls", "-q"])).split("\n").filter(Boolean));
  /** The layer blob GETs the registry answered since `mark`, by client ("dist" or "containerd"). */
  const layerFetches = (log: string, mark: number, layers: string[]) => {
    const out = { dist: [] as string[], containerd: [] as string[] };
    for (const q of loggedRequests(log, mark)) {
      const digest = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(q.uri)?.[1];
      if (q.method !== "GET" || !digest || !layers.includes(digest) || q.status !== 200) continue;
      if (q.agent.startsWith("dist/")) out.dist.push(digest);
      else if (q.agent.startsWith("containerd/")) out.containerd.push(digest);
    }
    return out;
  };
  /** Every path of a container's root filesystem with its type and mode, size, owner and links. */
  const treeOf = async (ref: string, snapshotter: string, id: string) =>
    cctr([
      "run",
      "--rm",
      "--snapshotter",
      snapshotter,
      ref,
      id,
      "sh",
      "-c",
      // the mount points of the runtime's own filesystems (proc's link count is its processes) left out
      "find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /run \\) -prune -o -exec stat -c '%n %f %s %u:%g %h' {} + | sort",
    ]);

  before(async () => {
    tb = await testbed();
    const dir = tb.tempDir("ctrd-sn");
    // the daemon's own registry configuration for the fast path: plain HTTP to the test bed, no credentials
    const hosts = join(dir, "hosts");
    for (const host of [tb.plain, tb.basic]) {
      mkdirSync(join(hosts, host), { recursive: true });
      writeFileSync(join(hosts, host, "hosts.toml"), `server = "http://${host}"\n`);
    }
    const dockerConfig = join(dir, "docker");
    mkdirSync(dockerConfig);
    [d, remotePull] = await Promise.all([
      startDaemonProcess(
        join(dir, "root"),
        join(dir, "run", "dist.sock"),
        ["--hosts-dir", hosts, "--snapshotter-alias", "dist=overlay", "--snapshotter-alias", "dist-native=native"],
        { DOCKER_CONFIG: dockerConfig },
      ),
      buildRemotePull(),
    ]);
    containerd = await startContainerd(join(dir, "containerd"), {
      config: ["dist", "dist-native"]
        .map((name) => `[proxy_plugins."${name}"]\n  type = "snapshot"\n  address = "${d.sock}"\n`)
        .join(""),
    });
  });

  after(async () => {
    await containerd?.stop();
    const code = await d?.stop();
    assert.equal(code, 0, `daemon exit code ${code}:\n${tail(d?.logs() ?? "")}`);
    await tb?.stop();
  });

  test("ctr pulls onto dist's snapshots and runs a container there (runc through containerd's shim)", async () => {
    const ref = `${tb.plain}/tiny/busybox:oci`;
    await cctr(["images", "pull", "--plain-http", "--snapshotter", "dist", ref]);
    assert.equal(await cctr(["run", "--rm", "--snapshotter", "dist", ref, "echo-hi", "echo", "hi"]), "hi\n");
    // containerd's snapshots live in the plugin's own namespace of the daemon, not in dist's
    assert.equal((await committed("dist", "overlayfs")).length, 1);
    assert.deepEqual(await committed("default", "overlayfs"), []);
  });

  test("a 127-layer image runs: containerd mounts the overlay dist returns, lowerdirs past one page", async () => {
    const ref = `${tb.plain}/deep/busybox:127`;
    await cctr(["images", "pull", "--plain-http", "--snapshotter", "dist", ref]);
    const out = await cctr([
      "run",
      "--rm",
      "--snapshotter",
      "dist",
      ref,
      "deep",
      "sh",
      "-c",
      "cat /deep/top; ls /deep | wc -l",
    ]);
    assert.deepEqual(out.split(/\s+/).filter(Boolean), ["126", "127"]);
  });

  test("the remote-snapshotter fast path: dist fetches the layers once, containerd none, the same tree", async () => {
    const name = "edge/whiteouts:oci";
    const ref = `${tb.plain}/${name}`;
    const layers = layersOf(name);
    // its first layer is busybox's, which containerd unpacked itself above: dist starts on that snapshot
    assert.deepEqual([layers.length, layers[0]], [4, layersOf("tiny/busybox:oci")[0]]);
    const mark = lineCount(tb.logs.plain);
    const pulled = await pull(ref, ["-snapshotter", "dist", "-info"]);
    assert.equal(pulled.digest, img(name).digest);
    const fetches = layerFetches(tb.logs.plain, mark, layers);
    assert.deepEqual(fetches.dist.sort(), layers.slice(1).sort(), "dist fetched each new layer once");
    assert.deepEqual(fetches.containerd, [], "containerd fetched none");
    const blobs = await containerdBlobs();
    for (const l of layers.slice(1)) assert.ok(!blobs.has(l), `containerd's content store lacks layer ${l}`);
    assert.ok(
      blobs.has(img(name).digest) && blobs.has(img(name).config?.digest ?? ""),
      "it has the manifest and config",
    );
    assert.match(d.logs(), /"msg":"layer unpacked from the registry"/);
    // the same tree as containerd's own unpack (it fetches the layers now) onto its overlayfs
    const ours = await treeOf(ref, "dist", "tree-dist");
    await cctr(["images", "pull", "--plain-http", ref]);
    assert.equal(ours, await treeOf(ref, "overlayfs", "tree-containerd"));
    assert.match(ours, /^\/data /m);
  });

  test("a layer twice in one image: each of its snapshots made on the right parent", async () => {
    const name = "general/busybox:twice";
    const ref = `${tb.plain}/${name}`;
    const mark = lineCount(tb.logs.plain);
    await pull(ref, ["-snapshotter", "dist", "-info"]);
    const [layer, again] = layersOf(name);
    assert.equal(layer, again);
    // the first is busybox's snapshot, there already; dist made the second on it
    assert.deepEqual(layerFetches(tb.logs.plain, mark, [layer]), { dist: [layer], containerd: [] });
    assert.match(await cctr(["run", "--rm", "--snapshotter", "dist", ref, "twice", "ls", "/"]), /^bin$/m);
  });

  test("without the labels containerd fetches and applies every layer itself", async () => {
    const name = "general/busybox:empty";
    const ref = `${tb.plain}/${name}`;
    const before = await containerdBlobs();
    const mark = lineCount(tb.logs.plain);
    await pull(ref, ["-snapshotter", "dist-native"]);
    const fetches = layerFetches(tb.logs.plain, mark, layersOf(name));
    assert.deepEqual(fetches.dist, []);
    const missing = layersOf(name).filter((l) => !before.has(l));
    assert.ok(missing.length > 0);
    assert.deepEqual(fetches.containerd.sort(), missing.sort());
    assert.equal((await committed("dist-native", "native")).length, layersOf(name).length);
    assert.equal(await cctr(["run", "--rm", "--snapshotter", "dist-native", ref, "native", "echo", "ok"]), "ok\n");
  });

  test("when dist cannot fetch a layer (no credentials of its own) containerd unpacks it, and the daemon says why", async () => {
    const name = "general/busybox:dialects";
    const ref = `${tb.basic}/${name}`;
    const logged = d.logs().length;
    await pull(ref, ["-snapshotter", "dist", "-info", "-user", `${tb.user}:${tb.password}`]);
    const blobs = await containerdBlobs();
    for (const l of layersOf(name).slice(1)) assert.ok(blobs.has(l), `containerd fetched layer ${l} itself`);
    assert.match(d.logs().slice(logged), /"msg":"could not unpack the layer from the registry: the client unpacks it"/);
    assert.equal(await cctr(["run", "--rm", "--snapshotter", "dist", ref, "fallback", "echo", "ok"]), "ok\n");
  });

  test("containerd's garbage collection removes its plugin's snapshots from the daemon, and only those", async () => {
    await dctr("default", ["images", "pull", "--plain-http", `${tb.plain}/tiny/busybox:oci`]);
    const mine = await committed("default", "overlayfs");
    const other = await committed("dist", "overlayfs");
    assert.ok(mine.length > 0 && other.length > 0);
    assert.ok((await committed("dist-native", "native")).length > 0);
    await cctr(["images", "rm", "--sync", `${tb.plain}/general/busybox:empty`]);
    assert.deepEqual(await committed("dist-native", "native"), [], "containerd collected what it no longer uses");
    assert.deepEqual(await committed("dist", "overlayfs"), other, "the other plugin's snapshots stay");
    assert.deepEqual(await committed("default", "overlayfs"), mine, "and dist's own");
  });
});

function tail(log: string): string {
  return log.split("\n").slice(-12).join("\n");
}
