// Who may use the daemon's socket: the --group lookup and the path its members need.
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { hostGroupId, openSocketPath } from "../../src/services/socket-access.ts";

const tmp = mkdtempSync(join(tmpdir(), "dist-socket-access-"));
chmodSync(tmp, 0o755);
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("hostGroupId", () => {
  test("a gid as it is, a name as the host knows it", () => {
    assert.equal(hostGroupId("1234"), 1234);
    assert.equal(hostGroupId(0), 0);
    assert.equal(hostGroupId("root"), 0);
  });

  test("an unknown or malformed group is one clear error", () => {
    assert.throws(() => hostGroupId("no-such-group-here"), {
      code: "InvalidArgument",
      message: 'group "no-such-group-here" not found on this host',
    });
    assert.throws(() => hostGroupId("a:b"), /invalid group "a:b": expected a group name or a numeric gid/);
    assert.throws(() => hostGroupId("99999999999"), /invalid group id 99999999999/);
  });
});

describe("openSocketPath", () => {
  const log = () => {
    const notes: string[] = [];
    const warnings: string[] = [];
    return {
      notes,
      warnings,
      sink: { onNote: (m: string) => notes.push(m), onWarning: (m: string) => warnings.push(m) },
    };
  };

  test("the socket's own directory becomes searchable, not listable, for the group", () => {
    const dir = join(tmp, "run");
    mkdirSync(dir, { mode: 0o700 });
    chmodSync(dir, 0o700);
    const l = log();
    assert.equal(openSocketPath(join(dir, "dist.sock"), 4242, "builders", l.sink), true);
    assert.equal(statSync(dir).mode & 0o777, 0o711);
    assert.deepEqual(l.notes, [
      `made the socket directory ${dir} searchable (0700 → 0711) so that group builders reaches the socket`,
    ]);
    assert.deepEqual(l.warnings, []);
    const again = log();
    assert.equal(openSocketPath(join(dir, "dist.sock"), 4242, "builders", again.sink), true);
    assert.deepEqual([again.notes, again.warnings], [[], []], "nothing to change twice");
  });

  test("a directory above that stops the group is named, not changed", () => {
    const home = join(tmp, "home");
    mkdirSync(join(home, "run"), { recursive: true });
    chmodSync(home, 0o700);
    chmodSync(join(home, "run"), 0o755);
    const l = log();
    assert.equal(openSocketPath(join(home, "run", "dist.sock"), 4242, "builders", l.sink), false);
    assert.equal(statSync(home).mode & 0o777, 0o700);
    assert.equal(l.warnings.length, 1);
    assert.match(
      l.warnings[0],
      new RegExp(`^members of group builders cannot reach the socket .*: ${home} \\(mode 0700, uid \\d+, gid \\d+\\)`),
    );
  });

  test("a directory the group may search through its group bits is enough", () => {
    const dir = join(tmp, "grouped");
    mkdirSync(dir, { mode: 0o710 });
    chmodSync(dir, 0o710);
    const gid = statSync(dir).gid;
    const l = log();
    assert.equal(openSocketPath(join(dir, "dist.sock"), gid, String(gid), l.sink), true);
    assert.equal(statSync(dir).mode & 0o777, 0o710, "left as it is");
    assert.deepEqual([l.notes, l.warnings], [[], []]);
  });
});
