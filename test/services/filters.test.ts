import assert from "node:assert/strict";
import { test } from "node:test";
import { adaptor, knownOnly, matchFilters, parseFilter, parseFilters } from "../../src/services/filters.ts";

test("parses containerd filter syntax", () => {
  assert.deepEqual(parseFilter("name==foo"), [{ path: ["name"], op: "==", value: "foo" }]);
  assert.deepEqual(parseFilter('labels."containerd.io/gc.root"'), [{ path: ["labels", "containerd.io/gc.root"] }]);
  const f = parseFilter('labels."a.b"==x,name!=y');
  assert.equal(f.length, 2);
  assert.deepEqual(f[0], { path: ["labels", "a.b"], op: "==", value: "x" });
  const re = parseFilter("ref~=^layer-");
  assert.ok(re[0].regexp?.test("layer-sha256:1"));
  assert.deepEqual(parseFilter('name=="with space"')[0].value, "with space");
  assert.throws(() => parseFilter("name==a extra"), { code: "InvalidArgument" });
  assert.throws(() => parseFilter('labels."unterminated'), { code: "InvalidArgument" });
  assert.throws(() => parseFilter("ref~=("), { code: "InvalidArgument" });
});

test("filters: OR between strings, AND within one", () => {
  const get = adaptor({ name: "busybox", "target.digest": "sha256:1" }, { env: "prod", "a.b": "c" });
  assert.ok(matchFilters([], get));
  assert.ok(matchFilters(parseFilters(["name==busybox,labels.env==prod"]), get));
  assert.ok(!matchFilters(parseFilters(["name==busybox,labels.env==dev"]), get));
  assert.ok(matchFilters(parseFilters(["name==redis", "labels.env==prod"]), get));
  assert.ok(matchFilters(parseFilters(['labels."a.b"==c']), get));
  assert.ok(matchFilters(parseFilters(["labels.env"]), get));
  assert.ok(!matchFilters(parseFilters(["labels.missing"]), get));
  assert.ok(matchFilters(parseFilters(["name~=^busy"]), get));
  assert.ok(matchFilters(parseFilters(["target.digest==sha256:1"]), get));
});

test("unknown fields are dropped with a warning", () => {
  const warnings: string[] = [];
  const f = knownOnly(parseFilters(["name==x,bogus==1"]), ["name"], (m) => warnings.push(m));
  assert.equal(f[0].length, 1);
  assert.match(warnings[0], /unknown field "bogus"/);
});
