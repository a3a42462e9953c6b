/**
 * A root written before namespaces held content, ingests and snapshots (dist
 * up to the commit before this schema) opens and migrates losing nothing. The
 * old layout is built here from its known schema (main's metadata and
 * snapshot tables, millisecond times) and files, then opened as a user would.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, describe, it } from "node:test";
import { type Digest, digestOf } from "../../src/digest.ts";
import { closeAllDatabases } from "../../src/metadata/db.ts";
import { Metadata } from "../../src/metadata/metadata.ts";
import { epochNsOf } from "../../src/time.ts";

const tmp = mkdtempSync(join(tmpdir(), "dist-migrate-"));
after(() => {
  closeAllDatabases();
  rmSync(tmp, { recursive: true, force: true });
});

/** The tables as dist wrote them before (metadata/*.ts and snapshots/storage.ts of that time). */
const OLD_SCHEMA = `
CREATE TABLE content_labels (
  namespace TEXT NOT NULL, digest TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
  updated_at INTEGER NOT NULL, PRIMARY KEY (namespace, digest, key));
CREATE TABLE images (
  namespace TEXT NOT NULL, name TEXT NOT NULL, digest TEXT NOT NULL, media_type TEXT NOT NULL,
  size INTEGER NOT NULL, target TEXT NOT NULL, labels TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (namespace, name));
CREATE INDEX images_by_digest ON images (namespace, digest);
CREATE TABLE daemon_leases (
  namespace TEXT NOT NULL, id TEXT NOT NULL, labels TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL, PRIMARY KEY (namespace, id));
CREATE TABLE daemon_lease_resources (
  namespace TEXT NOT NULL, lease TEXT NOT NULL, type TEXT NOT NULL, id TEXT NOT NULL,
  PRIMARY KEY (namespace, lease, type, id),
  FOREIGN KEY (namespace, lease) REFERENCES daemon_leases (namespace, id) ON DELETE CASCADE);
CREATE TABLE daemon_namespaces (name TEXT PRIMARY KEY, labels TEXT NOT NULL DEFAULT '{}', created_at INTEGER NOT NULL);
CREATE TABLE snapshots (
  id INTEGER PRIMARY KEY AUTOINCREMENT, snapshotter TEXT NOT NULL, name TEXT NOT NULL, parent TEXT,
  kind TEXT NOT NULL, labels TEXT NOT NULL DEFAULT '{}', created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
  UNIQUE (snapshotter, name));
CREATE INDEX snapshots_by_parent ON snapshots (snapshotter, parent);
`;

const MS = 1_700_000_000_123;
const MANIFEST = "application/vnd.oci.image.manifest.v1+json";

interface OldRoot {
  root: string;
  config: Digest;
  layer: Digest;
  manifest: Digest;
}

/** An old-layout root: three blobs, an image in k8s.io, labels in two namespaces, a lease, an ingest, snapshots. */
function oldRoot(): OldRoot {
  const root = join(tmp, "old");
  const blob = (data: string): Digest => {
    const d = digestOf(data);
    const dir = join(root, "content", "blobs", "sha256");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, d.slice(7)), data, { mode: 0o444 });
    return d;
  };
  const config = blob('{"config":true}');
  const layer = blob("layer bytes");
  const manifest = blob('{"manifest":true}');

  const ref = "layer-sha256:half";
  const ingest = join(root, "content", "ingest", createHash("sha256").update(ref).digest("hex"));
  mkdirSync(ingest, { recursive: true });
  writeFileSync(join(ingest, "data"), "half");
  writeFileSync(join(ingest, "total"), "9");
  writeFileSync(join(ingest, "startedat"), new Date(MS).toISOString());
  writeFileSync(join(ingest, "updatedat"), new Date(MS + 1).toISOString());
  writeFileSync(join(ingest, "ref"), ref);

  // snapshot directories are named by the row id
  const dirs = join(root, "snapshots", "native", "snapshots");
  mkdirSync(join(dirs, "1"), { recursive: true });
  writeFileSync(join(dirs, "1", "from-layer"), "x");
  mkdirSync(join(dirs, "2"), { recursive: true });

  const db = new DatabaseSync(join(root, "metadata.db"));
  db.exec(OLD_SCHEMA);
  const ins = (sql: string, ...args: (string | number)[]) => db.prepare(sql).run(...args);
  ins(
    "INSERT INTO content_labels VALUES ('default', ?, 'containerd.io/gc.ref.content.l.0', ?, ?)",
    manifest,
    layer,
    MS,
  );
  ins("INSERT INTO content_labels VALUES ('k8s.io', ?, 'containerd.io/uncompressed', 'sha256:x', ?)", layer, MS + 5);
  const target = { mediaType: MANIFEST, digest: manifest, size: 17 };
  ins(
    "INSERT INTO images VALUES ('k8s.io', 'docker.io/library/app:1', ?, ?, 17, ?, '{\"a\":\"b\"}', ?, ?)",
    manifest,
    MANIFEST,
    JSON.stringify(target),
    MS,
    MS + 2,
  );
  ins("INSERT INTO daemon_namespaces VALUES ('moby', '{\"owner\":\"docker\"}', ?)", MS);
  ins("INSERT INTO daemon_leases VALUES ('k8s.io', 'pull-1', '{}', ?)", MS);
  ins("INSERT INTO daemon_lease_resources VALUES ('k8s.io', 'pull-1', 'content', ?)", layer);
  ins(
    "INSERT INTO snapshots (snapshotter, name, parent, kind, labels, created_at, updated_at) VALUES ('native', 'sha256:chain', NULL, 'committed', '{}', ?, ?)",
    MS,
    MS,
  );
  ins(
    "INSERT INTO snapshots (snapshotter, name, parent, kind, labels, created_at, updated_at) VALUES ('native', 'ctr-1', 'sha256:chain', 'active', '{\"dist.container\":\"ctr-1\"}', ?, ?)",
    MS,
    MS,
  );
  db.close();
  return { root, config, layer, manifest };
}

describe("a root written before namespaces held content and snapshots", () => {
  const old = oldRoot();
  let md: Metadata;

  it("opens, and every namespace it knew sees every blob, with its own labels and the file's time", async () => {
    md = new Metadata(old.root);
    assert.deepEqual(
      md.namespaces.list().map((n) => n.name),
      ["default", "k8s.io", "moby"],
    );
    assert.deepEqual(md.namespaces.get("moby").labels, { owner: "docker" });
    for (const ns of ["default", "k8s.io", "moby"]) {
      const seen: string[] = [];
      await md.content(ns).walk((i) => void seen.push(i.digest));
      assert.deepEqual(seen, [old.config, old.layer, old.manifest].sort(), ns);
    }
    assert.deepEqual((await md.content("default").info(old.manifest)).labels, {
      "containerd.io/gc.ref.content.l.0": old.layer,
    });
    const layer = await md.content("k8s.io").info(old.layer);
    assert.deepEqual(layer.labels, { "containerd.io/uncompressed": "sha256:x" });
    assert.equal(layer.size, 11);
    assert.ok(epochNsOf(layer.updatedAt) >= BigInt(MS + 5) * 1_000_000n);
    const chunks: Buffer[] = [];
    for await (const c of await md.content("default").openRead(old.layer)) chunks.push(c as Buffer);
    assert.equal(Buffer.concat(chunks).toString(), "layer bytes", "the bytes are where they were");
  });

  it("keeps images, leases and their resources, times now in nanoseconds", async () => {
    const img = await md.images("k8s.io").get("docker.io/library/app:1");
    assert.equal(img.target.digest, old.manifest);
    assert.deepEqual(img.labels, { a: "b" });
    assert.equal(epochNsOf(img.createdAt), BigInt(MS) * 1_000_000n);
    assert.equal(epochNsOf(img.updatedAt), BigInt(MS + 2) * 1_000_000n);
    const [lease] = md.leases("k8s.io").list();
    assert.equal(lease.id, "pull-1");
    assert.equal(epochNsOf(lease.createdAt), BigInt(MS) * 1_000_000n);
    assert.deepEqual(md.leases("k8s.io").listResources("pull-1"), [{ type: "content", id: old.layer }]);
  });

  it("keeps the ingest in default, resumable where it stopped", async () => {
    const s = md.content("default");
    const [st] = await s.listStatuses();
    assert.deepEqual([st.ref, st.offset, st.total], ["layer-sha256:half", 4, 9]);
    assert.equal(epochNsOf(st.startedAt), BigInt(MS) * 1_000_000n);
    assert.deepEqual(await md.content("k8s.io").listStatuses(), []);
    const w = await s.writer({ ref: "layer-sha256:half", total: 9 });
    assert.equal(w.status().offset, 4);
    await w.write(Buffer.from(" full"));
    await w.commit(9, digestOf("half full"));
    assert.equal((await s.info(digestOf("half full"))).size, 9);
  });

  it("keeps committed snapshots in every namespace and the active one in default, on the same trees", async () => {
    const names = async (ns: string) => {
      const out: string[] = [];
      await md.snapshotter(ns, "native").walk((i) => void out.push(`${i.name}:${i.kind}:${i.parent ?? ""}`));
      return out;
    };
    assert.deepEqual(await names("default"), ["ctr-1:active:sha256:chain", "sha256:chain:committed:"]);
    assert.deepEqual(await names("k8s.io"), ["sha256:chain:committed:"]);
    const def = md.snapshotter("default", "native");
    const info = await def.stat("ctr-1");
    assert.deepEqual(info.labels, { "dist.container": "ctr-1" });
    assert.equal(epochNsOf(info.createdAt), BigInt(MS) * 1_000_000n);
    const [m] = await def.mounts("ctr-1");
    assert.ok(m.source.endsWith(join("snapshots", "2")));
    // a new child of the migrated parent is a copy of its tree
    const k8s = md.snapshotter("k8s.io", "native");
    const [child] = await k8s.prepare("new", "sha256:chain");
    assert.equal(readFileSync(join(child.source, "from-layer"), "utf8"), "x");
    await k8s.remove("new");
    // removing the shared parent in one namespace keeps it for the others
    await k8s.remove("sha256:chain");
    assert.deepEqual(await names("k8s.io"), []);
    assert.deepEqual(await names("moby"), ["sha256:chain:committed:"]);
    assert.equal((await def.stat("sha256:chain")).kind, "committed");
  });

  it("opens again without migrating twice", async () => {
    closeAllDatabases();
    const again = new Metadata(old.root);
    const seen: string[] = [];
    await again.content("moby").walk((i) => void seen.push(i.digest));
    assert.equal(seen.length, 3);
    const db = new DatabaseSync(join(old.root, "metadata.db"));
    const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[])
      .map((t) => t.name)
      .sort();
    db.close();
    for (const gone of ["content_labels", "daemon_leases", "daemon_lease_resources", "daemon_namespaces"]) {
      assert.ok(!tables.includes(gone), gone);
    }
  });
});

describe("a root used only for content before (no metadata.db then)", () => {
  it("opens with its blobs and ingests in default", async () => {
    const root = join(tmp, "content-only");
    const dir = join(root, "content", "blobs", "sha256");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, digestOf("lonely").slice(7)), "lonely");
    const md = new Metadata(root);
    assert.equal((await md.content("default").info(digestOf("lonely"))).size, 6);
    assert.deepEqual(
      md.namespaces.list().map((n) => n.name),
      ["default"],
    );
    await assert.rejects(md.content("other").info(digestOf("lonely")), { code: "NotFound" });
  });

  it("a fresh root records no namespace until something is written", () => {
    const md = new Metadata(join(tmp, "fresh"));
    assert.deepEqual(md.namespaces.list(), []);
  });
});
