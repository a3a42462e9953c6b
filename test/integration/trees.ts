/**
 * Unpacked trees for the oracle tests: scans of every path with what an unpacker must
 * reproduce, their differences, images pulled by dist and looked at through a
 * read-only view, and the trees umoci makes of the test layout.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { lgetxattr, llistxattr } from "../../src/sys/index.ts";
import { fileType } from "../archive/helpers.ts";
import type { Testbed } from "./harness.ts";

export interface Entry {
  type: string;
  mode?: string;
  owner: string;
  size?: number;
  sha256?: string;
  link?: string;
  rdev?: string;
  xattrs?: string;
  mtime: string;
}

/** Every path under root with what an unpacker must reproduce. */
export function scan(root: string): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const visit = (rel: string) => {
    const p = rel ? join(root, rel) : root;
    const st = lstatSync(p, { bigint: true });
    const type = fileType(st);
    const e: Entry = { type, owner: `${st.uid}:${st.gid}`, mtime: String(st.mtimeNs) };
    if (type === "symlink") e.link = readlinkSync(p);
    else e.mode = (Number(st.mode) & 0o7777).toString(8);
    if (type === "file") {
      e.size = Number(st.size);
      e.sha256 = createHash("sha256").update(readFileSync(p)).digest("hex");
    }
    if (type === "char" || type === "block") e.rdev = String(st.rdev);
    const names = llistxattr(p).filter((n) => !n.startsWith("security.selinux") && !n.startsWith("trusted.overlay"));
    if (names.length > 0) {
      e.xattrs = names
        .sort()
        .map((n) => `${n}=${lgetxattr(p, n)?.toString("base64")}`)
        .join(",");
    }
    out.set(rel || ".", e);
    if (type === "dir") for (const n of readdirSync(p).sort()) visit(rel ? `${rel}/${n}` : n);
  };
  visit("");
  return out;
}

/**
 * Differences between two scans. `timeFree` lists paths whose mtime no tool can
 * reproduce: directories created implicitly (no entry in any layer) get the
 * time of extraction.
 */
export function compare(a: Map<string, Entry>, b: Map<string, Entry>, timeFree: string[] = []): string[] {
  const d: string[] = [];
  for (const [k, v] of a) {
    const w = b.get(k);
    if (!w) {
      d.push(`only in dist: ${k}`);
      continue;
    }
    for (const f of new Set([...Object.keys(v), ...Object.keys(w)]) as Set<keyof Entry>) {
      if (f === "mtime" && timeFree.includes(k)) continue;
      if (v[f] !== w[f]) d.push(`${k}: ${f} ${v[f]} (dist) != ${w[f]} (umoci)`);
    }
  }
  for (const k of b.keys()) if (!a.has(k)) d.push(`only in umoci: ${k}`);
  return d;
}

export interface Pulled {
  root: string;
  chainID: string;
}

export async function pullImage(tb: Testbed, ref: string, snapshotter: string, root = tb.newRoot()): Promise<Pulled> {
  const r = await tb.dist(
    ["pull", "--plain-http", "--print-chainid", "--snapshotter", snapshotter, `${tb.plain}/${ref}`],
    {
      root,
    },
  );
  assert.equal(r.code, 0, `dist pull ${ref} (${snapshotter}) failed: ${r.stderr}`);
  const m = /image chain ID: (sha256:[0-9a-f]{64})/.exec(r.stdout);
  assert.ok(m, `no chain ID in: ${r.stdout}`);
  return { root, chainID: m[1] };
}

/** A read-only view of the chain, mounted (overlay) or read in place (native bind); done() unmounts and removes it. */
export async function viewOf(
  tb: Testbed,
  p: Pulled,
  snapshotter: string,
): Promise<{ dir: string; done: () => Promise<void> }> {
  const key = `view-${Math.random().toString(36).slice(2)}`;
  const sn = ["snapshots", "--snapshotter", snapshotter];
  let r = await tb.dist([...sn, "view", key, p.chainID], { root: p.root });
  assert.equal(r.code, 0, r.stderr);
  r = await tb.dist([...sn, "mounts", "--output", "json", "/unused", key], { root: p.root });
  assert.equal(r.code, 0, r.stderr);
  const mounts = JSON.parse(r.stdout) as { type: string; source: string; options: string[] }[];
  const drop = async () => {
    const rm = await tb.dist([...sn, "rm", key], { root: p.root });
    assert.equal(rm.code, 0, rm.stderr);
  };
  if (mounts.length === 1 && mounts[0].type === "bind") {
    return { dir: mounts[0].source, done: drop };
  }
  const target = tb.tempDir("mnt");
  r = await tb.dist([...sn, "mount", target, key], { root: p.root });
  assert.equal(r.code, 0, r.stderr);
  return {
    dir: target,
    done: async () => {
      const u = await tb.dist([...sn, "umount", target], { root: p.root });
      assert.equal(u.code, 0, u.stderr);
      await drop();
    },
  };
}

const umociTrees = new Map<string, Promise<Map<string, Entry>>>();
/** The tree `umoci unpack` makes of a tag of the test layout (scanned once per process). */
export function umociScan(tb: Testbed, tag: string): Promise<Map<string, Entry>> {
  let p = umociTrees.get(tag);
  if (!p) {
    p = (async () => {
      const bundle = join(tb.tempDir("umoci"), "bundle");
      await tb.umociUnpack(`${tb.layout}:${tag}`, bundle);
      return scan(join(bundle, "rootfs"));
    })();
    umociTrees.set(tag, p);
  }
  return p;
}
