// The CLI's download default must be the library's: the CLI keeps its own copy so that
// `dist --help` does not load the transfer stack.
import assert from "node:assert/strict";
import { it } from "node:test";
import { DEFAULT_MAX_CONCURRENT_DOWNLOADS as cli, downloadLimit } from "../../src/cli/platform-flags.ts";
import { DEFAULT_MAX_CONCURRENT_DOWNLOADS as lib } from "../../src/fetch.ts";

it("--max-concurrent-downloads defaults to the library's limit", () => {
  assert.equal(cli, lib);
  assert.equal(downloadLimit({}), lib);
  assert.equal(downloadLimit({ maxConcurrentDownloads: "7" }), 7);
  assert.throws(() => downloadLimit({ maxConcurrentDownloads: "0" }), /1 to 1024/);
});
