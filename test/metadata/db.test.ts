import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { closeAllDatabases, enableWal, openDatabase } from "../../src/metadata/db.ts";

const root = mkdtempSync(join(tmpdir(), "dist-db-"));
after(() => {
  closeAllDatabases();
  rmSync(root, { recursive: true, force: true });
});

const busy = () => Object.assign(new Error("database is locked"), { code: "ERR_SQLITE_ERROR", errcode: 5 });

test("switching to WAL is retried while SQLite answers busy, and other errors go through", () => {
  let calls = 0;
  enableWal({
    exec(sql: string) {
      assert.equal(sql, "PRAGMA journal_mode = WAL");
      if (++calls < 3) throw busy();
    },
  });
  assert.equal(calls, 3);
  const other = Object.assign(new Error("disk I/O error"), { errcode: 10 });
  assert.throws(
    () =>
      enableWal({
        exec() {
          throw other;
        },
      }),
    /disk I\/O error/,
  );
});

test("four processes opening one fresh root at once all succeed (10 rounds)", async () => {
  const db = fileURLToPath(new URL("../../src/metadata/db.ts", import.meta.url));
  const child = `import { openDatabase } from ${JSON.stringify(db)}; openDatabase(process.argv[1]).exec("CREATE TABLE IF NOT EXISTS t (a)");`;
  for (let round = 0; round < 10; round++) {
    const dir = join(root, `r${round}`);
    const results = await Promise.all(
      Array.from(
        { length: 4 },
        () =>
          new Promise<{ code: number | null; err: string }>((resolve) => {
            const p = spawn(process.execPath, ["--input-type=module", "-e", child, dir], {
              stdio: ["ignore", "ignore", "pipe"],
            });
            let err = "";
            p.stderr.on("data", (d: Buffer) => {
              err += d;
            });
            p.on("exit", (code) => resolve({ code, err }));
          }),
      ),
    );
    for (const r of results) assert.equal(r.code, 0, r.err);
  }
});

test("the database, its WAL and its shared memory are 0600 and the root 0700, whatever the umask", () => {
  const dir = join(root, "private");
  const old = process.umask(0);
  try {
    const db = openDatabase(dir);
    db.exec("CREATE TABLE secrets (name TEXT); INSERT INTO secrets VALUES ('registry.example/private/app')");
  } finally {
    process.umask(old);
  }
  const modes = Object.fromEntries(readdirSync(dir).map((f) => [f, statSync(join(dir, f)).mode & 0o777]));
  // SQLite creates -wal and -shm with the database file's mode: what makes them private
  assert.deepEqual(modes, { "metadata.db": 0o600, "metadata.db-wal": 0o600, "metadata.db-shm": 0o600 });
  assert.equal(statSync(dir).mode & 0o777, 0o700);
});
