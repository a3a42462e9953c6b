// The config file: its keys, its errors (file and line), and which files are read.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { configFiles, parseConfig, readConfig } from "../../src/cli/config.ts";

const top = mkdtempSync(join(tmpdir(), "dist-config-"));
after(() => rmSync(top, { recursive: true, force: true }));

describe("config file", () => {
  it("reads every key", () => {
    const c = parseConfig(
      [
        "# defaults for this machine",
        'root = "/srv/dist"',
        'namespace = "ci"',
        'snapshotter = "native"',
        'hosts_dir = ["/etc/dist/certs.d", "/etc/docker/certs.d"]',
        "max_concurrent_downloads = 6",
      ].join("\n"),
      "/etc/dist/config.toml",
    );
    assert.deepEqual(c, {
      root: "/srv/dist",
      namespace: "ci",
      snapshotter: "native",
      hostsDir: ["/etc/dist/certs.d", "/etc/docker/certs.d"],
      maxConcurrentDownloads: 6,
    });
    assert.deepEqual(parseConfig('hosts_dir = "/x"', "f").hostsDir, ["/x"]);
  });

  it("names the file and the line of an unknown key or a bad value", () => {
    const f = "/etc/dist/config.toml";
    assert.throws(
      () => parseConfig('root = "/srv/dist"\n\nsnapshoter = "native"\n', f),
      /^InvalidArgumentError: \/etc\/dist\/config\.toml:3: unknown key "snapshoter" \(known: root, namespace, snapshotter, hosts_dir, max_concurrent_downloads, discard_layers\)$/,
    );
    assert.throws(
      () => parseConfig('\nsnapshotter = "zfs"', f),
      /config\.toml:2: snapshotter must be "overlay" or "native", not "zfs"/,
    );
    assert.throws(
      () => parseConfig("max_concurrent_downloads = 0", f),
      /config\.toml:1: max_concurrent_downloads must be a number from 1 to 1024, not 0/,
    );
    assert.throws(
      () => parseConfig('max_concurrent_downloads = "6"', f),
      /:1: max_concurrent_downloads must be a number/,
    );
    assert.throws(
      () => parseConfig('root = "var/lib/dist"', f),
      /:1: root must be an absolute path, not "var\/lib\/dist"/,
    );
    assert.throws(() => parseConfig('namespace = "a b"', f), /:1: namespace "a b": must be letters and digits/);
    assert.throws(() => parseConfig("hosts_dir = []", f), /:1: hosts_dir must be a directory path or a list of them/);
    assert.throws(() => parseConfig("# x\n[registry]\nmirror = 1", f), /config\.toml:2: unknown key "registry"/);
    assert.throws(
      () => parseConfig('root = "/a"\nnamespace = \n', f),
      /^InvalidArgumentError: \/etc\/dist\/config\.toml:2: Invalid TOML document/,
    );
  });

  it("reads the system's file, then the user's (not root's), the user's keys winning", () => {
    assert.deepEqual(configFiles({ root: "/r", uid: 0 }), ["/r/etc/dist/config.toml"]);
    assert.deepEqual(configFiles({ root: "/", uid: 1000, configHome: "/home/u/.config" }), [
      "/etc/dist/config.toml",
      "/home/u/.config/dist/config.toml",
    ]);
    const sys = join(top, "etc", "dist");
    mkdirSync(sys, { recursive: true });
    writeFileSync(join(sys, "config.toml"), 'root = "/srv/dist"\nnamespace = "ci"\n');
    const home = join(top, "home");
    mkdirSync(join(home, "dist"), { recursive: true });
    writeFileSync(join(home, "dist", "config.toml"), 'namespace = "mine"\n');
    const files = configFiles({ root: top, uid: 1000, configHome: home });
    assert.deepEqual(readConfig(files), { files, root: "/srv/dist", namespace: "mine" });
    assert.deepEqual(readConfig([join(top, "missing.toml")]), { files: [] });
  });
});
