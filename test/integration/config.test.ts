/**
 * The system's configuration, populated in a test root (DIST_SYSTEM_CONFIG_ROOT
 * stands for /): registry certificates in docker's and containerd's certs.d
 * used without --hosts-dir against the real TLS registry, and the config file
 * (/etc/dist/config.toml, a user's $XDG_CONFIG_HOME/dist/config.toml) under
 * flags and environment.
 */
import assert from "node:assert/strict";
import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type Testbed, testbed } from "./harness.ts";

describe("the system's registry configuration and the config file", () => {
  let tb: Testbed;
  let ref: string;
  before(async () => {
    tb = await testbed();
    ref = `${tb.tls}/tiny/busybox:oci`;
  });
  after(() => tb.stop());

  /** A fresh stand-in for / with `files` (paths relative to it). */
  function sysroot(files: Record<string, string>): string {
    const dir = tb.tempDir("sysroot");
    chmodSync(dir, 0o755); // as / is: other users read /etc
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(join(dir, path, ".."), { recursive: true });
      writeFileSync(join(dir, path), content);
    }
    return dir;
  }

  test("docker's certs.d CA is trusted without --hosts-dir, and --debug says which file was used", async () => {
    const sys = sysroot({});
    const certs = join(sys, "etc", "docker", "certs.d", tb.tls);
    mkdirSync(certs, { recursive: true });
    const env = { DIST_SYSTEM_CONFIG_ROOT: sys };
    const untrusted = await tb.dist(["fetch", ref], { root: tb.newRoot(), env });
    assert.equal(untrusted.code, 1);
    assert.match(untrusted.stderr, /certificate/i);
    copyFileSync(tb.caFile, join(certs, "ca.crt"));
    const r = await tb.dist(["--debug", "fetch", ref], { root: tb.newRoot(), env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `debug: ${tb.tls}: host configuration from ${certs} \\(1 CA and 0 client certificates, no hosts.toml\\)`,
      ),
    );
    // --hosts-dir replaces the system's directories
    const empty = tb.tempDir("hosts");
    const over = await tb.dist(["fetch", "--hosts-dir", empty, ref], { root: tb.newRoot(), env });
    assert.equal(over.code, 1);
    assert.match(over.stderr, /certificate/i);
  });

  test("containerd's certs.d comes before docker's, dist's before both", async () => {
    const ca = tb.caFile;
    const sys = sysroot({
      // a client certificate without its key: an error, if docker's directory were read
      [`etc/docker/certs.d/${tb.tls}/client.cert`]: "not used",
      [`etc/containerd/certs.d/${tb.tls}/hosts.toml`]: `server = "https://${tb.tls}"\nca = "${ca}"\n`,
    });
    const env = { DIST_SYSTEM_CONFIG_ROOT: sys };
    const r = await tb.dist(["--debug", "fetch", ref], { root: tb.newRoot(), env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /host configuration from .*\/etc\/containerd\/certs\.d\/.*\/hosts\.toml/);
    // dist's own directory wins: here it says skip_verify = false and no CA, so the fetch fails
    mkdirSync(join(sys, "etc", "dist", "certs.d", tb.tls), { recursive: true });
    writeFileSync(join(sys, "etc", "dist", "certs.d", tb.tls, "hosts.toml"), `server = "https://${tb.tls}"\n`);
    const own = await tb.dist(["--debug", "fetch", ref], { root: tb.newRoot(), env });
    assert.equal(own.code, 1);
    assert.match(own.stderr, /host configuration from .*\/etc\/dist\/certs\.d\/.*\/hosts\.toml/);
  });

  test("/etc/dist/config.toml sets the root, namespace, snapshotter and hosts directory; environment and flags override it", async () => {
    const root = tb.newRoot();
    const hosts = tb.tempDir("hosts");
    mkdirSync(join(hosts, tb.tls));
    copyFileSync(tb.caFile, join(hosts, tb.tls, "ca.crt"));
    const sys = sysroot({
      "etc/dist/config.toml": [
        `root = "${root}"`,
        'namespace = "from-config"',
        'snapshotter = "native"',
        `hosts_dir = "${hosts}"`,
        "max_concurrent_downloads = 2",
      ].join("\n"),
    });
    const env = { DIST_SYSTEM_CONFIG_ROOT: sys };
    const r = await tb.dist(["--debug", "pull", ref], { root: null, env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`debug: config from ${sys}/etc/dist/config.toml`));
    const ls = await tb.dist(["-n", "from-config", "images", "ls", "-q"], { root });
    assert.equal(ls.stdout.trim(), ref);
    const snaps = await tb.dist(
      ["-n", "from-config", "snapshots", "--snapshotter", "native", "ls", "--output", "json"],
      {
        root,
      },
    );
    assert.equal(snaps.code, 0, snaps.stderr);
    assert.equal((JSON.parse(snaps.stdout) as unknown[]).length, 1, "unpacked with the native snapshotter");
    // the environment over the file, a flag over both
    const other = tb.newRoot();
    const byEnv = await tb.dist(["fetch", ref], {
      root: null,
      env: { ...env, DIST_ROOT: other, DIST_NAMESPACE: "env" },
    });
    assert.equal(byEnv.code, 0, byEnv.stderr);
    assert.equal((await tb.dist(["-n", "env", "images", "ls", "-q"], { root: other })).stdout.trim(), ref);
    const byFlag = await tb.dist(["-n", "flag", "fetch", ref], { root: null, env });
    assert.equal(byFlag.code, 0, byFlag.stderr);
    assert.equal((await tb.dist(["-n", "flag", "images", "ls", "-q"], { root })).stdout.trim(), ref);
  });

  test("an unknown key or a bad value stops the command, naming the file and line", async () => {
    const sys = sysroot({ "etc/dist/config.toml": 'root = "/srv/dist"\nmax_downloads = 4\n' });
    const r = await tb.dist(["images", "ls"], { root: null, env: { DIST_SYSTEM_CONFIG_ROOT: sys } });
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      `dist: ${sys}/etc/dist/config.toml:2: unknown key "max_downloads" (known: root, namespace, snapshotter, hosts_dir, max_concurrent_downloads, discard_layers)\n`,
    );
    const bad = sysroot({ "etc/dist/config.toml": 'snapshotter = "btrfs"\n' });
    const r2 = await tb.dist(["pull", "--plain-http", `${tb.plain}/tiny/busybox:oci`], {
      env: { DIST_SYSTEM_CONFIG_ROOT: bad },
    });
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /config\.toml:1: snapshotter must be "overlay" or "native", not "btrfs"/);
  });

  test("a user's own config file, as that user", async () => {
    const root = await tb.rootFor("nobody");
    const home = tb.tempDir("xdg");
    mkdirSync(join(home, "dist"));
    writeFileSync(join(home, "dist", "config.toml"), `root = "${root}"\nnamespace = "mine"\n`);
    chmodSync(home, 0o755);
    const env = { DIST_SYSTEM_CONFIG_ROOT: sysroot({}), XDG_CONFIG_HOME: home };
    const r = await tb.dist(["--debug", "fetch", "--plain-http", `${tb.plain}/tiny/busybox:oci`], {
      user: "nobody",
      root: null,
      env,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`config from ${home}/dist/config.toml`));
    const ls = await tb.dist(["-n", "mine", "images", "ls", "-q"], { root });
    assert.equal(ls.stdout.trim(), `${tb.plain}/tiny/busybox:oci`);
  });
});
