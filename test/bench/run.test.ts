/**
 * bench/run.ts's comparison of two dist versions in one run: each dist case is
 * repeated with $DIST_COMPARE, into a root of its own, and nothing else is.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { withComparison } from "../../bench/run.ts";

describe("withComparison", () => {
  it("repeats each dist case with $DIST_COMPARE into its own root, leaving peers and the baseline alone", () => {
    const cases = withComparison(
      [
        { name: "skopeo", command: "skopeo copy a b", baseline: true },
        {
          name: "dist fetch",
          before: 'rm -rf "$TMP/root"',
          command: '"$DIST" --root "$TMP/root" fetch "$BIG_REF"',
        },
        { name: "dist pull", command: '"$DIST" --root "$TMP/runs/dist-overlay" pull "$BIG_REF"' },
      ],
      "main",
    );
    assert.deepEqual(
      cases.map((c) => c.name),
      ["skopeo", "dist fetch", "dist pull", "dist fetch [main]", "dist pull [main]"],
    );
    assert.equal(cases[3].command, '"$DIST_COMPARE" --root "$TMP/root-compare" fetch "$BIG_REF"');
    assert.equal(cases[3].before, 'rm -rf "$TMP/root-compare"');
    assert.equal(cases[4].command, '"$DIST_COMPARE" --root "$TMP/runs/dist-overlay-compare" pull "$BIG_REF"');
    assert.equal(cases[4].before, undefined);
    assert.ok(!cases[3].baseline && !cases[4].baseline);
  });
});
