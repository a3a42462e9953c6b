// Distribution source labels: containerd's key, value and mount-candidate rules.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { appendDistributionSource, distributionSourceKey, mountCandidate } from "../../src/remotes/source-labels.ts";

describe("distribution source labels", () => {
  it("keys by host name without the port", () => {
    assert.equal(distributionSourceKey("docker.io"), "containerd.io/distribution.source.docker.io");
    assert.equal(distributionSourceKey("127.0.0.1:5000"), "containerd.io/distribution.source.127.0.0.1");
    assert.equal(distributionSourceKey("[::1]:5000"), "containerd.io/distribution.source.::1");
  });

  it("keeps repositories sorted and once", () => {
    assert.equal(appendDistributionSource(undefined, "b/x"), "b/x");
    assert.equal(appendDistributionSource("b/x", "a/y"), "a/y,b/x");
    assert.equal(appendDistributionSource("a/y,b/x", "b/x"), "a/y,b/x");
    assert.equal(appendDistributionSource("", "a"), "a");
  });

  it("mounts from the repository sharing the most leading components, never the target", () => {
    const k = "containerd.io/distribution.source.reg.io";
    const labels = { [k]: "library/busybox,team/app,team/tools/app" };
    assert.equal(mountCandidate(labels, "reg.io:5000", "team/tools/new"), "team/tools/app");
    assert.equal(mountCandidate(labels, "reg.io", "team/other"), "team/tools/app");
    assert.equal(mountCandidate(labels, "reg.io", "other/x"), "team/tools/app");
    assert.equal(mountCandidate({ [k]: "team/app" }, "reg.io", "team/app"), undefined);
    assert.equal(mountCandidate(labels, "other.io", "team/app"), undefined);
  });
});
