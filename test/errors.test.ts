import assert from "node:assert/strict";
import { test } from "node:test";
import {
  DataLossError,
  DistError,
  errorFromData,
  errorToData,
  FailedPreconditionError,
  NotFoundError,
  wrapError,
} from "../src/errors.ts";

test("wrapError adds context, keeps the original as its cause and its kind, and leaves it unedited", () => {
  const inner = new NotFoundError("blob sha256:abc not found");
  const e = wrapError(inner, "unpacking layer sha256:abc");
  assert.ok(e instanceof NotFoundError);
  assert.equal((e as DistError).code, "NotFound");
  assert.equal(e.message, "unpacking layer sha256:abc: blob sha256:abc not found");
  assert.equal(e.cause, inner);
  assert.equal(inner.message, "blob sha256:abc not found");
});

test("wrapError keeps a system error's code, and a kind given reclassifies", () => {
  const enospc = Object.assign(new Error("no space left on device, write"), { code: "ENOSPC" });
  const e = wrapError(enospc, 'layer entry "a" (offset 0)');
  assert.equal((e as { code?: string }).code, "ENOSPC");
  assert.ok(!(e instanceof DistError));
  assert.equal(e.message, 'layer entry "a" (offset 0): no space left on device, write');
  const f = wrapError(enospc, "copy a to b", "FailedPrecondition");
  assert.ok(f instanceof FailedPreconditionError);
  assert.equal(f.cause, enospc);
  assert.equal(wrapError("a string", "context").message, "context: a string");
});

test("errors cross a boundary as data by kind, or with their system code", () => {
  const back = errorFromData(structuredClone(errorToData(new DataLossError("layer X: corrupt gzip data"))));
  assert.ok(back instanceof DataLossError);
  assert.equal(back.message, "layer X: corrupt gzip data");
  const sys = errorFromData(structuredClone(errorToData(Object.assign(new Error("EIO: read"), { code: "EIO" }))));
  assert.ok(!(sys instanceof DistError));
  assert.equal((sys as { code?: string }).code, "EIO");
  assert.deepEqual(errorToData(new TypeError("x")), { message: "x" });
});
