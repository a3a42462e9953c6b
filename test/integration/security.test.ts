/**
 * Private images stay private. As root: pull a private image (basic auth, the
 * password on stdin) into a store, run a container and make a bundle with a
 * secret in their environment, leave an ingest half-written, serve the store on
 * a daemon socket for one group. Then as `nobody` try to read the database, list
 * the blobs, read a blob by its path, open the ingest, read each config.json,
 * use the store and connect to the socket: each refused, while root reads the
 * same paths (so each refusal is the store's modes, not a missing file), and a
 * member of the group uses the daemon. A store laid out with the modes dist used
 * to leave is tightened on open with nothing lost; a user's own store under
 * $XDG_DATA_HOME is private too; containers still run as a non-root user.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { closeAllDatabases } from "../../src/metadata/db.ts";
import { namespacedContentStore } from "../../src/metadata/metadata.ts";
import { type DaemonProcess, startDaemonProcess } from "../services/fixture.ts";
import { alive } from "./fixtures/build.ts";
import { must, run, which } from "./fixtures/exec.ts";
import { DIST, type Testbed, TOP, testbed } from "./harness.ts";

const skip = process.getuid?.() !== 0 || !which("runc") ? "needs root (runuser, useradd) and runc" : false;

const mode = (p: string) => statSync(p).mode & 0o7777;

/** Runs a command as another user (runuser: that user's groups, no login). */
function as(user: string, cmd: string, args: string[], env: Record<string, string> = {}) {
  return run("runuser", ["-u", user, "--", cmd, ...args], { env: { ...process.env, ...env }, cwd: TOP });
}

/** Asserts that root reads `path` (it is there) and `user` may not: refused by its permissions. */
async function refused(user: string, cmd: "cat" | "ls", path: string): Promise<void> {
  const mine = await run(cmd, [path]);
  assert.equal(mine.code, 0, `root cannot ${cmd} ${path}: ${mine.stderr}`);
  const theirs = await as(user, cmd, [path]);
  assert.notEqual(theirs.code, 0, `${user} could ${cmd} ${path}`);
  assert.match(theirs.stderr.toString(), /Permission denied/, `${cmd} ${path} as ${user}`);
}

/** A group and a member of it, made for this test process and removed after (also when a run was killed). */
async function makeGroupAndMember(): Promise<{ group: string; member: string; remove(): Promise<void> }> {
  const passwd = readFileSync("/etc/passwd", "utf8");
  for (const m of passwd.matchAll(/^dist-sec-(\d+):/gm)) {
    if (!alive(Number(m[1]))) {
      await run("userdel", [`dist-sec-${m[1]}`]);
      await run("groupdel", [`dist-sec-${m[1]}`]);
    }
  }
  const name = `dist-sec-${process.pid}`;
  await must("groupadd", [name]);
  await must("useradd", ["--no-create-home", "--shell", "/usr/sbin/nologin", "--gid", "nogroup", "-G", name, name]);
  return {
    group: name,
    member: name,
    async remove() {
      await run("userdel", [name]);
      await run("groupdel", [name]);
    },
  };
}

describe("private images stay private", { skip }, () => {
  let tb: Testbed;
  let base: string;
  let image: string;
  let users: Awaited<ReturnType<typeof makeGroupAndMember>>;
  const daemons: DaemonProcess[] = [];
  const containers: { root: string; id: string }[] = [];
  const bundles: { root: string; dir: string }[] = [];

  before(async () => {
    tb = await testbed();
    image = `${tb.basic}/tiny/busybox:oci`;
    // every directory above the stores is open to all: only the stores' own modes keep others out
    base = mkdtempSync(join(tmpdir(), "dist-security-"));
    chmodSync(base, 0o755);
    users = await makeGroupAndMember();
  });

  after(async () => {
    for (const c of containers) await tb.dist(["rm", "-f", c.id], { root: c.root });
    for (const b of bundles) await tb.dist(["bundle", "--remove", b.dir], { root: b.root });
    for (const d of daemons) await d.stop();
    closeAllDatabases();
    await users?.remove();
    rmSync(base, { recursive: true, force: true });
    await tb?.stop();
  });

  /** Pulls the private image into `root` as root, the password on stdin. */
  async function pullPrivate(root: string): Promise<void> {
    const r = await tb.dist(["pull", "--plain-http", "-u", tb.user, "--password-stdin", image], {
      root,
      input: `${tb.password}\n`,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /warning/, "no password on the command line, no warning");
  }

  /** The image's layer digest (hex), from the store. */
  async function layerHex(root: string): Promise<string> {
    const r = await tb.dist(["ls", "-q"], { root });
    const sizes = r.stdout.trim().split("\n");
    const layer = sizes.find((d) => statSync(join(root, "content/blobs/sha256", d.slice(7))).size > 100_000);
    assert.ok(layer, `no layer among ${sizes.join(", ")}`);
    return layer.slice(7);
  }

  test("as nobody: the database, the blobs, an ingest, the bundles and the socket are refused; the group uses the daemon", async () => {
    const store = join(base, "store");
    await pullPrivate(store);

    const run1 = await tb.dist(["run", "-d", "--id", "sec1", "-e", "API_TOKEN=hunter2", image, "sleep", "300"], {
      root: store,
    });
    assert.equal(run1.code, 0, run1.stderr);
    containers.push({ root: store, id: "sec1" });
    const bundle = join(base, "bundles", "b1");
    mkdirSync(join(base, "bundles"), { mode: 0o755 });
    const b = await tb.dist(["bundle", "-e", "API_TOKEN=hunter2", image, bundle, "--", "true"], { root: store });
    assert.equal(b.code, 0, b.stderr);
    bundles.push({ root: store, dir: bundle });

    // an ingest in progress, left as a killed writer leaves it
    const content = namespacedContentStore(store, "default");
    const w = await content.writer({ ref: "private-upload" });
    await w.write(Buffer.from("the first bytes of a private layer"));
    await w.close();

    const d = await startDaemonProcess(store, join(base, "run", "dist.sock"), ["--group", users.group]);
    daemons.push(d);

    // the modes, as the issue asks for them
    assert.equal(mode(store), 0o700);
    for (const f of ["metadata.db", "metadata.db-wal", "metadata.db-shm"]) {
      assert.equal(mode(join(store, f)), 0o600, f);
    }
    for (const dir of ["content", "content/blobs", "content/blobs/sha256", "content/ingest", "content/locks"]) {
      assert.equal(mode(join(store, dir)), 0o700, dir);
    }
    assert.equal(mode(join(store, "snapshots")), 0o700);
    assert.equal(mode(join(store, "containers")), 0o700);
    assert.equal(mode(join(store, "containers/sec1/bundle/config.json")), 0o600);
    assert.equal(mode(join(bundle, "config.json")), 0o600);
    assert.equal(mode(bundle), 0o711, "a bundle's directory lets a runtime through to rootfs/, no further");
    const sock = statSync(d.sock);
    assert.equal(sock.mode & 0o777, 0o660);
    assert.equal(sock.gid, Number((await must("getent", ["group", users.group])).split(":")[2]));
    assert.equal(mode(join(base, "run")), 0o711);

    // nobody, a local user like any other
    await refused("nobody", "cat", join(store, "metadata.db"));
    await refused("nobody", "ls", join(store, "content/blobs/sha256"));
    await refused("nobody", "cat", join(store, "content/blobs/sha256", await layerHex(store)));
    await refused("nobody", "cat", content.ingestDataPath("private-upload"));
    await refused("nobody", "cat", join(store, "containers/sec1/bundle/config.json"));
    await refused("nobody", "cat", join(bundle, "config.json"));
    assert.match(readFileSync(join(bundle, "config.json"), "utf8"), /API_TOKEN=hunter2/, "the secret was there");
    const viaStore = await as("nobody", DIST, ["--root", store, "images", "ls"]);
    assert.equal(viaStore.code, 1);
    assert.equal(
      viaStore.stderr.toString(),
      `dist: cannot open the store ${store}: it is private to its owner (uid 0, mode 0700)\n`,
    );
    const viaSocket = await as("nobody", DIST, ["--address", d.sock, "images", "ls"]);
    assert.equal(viaSocket.code, 1);
    assert.match(viaSocket.stderr.toString(), /^dist: cannot connect to the daemon at .*: permission denied/);
    // what a runtime needs is reachable, and only that: a bundle's rootfs
    assert.equal((await as("nobody", "test", ["-x", join(bundle, "rootfs/bin/busybox")])).code, 0);
    await refused("nobody", "ls", bundle);

    // the group's member uses the daemon, and still not the files
    const member = await as(users.member, DIST, ["--address", d.sock, "images", "ls", "-q"]);
    assert.equal(member.code, 0, member.stderr.toString());
    assert.match(member.stdout.toString(), new RegExp(`${tb.basic}/tiny/busybox:oci`));
    const ctr = await as(users.member, "ctr", ["--address", d.sock, "content", "ls", "-q"]);
    assert.equal(ctr.code, 0, ctr.stderr.toString());
    await refused(users.member, "cat", join(store, "metadata.db"));
  });

  test("without --group the socket is root's alone: the member is refused too", async () => {
    const d = await startDaemonProcess(join(base, "store-nogroup"), join(base, "run-nogroup", "dist.sock"));
    daemons.push(d);
    assert.equal(mode(d.sock), 0o600);
    const r = await as(users.member, DIST, ["--address", d.sock, "images", "ls"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr.toString(), /permission denied/);
  });

  test("a store with the modes dist used to leave is tightened on open, in one line, with nothing lost", async () => {
    const store = join(base, "old-store");
    await pullPrivate(store);
    const started = await tb.dist(["run", "-d", "--id", "old1", image, "sleep", "300"], { root: store });
    assert.equal(started.code, 0, started.stderr);
    containers.push({ root: store, id: "old1" });
    const layer = await layerHex(store);
    // the modes the previous dist left (root 0755, as a default root under /var/lib was)
    for (const dir of ["", "content", "content/blobs", "content/blobs/sha256", "content/ingest", "content/locks"]) {
      chmodSync(join(store, dir), 0o755);
    }
    chmodSync(join(store, "metadata.db"), 0o644);
    for (const dir of ["containers", "containers/old1", "containers/old1/bundle"]) chmodSync(join(store, dir), 0o711);
    chmodSync(join(store, "containers/old1/bundle/config.json"), 0o644);
    // the leak this is about: anyone reads the database and the layers
    assert.equal((await as("nobody", "cat", [join(store, "metadata.db")])).code, 0);
    assert.equal((await as("nobody", "cat", [join(store, "content/blobs/sha256", layer)])).code, 0);

    const ls = await tb.dist(["images", "ls", "-q"], { root: store });
    assert.equal(ls.code, 0, ls.stderr);
    assert.equal(ls.stdout, `${image}\n`);
    const lines = ls.stderr.trimEnd().split("\n");
    assert.equal(lines.length, 1, ls.stderr);
    assert.match(
      lines[0],
      new RegExp(
        `^dist: the store ${store} was open to other users: made it private to its owner \\(${store} 0755 → 0700, `,
      ),
    );
    assert.equal(mode(store), 0o700);
    assert.equal(mode(join(store, "metadata.db")), 0o600);
    assert.equal(mode(join(store, "content/blobs/sha256")), 0o700);
    assert.equal(mode(join(store, "containers")), 0o700);
    await refused("nobody", "cat", join(store, "metadata.db"));
    await refused("nobody", "cat", join(store, "content/blobs/sha256", layer));
    await refused("nobody", "cat", join(store, "containers/old1/bundle/config.json"));

    // nothing lost: the image is complete, its blobs verify, the container is still there and removable
    const check = await tb.dist(["images", "check"], { root: store });
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /complete/);
    const blob = await tb.dist(["get", `sha256:${layer}`], { root: store });
    assert.equal(createHash("sha256").update(blob.stdoutBytes).digest("hex"), layer);
    const ps = await tb.dist(["ps"], { root: store });
    assert.match(ps.stdout, /old1 .*running/);
    const again = await tb.dist(["images", "ls", "-q"], { root: store });
    assert.equal(again.stderr, "", "a private store is not reported again");
    const rm = await tb.dist(["rm", "-f", "old1"], { root: store });
    assert.equal(rm.code, 0, rm.stderr);
    containers.pop();
  });

  test("a user's own store under $XDG_DATA_HOME is private to that user", async () => {
    const data = join(base, "nobody-data");
    mkdirSync(data, { mode: 0o755 });
    chmodSync(data, 0o755);
    chownSync(data, 65534, 65534);
    const r = await tb.dist(["pull", "--plain-http", `${tb.plain}/tiny/busybox:oci`], {
      user: "nobody",
      root: null,
      env: { XDG_DATA_HOME: data, HOME: data, DIST_ROOT: undefined },
    });
    assert.equal(r.code, 0, r.stderr);
    const store = join(data, "dist");
    assert.ok(existsSync(join(store, "metadata.db")));
    assert.equal(statSync(store).uid, 65534);
    assert.equal(mode(store), 0o700);
    assert.equal(mode(join(store, "metadata.db")), 0o600);
    const other = await as(users.member, "ls", [store]);
    assert.notEqual(other.code, 0);
    assert.match(other.stderr.toString(), /Permission denied/);
  });

  test("a container still runs as a non-root user with its rootfs inside the private store", async () => {
    const store = join(base, "store");
    for (const snapshotter of ["overlay", "native"]) {
      const r = await tb.dist(
        ["run", "--rm", "--snapshotter", snapshotter, "-u", "65534", image, "sh", "-c", "id -u; ls /bin/busybox"],
        {
          root: store,
        },
      );
      assert.equal(r.code, 0, `${snapshotter}: ${r.stderr}`);
      assert.equal(r.stdout, "65534\n/bin/busybox\n", snapshotter);
    }
  });
});
