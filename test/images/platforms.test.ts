import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  allPlatforms,
  formatPlatform,
  hostPlatform,
  normalize,
  only,
  ordered,
  parsePlatform,
} from "../../src/images/platforms.ts";

describe("parsePlatform", () => {
  const host = hostPlatform();
  const cases: Array<[string, string]> = [
    ["linux/amd64", "linux/amd64"],
    ["linux/x86_64", "linux/amd64"],
    ["linux/x86-64", "linux/amd64"],
    ["linux/amd64/v1", "linux/amd64"],
    ["linux/amd64/v3", "linux/amd64/v3"],
    ["linux/aarch64", "linux/arm64"],
    ["linux/arm64/v8", "linux/arm64"],
    ["linux/arm64/8", "linux/arm64"],
    ["linux/arm", "linux/arm/v7"],
    ["linux/arm/7", "linux/arm/v7"],
    ["linux/arm/v6", "linux/arm/v6"],
    ["linux/armhf", "linux/arm/v7"],
    ["linux/armel", "linux/arm/v6"],
    ["linux/i386", "linux/386"],
    ["Linux/AMD64", "linux/amd64"],
    ["macos/arm64", "darwin/arm64"],
    ["windows/amd64", "windows/amd64"],
    ["linux/s390x", "linux/s390x"],
    ["arm64", `${host.os}/arm64`],
    ["linux", formatPlatform(host)],
  ];
  for (const [input, want] of cases) {
    it(`${input} → ${want}`, () => assert.equal(formatPlatform(parsePlatform(input)), want));
  }
  for (const bad of [
    "",
    "linux/",
    "/amd64",
    "linux/amd64/v8/x",
    "plan10/amd64",
    "linux/pdp11",
    "linux/am d64",
    "nonsense",
  ]) {
    it(`rejects ${JSON.stringify(bad)}`, () => assert.throws(() => parsePlatform(bad), /invalid platform/));
  }
});

describe("matchers", () => {
  it("only(arm64) accepts arm64 with or without v8 and prefers it to arm/v7", () => {
    const m = only({ os: "linux", architecture: "arm64" });
    assert.ok(m.match({ os: "linux", architecture: "arm64" }));
    assert.ok(m.match({ os: "linux", architecture: "arm64", variant: "v8" }));
    assert.ok(m.match({ os: "linux", architecture: "arm", variant: "v7" }));
    assert.ok(!m.match({ os: "linux", architecture: "amd64" }));
    assert.ok(!m.match({ os: "windows", architecture: "arm64" }));
    assert.ok(m.less({ os: "linux", architecture: "arm64" }, { os: "linux", architecture: "arm", variant: "v7" }));
    assert.ok(!m.less({ os: "linux", architecture: "arm", variant: "v7" }, { os: "linux", architecture: "arm64" }));
  });

  it("only(amd64) accepts 386 last and never arm", () => {
    const m = only({ os: "linux", architecture: "amd64" });
    assert.ok(m.match({ os: "linux", architecture: "386" }));
    assert.ok(m.less({ os: "linux", architecture: "amd64" }, { os: "linux", architecture: "386" }));
    assert.ok(!m.match({ os: "linux", architecture: "arm64" }));
    assert.ok(!m.match({ os: "unknown", architecture: "unknown" }));
  });

  it("only(arm/v6) refuses v7", () => {
    const m = only({ os: "linux", architecture: "arm", variant: "v6" });
    assert.ok(m.match({ os: "linux", architecture: "arm", variant: "v5" }));
    assert.ok(!m.match({ os: "linux", architecture: "arm", variant: "v7" }));
    assert.ok(!m.match({ os: "linux", architecture: "arm" }));
  });

  it("ordered() ranks by position and allPlatforms accepts anything", () => {
    const m = ordered({ os: "linux", architecture: "arm64" }, { os: "linux", architecture: "amd64" });
    assert.ok(m.less({ os: "linux", architecture: "aarch64" }, { os: "linux", architecture: "x86_64" }));
    assert.ok(allPlatforms().match({ os: "unknown", architecture: "unknown" }));
    assert.equal(allPlatforms().all, true);
  });

  it("the host platform is normalised and matches itself", () => {
    const h = hostPlatform();
    assert.deepEqual(normalize(h), h);
    assert.ok(only(h).match(h));
  });
});
