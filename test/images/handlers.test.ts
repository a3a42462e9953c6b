import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Descriptor } from "../../src/descriptor.ts";
import { digestOf } from "../../src/digest.ts";
import { dispatch, type Handler, handlers, Limiter, SKIP, walk } from "../../src/images/handlers.ts";

/** A tree of fake descriptors named by their mediaType; `tree[name]` lists the children's names. */
function node(name: string): Descriptor {
  return { mediaType: name, digest: digestOf(name), size: 0 };
}

function treeHandler(
  tree: Record<string, string[]>,
  visit?: (name: string, signal: AbortSignal) => Promise<void>,
): Handler {
  return async (desc, signal) => {
    await visit?.(desc.mediaType, signal);
    return (tree[desc.mediaType] ?? []).map(node);
  };
}

const tick = () => new Promise<void>((r) => setTimeout(r, 2));

describe("dispatch", () => {
  it("bounds concurrency by the limit and still visits everything", async () => {
    const leaves = Array.from({ length: 12 }, (_, i) => `leaf${i}`);
    const tree = { root: ["a", "b"], a: leaves.slice(0, 6), b: leaves.slice(6) };
    let running = 0;
    let max = 0;
    const seen: string[] = [];
    await dispatch(
      treeHandler(tree, async (name) => {
        running++;
        max = Math.max(max, running);
        await tick();
        seen.push(name);
        running--;
      }),
      [node("root")],
      { limit: 3 },
    );
    assert.equal(max, 3);
    assert.equal(seen.length, 15);
  });

  it("does not deadlock with limit 1 and nested children", async () => {
    const tree = { root: ["a", "b"], a: ["a1", "a2"], b: ["b1"], a1: ["a1x"], a2: [], b1: ["b1x", "b1y"] };
    const seen: string[] = [];
    await dispatch(
      treeHandler(tree, async (n) => {
        seen.push(n);
      }),
      [node("root")],
      { limit: 1 },
    );
    assert.deepEqual(seen.sort(), ["a", "a1", "a1x", "a2", "b", "b1", "b1x", "b1y", "root"]);
  });

  it("prunes only the subtree of a SKIP", async () => {
    const tree = { root: ["a", "b"], a: ["a1"], b: ["b1"] };
    const seen: string[] = [];
    await dispatch(
      treeHandler(tree, async (n) => {
        seen.push(n);
        if (n === "a") throw SKIP;
      }),
      [node("root")],
      { limit: 2 },
    );
    assert.deepEqual(seen.sort(), ["a", "b", "b1", "root"]);
  });

  it("cancels siblings on the first error and throws that error", async () => {
    const tree = { root: ["fail", "slow"] };
    let slowAborted = false;
    const err = new Error("boom");
    await assert.rejects(
      dispatch(
        treeHandler(tree, async (n, signal) => {
          if (n === "fail") {
            await tick();
            throw err;
          }
          if (n === "slow") {
            await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
            slowAborted = true;
            throw signal.reason;
          }
        }),
        [node("root")],
      ),
      (e) => e === err,
    );
    assert.equal(slowAborted, true);
  });

  it("does not start waiting siblings after an error", async () => {
    const tree = { root: ["fail", "x1", "x2", "x3"] };
    const started: string[] = [];
    await assert.rejects(
      dispatch(
        treeHandler(tree, async (n) => {
          started.push(n);
          if (n === "fail") throw new Error("first");
          await tick();
        }),
        [node("root")],
        { limit: 1 },
      ),
      /first/,
    );
    assert.deepEqual(started, ["root", "fail"]);
  });

  it("stops when the caller's signal aborts", async () => {
    const ctrl = new AbortController();
    const tree = { root: ["a"] };
    await assert.rejects(
      dispatch(
        treeHandler(tree, async (n) => {
          if (n === "root") ctrl.abort(new Error("cancelled"));
        }),
        [node("root")],
        { signal: ctrl.signal },
      ),
      /cancelled/,
    );
  });
});

describe("walk", () => {
  it("visits depth-first in order, pruning only a SKIP's subtree", async () => {
    const tree = { root: ["a", "b", "c"], a: ["a1", "a2"], b: ["b1"], c: ["c1"] };
    const seen: string[] = [];
    await walk(
      treeHandler(tree, async (n) => {
        seen.push(n);
        if (n === "b") throw SKIP;
      }),
      [node("root")],
    );
    assert.deepEqual(seen, ["root", "a", "a1", "a2", "b", "c", "c1"]);
  });

  it("propagates errors", async () => {
    await assert.rejects(
      walk(async () => {
        throw new Error("nope");
      }, [node("x")]),
      /nope/,
    );
  });
});

describe("handlers", () => {
  it("runs in order and concatenates children; SKIP stops the rest", async () => {
    const order: string[] = [];
    const h = handlers(
      async () => {
        order.push("one");
        return [node("c1")];
      },
      async () => {
        order.push("two");
        return [node("c2")];
      },
    );
    const kids = await h(node("p"), new AbortController().signal);
    assert.deepEqual(
      kids.map((k) => k.mediaType),
      ["c1", "c2"],
    );
    assert.deepEqual(order, ["one", "two"]);
    const skipping = handlers(
      async () => {
        throw SKIP;
      },
      async () => assert.fail("must not run"),
    );
    await assert.rejects(skipping(node("p"), new AbortController().signal), (e) => e === SKIP);
  });
});

describe("Limiter", () => {
  it("removes an aborted waiter from the queue", async () => {
    const l = new Limiter(1);
    await l.acquire();
    const ctrl = new AbortController();
    const waiting = l.acquire(ctrl.signal);
    ctrl.abort(new Error("gone"));
    await assert.rejects(waiting, /gone/);
    l.release();
    // the slot went back to the pool, not to the aborted waiter
    await l.acquire();
    l.release();
  });
});
