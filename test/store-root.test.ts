// The store's permissions: a root created private, an old store tightened on open.
import assert from "node:assert/strict";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { createPrivateFile, formatMode, prepareRoot } from "../src/store-root.ts";

const tmp = mkdtempSync(join(tmpdir(), "dist-store-root-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(tmp, `case${++n}`);
const mode = (p: string) => formatMode(lstatSync(p).mode);

/** Runs fn under a umask, restoring the old one. */
function withUmask<T>(mask: number, fn: () => T): T {
  const old = process.umask(mask);
  try {
    return fn();
  } finally {
    process.umask(old);
  }
}

/** A store laid out with the modes the previous dist left (0755 directories, a 0644 database). */
function oldStore(root: string): void {
  for (const d of ["content/blobs/sha256", "content/ingest/abc", "content/locks", "containers/c1/bundle", "runc"]) {
    mkdirSync(join(root, d), { recursive: true });
  }
  mkdirSync(join(root, "snapshots/overlay/snapshots/1/fs"), { recursive: true, mode: 0o755 });
  writeFileSync(join(root, "content/blobs/sha256/aa"), "blob");
  chmodSync(join(root, "content/blobs/sha256/aa"), 0o444);
  writeFileSync(join(root, "content/ingest/abc/data"), "partial");
  writeFileSync(join(root, "containers/c1/bundle/config.json"), "{}");
  for (const f of ["metadata.db", "metadata.db-wal", "metadata.db-shm", "daemon.lock"]) writeFileSync(join(root, f), f);
  for (const d of [
    "",
    "content",
    "content/blobs",
    "content/blobs/sha256",
    "content/ingest",
    "content/locks",
    "containers",
    "snapshots",
  ]) {
    chmodSync(join(root, d), 0o755);
  }
  chmodSync(join(root, "containers/c1"), 0o711);
  chmodSync(join(root, "snapshots/overlay/snapshots/1/fs"), 0o755);
  for (const f of ["metadata.db", "metadata.db-wal", "metadata.db-shm", "daemon.lock"]) chmodSync(join(root, f), 0o644);
}

describe("prepareRoot", () => {
  test("creates a missing root 0700 whatever the umask, its parents with the usual modes", () => {
    const parent = fresh();
    const root = join(parent, "share", "dist");
    withUmask(0, () => prepareRoot(root));
    assert.equal(mode(root), "0700");
    assert.equal(mode(join(parent, "share")), "0777", "a parent is not the store: the umask's mode (0 here)");
    const odd = join(fresh(), "dist");
    withUmask(0o277, () => prepareRoot(odd));
    assert.equal(mode(odd), "0700", "a umask that takes owner bits does not leave an unusable root");
  });

  test("tightens a store made with the old modes, in one line, and leaves what is inside as it was", () => {
    const root = fresh();
    oldStore(root);
    const notes: string[] = [];
    const changes = prepareRoot(root, { onNote: (m) => notes.push(m) });
    const expect: Record<string, string> = {
      "": "0700",
      content: "0700",
      "content/blobs": "0700",
      "content/blobs/sha256": "0700",
      "content/ingest": "0700",
      "content/locks": "0700",
      containers: "0700",
      snapshots: "0700",
      "metadata.db": "0600",
      "metadata.db-wal": "0600",
      "metadata.db-shm": "0600",
      "daemon.lock": "0600",
      runc: "0700",
    };
    for (const [rel, m] of Object.entries(expect)) assert.equal(mode(join(root, rel)), m, rel || "the root");
    assert.deepEqual(
      changes.map((c) => c.path).sort(),
      Object.keys(expect)
        .map((rel) => join(root, rel))
        .sort(),
      "each change is reported",
    );
    assert.equal(notes.length, 1);
    assert.match(notes[0], new RegExp(`^the store ${root} was open to other users: made it private to its owner \\(`));
    assert.ok(!notes[0].includes("\n"));
    // below the entries dist makes in the root, modes are content: a blob stays read-only, a
    // snapshot's tree keeps the image's modes, a container keeps its own
    assert.equal(mode(join(root, "content/blobs/sha256/aa")), "0444");
    assert.equal(mode(join(root, "snapshots/overlay/snapshots/1/fs")), "0755");
    assert.equal(mode(join(root, "containers/c1")), "0711");
    assert.equal(mode(join(root, "content/ingest/abc")), "0755");
    assert.equal(readFileSync(join(root, "content/blobs/sha256/aa"), "utf8"), "blob", "nothing is lost");
    assert.equal(readFileSync(join(root, "content/ingest/abc/data"), "utf8"), "partial");
    assert.equal(readFileSync(join(root, "metadata.db"), "utf8"), "metadata.db");

    const again: string[] = [];
    assert.deepEqual(prepareRoot(root, { onNote: (m) => again.push(m) }), [], "a private store is left as it is");
    assert.deepEqual(again, []);
  });

  test("keeps an owner's own bits and special bits, and touches nothing it does not know", () => {
    const root = fresh();
    mkdirSync(join(root, "content"), { recursive: true });
    chmodSync(root, 0o2775);
    chmodSync(join(root, "content"), 0o751);
    writeFileSync(join(root, "notes.txt"), "mine");
    chmodSync(join(root, "notes.txt"), 0o644);
    prepareRoot(root);
    assert.equal(mode(root), "2700");
    assert.equal(mode(join(root, "content")), "0700");
    assert.equal(mode(join(root, "notes.txt")), "0644", "not an entry dist makes");
  });

  test("does not follow a symbolic link among the entries", () => {
    const root = fresh();
    mkdirSync(root);
    const elsewhere = fresh();
    mkdirSync(elsewhere, { mode: 0o755 });
    chmodSync(elsewhere, 0o755);
    symlinkSync(elsewhere, join(root, "containers"));
    prepareRoot(root);
    assert.equal(mode(elsewhere), "0755");
    assert.equal(mode(root), "0700");
  });

  test("leaves a shared directory's mode alone, with a warning", () => {
    const root = fresh();
    mkdirSync(root);
    chmodSync(root, 0o1777);
    const warnings: string[] = [];
    prepareRoot(root, { onWarning: (m) => warnings.push(m) });
    assert.equal(mode(root), "1777");
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /is a shared directory \(mode 1777\): its mode is left alone/);
  });

  test("a root that is a file is one clear error", () => {
    const file = fresh();
    writeFileSync(file, "x");
    assert.throws(() => prepareRoot(file), {
      code: "FailedPrecondition",
      message: `the store ${file} is not a directory`,
    });
  });
});

describe("createPrivateFile", () => {
  test("a new file is 0600 whatever the umask; an existing one keeps its bytes", () => {
    const dir = fresh();
    mkdirSync(dir);
    const p = join(dir, "metadata.db");
    withUmask(0, () => createPrivateFile(p));
    assert.equal(mode(p), "0600");
    assert.equal(statSync(p).size, 0);
    writeFileSync(p, "data");
    createPrivateFile(p);
    assert.equal(readFileSync(p, "utf8"), "data");
    assert.ok(existsSync(p));
  });
});
