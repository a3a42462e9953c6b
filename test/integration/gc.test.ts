/**
 * Garbage collection through the CLI against the real registry: `dist df`,
 * `dist gc`, `dist rmi --prune` leaving an empty store, leases, and pulls
 * killed with SIGKILL at several moments, after which one `dist gc` leaves no
 * stale snapshot or ingest and a new pull completes.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { DIST, type Testbed, testbed } from "./harness.ts";

let tb: Testbed;
before(async () => {
  tb = await testbed();
});
after(async () => {
  await tb?.stop();
});

const REF = "tiny/busybox:oci";

async function ok(args: string[], root: string): Promise<string> {
  const r = await tb.dist(args, { root });
  assert.equal(r.code, 0, `dist ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

const json = async <T>(args: string[], root: string): Promise<T> =>
  JSON.parse(await ok([...args, "--output", "json"], root));

interface Row {
  count: number;
  inUse: number;
  bytes: number;
  reclaimable: number;
}
type Df = Record<"images" | "content" | "snapshots" | "containers", Row>;
interface Collected {
  dryRun: boolean;
  totals: Record<"content" | "snapshot" | "ingest" | "lease", { count: number; bytes: number }>;
  problems: string[];
}

const removedCount = (r: Collected) => Object.values(r.totals).reduce((a, t) => a + t.count, 0);

describe("dist gc, df, rmi --prune and leases", () => {
  test("a pulled image is in use; rmi --prune of the only image leaves an empty store", async () => {
    const root = tb.newRoot();
    await ok(["pull", "--plain-http", "--snapshotter", "native", `${tb.plain}/${REF}`], root);
    const df = await json<Df>(["df"], root);
    assert.equal(df.images.count, 1);
    assert.equal(df.content.count, 3, "manifest, config, layer");
    assert.equal(df.content.reclaimable, 0);
    assert.ok(df.snapshots.count >= 1 && df.snapshots.bytes > 0);
    assert.equal(df.snapshots.reclaimable, 0);
    assert.ok(df.images.reclaimable > 0, "deleting the image would free its blobs and snapshots");
    const dry = await json<Collected>(["gc", "--dry-run"], root);
    assert.equal(removedCount(dry), 0, "nothing of a pulled image is garbage");
    assert.deepEqual(dry.problems, []);
    const table = await ok(["df"], root);
    assert.match(table, /^TYPE\s+TOTAL\s+IN USE\s+SIZE\s+RECLAIMABLE/);

    const rmi = await json<{ deleted: string[]; collected: Collected }>(["rmi", "--prune", `${tb.plain}/${REF}`], root);
    assert.deepEqual(rmi.deleted, [`${tb.plain}/${REF}`]);
    assert.equal(rmi.collected.totals.content.count, 3);
    assert.ok(rmi.collected.totals.snapshot.count >= 1);
    const empty = await json<Df>(["df"], root);
    for (const kind of ["images", "content", "snapshots", "containers"] as const) {
      assert.deepEqual(empty[kind], { count: 0, inUse: 0, bytes: 0, reclaimable: 0 }, kind);
    }
  });

  test("leases: create with an expiry, list, rm; what a live lease holds stays, an expired one's goes", async () => {
    const root = tb.newRoot();
    assert.equal((await ok(["leases", "create", "--id", "keep"], root)).trim(), "keep");
    await ok(["leases", "create", "--id", "gone", "--expires", "1ms", "--label", "team=a"], root);
    const ls = await json<{ id: string; labels: Record<string, string> }[]>(["leases", "ls"], root);
    assert.deepEqual(ls.map((l) => l.id).sort(), ["gone", "keep"]);
    const gone = ls.find((l) => l.id === "gone");
    assert.equal(gone?.labels.team, "a");
    assert.match(gone?.labels["containerd.io/gc.expire"] ?? "", /^\d{4}-/);
    const gc = await json<Collected>(["gc"], root);
    assert.equal(gc.totals.lease.count, 1, "the expired lease goes");
    assert.equal((await ok(["leases", "ls", "-q"], root)).trim(), "keep");
    const bad = await tb.dist(["leases", "create", "--id", "keep"], { root });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /keep/);
    assert.equal((await ok(["leases", "rm", "keep"], root)).trim(), "keep");
    assert.equal((await ok(["leases", "ls", "-q"], root)).trim(), "");
    const missing = await tb.dist(["leases", "rm", "nope"], { root });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /nope/);
  });

  test("pulls killed with SIGKILL at several moments: one gc leaves no stale snapshot or ingest, a new pull completes", {
    timeout: 120_000,
  }, async () => {
    const root = tb.newRoot();
    // slowed down so that each kill lands in the middle of the pull
    const proxy = await tb.proxy(tb.plain, "slow", { delayMs: 150 });
    const ref = `${proxy}/${REF}`;
    for (const afterMs of [700, 1200, 1700, 2200]) {
      const child = spawn(DIST, ["--root", root, "pull", "--plain-http", "--snapshotter", "native", ref], {
        stdio: "ignore",
      });
      const exited = new Promise((resolve) => child.once("exit", resolve));
      await sleep(afterMs);
      child.kill("SIGKILL");
      await exited;
    }
    assert.equal((await ok(["images", "ls", "-q"], root)).trim(), "", "no pull got to its end");
    const dry = await json<Collected>(["gc", "--dry-run"], root);
    assert.ok(removedCount(dry) > 0, "the killed pulls left something for the collection");
    await json<Collected>(["gc"], root);
    assert.deepEqual(await json<unknown[]>(["snapshots", "--snapshotter", "native", "ls"], root), []);
    assert.deepEqual(await json<unknown[]>(["content", "active"], root), []);
    assert.deepEqual(await json<unknown[]>(["content", "ls"], root), []);
    assert.equal(removedCount(await json<Collected>(["gc", "--dry-run"], root)), 0, "one collection was enough");

    await ok(["pull", "--plain-http", "--snapshotter", "native", `${tb.plain}/${REF}`], root);
    assert.equal(removedCount(await json<Collected>(["gc"], root)), 0, "nothing of the new pull is garbage");
    const snaps = await json<{ kind: string }[]>(["snapshots", "--snapshotter", "native", "ls"], root);
    assert.ok(snaps.length > 0 && snaps.every((s) => s.kind === "committed"));
    await ok(["images", "check", `${tb.plain}/${REF}`], root);
  });

  test("pull --discard-layers: the layers go once unpacked; check and export name them; push fetches them again", async () => {
    const root = tb.newRoot();
    const ref = `${tb.plain}/${REF}`;
    await ok(["pull", "--plain-http", "--snapshotter", "native", "--discard-layers", ref], root);
    const layer = tb.images[REF].layers?.[0]?.digest;
    assert.ok(layer);
    const blobs = (await ok(["content", "ls", "-q"], root)).trim().split("\n");
    assert.equal(blobs.length, 2, "manifest and config only");
    assert.ok(!blobs.includes(layer));
    assert.equal(removedCount(await json<Collected>(["gc", "--dry-run"], root)), 0, "the rest is the image's");
    const check = await tb.dist(["images", "check", ref], { root });
    assert.equal(check.code, 1);
    assert.match(check.stdout, /incomplete \(2\/3\)/);
    assert.match(check.stdout, new RegExp(`missing layer-${layer}`));
    // export fetches it again from the image's registry: over TLS the plain registry fails, naming it
    const tar = join(tb.tempDir("export"), "x.tar");
    const exp = await tb.dist(["export", tar, ref], { root });
    assert.equal(exp.code, 1);
    assert.match(
      exp.stderr,
      new RegExp(`^dist: [^\\n]*layers not in the content store \\(${layer}\\), fetching them again from [^\\n]*\\n$`),
    );
    assert.ok(!(await ok(["content", "ls", "-q"], root)).includes(layer));
    const push = await tb.dist(["push", "--plain-http", `${tb.plain}/gc/discarded:1`, ref], { root });
    assert.equal(push.code, 0, push.stderr);
    assert.match(push.stdout + push.stderr, /fetched 1 discarded layers again/);
    assert.ok((await ok(["content", "ls", "-q"], root)).includes(layer), "fetched again");
    await ok(["images", "check", ref], root);
    assert.equal(removedCount(await json<Collected>(["gc"], root)), 0, "its manifest references its layers again");
  });

  test("export of an image whose layers were discarded fetches them again, then writes it whole", async () => {
    const root = tb.newRoot();
    const ref = `${tb.plain}/${REF}`;
    await ok(["pull", "--plain-http", "--snapshotter", "native", "--discard-layers", ref], root);
    const layer = tb.images[REF].layers?.[0]?.digest;
    assert.ok(layer);
    const dir = `${tb.tempDir("export")}/`;
    const exp = await tb.dist(["export", "--plain-http", dir, ref], { root });
    assert.equal(exp.code, 0, exp.stderr);
    assert.match(exp.stdout + exp.stderr, /fetched 1 discarded layers again/);
    assert.ok(existsSync(join(dir, "blobs", "sha256", layer.slice("sha256:".length))), "the layer is in the layout");
    await ok(["images", "check", ref], root);
  });

  test("collections during a pull never take what it holds; afterwards records and files agree", {
    timeout: 120_000,
  }, async () => {
    const root = tb.newRoot();
    const proxy = await tb.proxy(tb.plain, "slow", { delayMs: 30 });
    const ref = `${proxy}/${REF}`;
    const pulling = tb.dist(["pull", "--plain-http", "--snapshotter", "native", ref], { root });
    let settled = false;
    void pulling.finally(() => {
      settled = true;
    });
    let collections = 0;
    while (!settled) {
      const r = await json<Collected>(["gc"], root);
      assert.deepEqual(r.problems, []);
      collections++;
    }
    const pulled = await pulling;
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.ok(collections >= 2, `${collections} collections ran during the pull`);
    await ok(["images", "check", ref], root);
    const after = await json<Collected>(["gc"], root);
    assert.equal(removedCount(after), 0);
    assert.deepEqual(after.problems, [], "no record without its file");
    const snaps = await json<{ kind: string }[]>(["snapshots", "--snapshotter", "native", "ls"], root);
    assert.ok(snaps.length > 0 && snaps.every((s) => s.kind === "committed"));
  });
});
