// --max-concurrent-downloads: the library's default when absent, a bounded count otherwise.
import assert from "node:assert/strict";
import { it } from "node:test";
import { downloadLimit } from "../../src/cli/platform-flags.ts";
import { DEFAULT_MAX_CONCURRENT_DOWNLOADS as lib } from "../../src/remotes/handlers.ts";

it("--max-concurrent-downloads defaults to the library's limit", () => {
  assert.equal(downloadLimit({}), lib);
  assert.equal(downloadLimit({ maxConcurrentDownloads: "7" }), 7);
  assert.throws(() => downloadLimit({ maxConcurrentDownloads: "0" }), /1 to 1024/);
});
