/**
 * `dist copy` of the ~1 GiB, 4-layer synthetic image from one loopback registry
 * to another, against `skopeo copy docker:// docker://` (the baseline), in one
 * run. Both stream each blob from the source registry to the destination; the
 * destination's storage is emptied before each case and every copy goes to a
 * repository of its own, so each one uploads every byte (no HEAD hit, no mount,
 * no skopeo blob-cache reuse). Issue 14's goals: faster than skopeo, peak RSS
 * under 150 MB.
 *
 * The source image and registry come from the fetch suite (setupBigRegistry);
 * BENCH_BIG_MIB=256 makes a quick run.
 */
import { join } from "node:path";
import { type Registry, startRegistry } from "../../test/integration/fixtures/registry.ts";
import type { BenchContext, BenchSuite } from "../suite.ts";
import { setupBigRegistry, teardownBigRegistry } from "./fetch.ts";

const destinations = new WeakMap<BenchContext, Registry>();

/** Empties the destination's storage (blobs and repositories; the registry recreates what it needs). */
const EMPTY_DESTINATION = 'rm -rf "$DST_STORAGE/docker"';

const suite: BenchSuite = {
  name: "copy",
  description: "copy of the ~1 GiB 4-layer image between two loopback registries: dist copy vs skopeo copy",
  repetitions: 5,
  async setup(ctx) {
    await setupBigRegistry(ctx);
    const storage = join(ctx.tmp, "dst-storage");
    const dst = await startRegistry({ name: "copy-dst", storage, dir: ctx.tmp, cache: false });
    destinations.set(ctx, dst);
    ctx.vars.DST_REGISTRY = dst.addr;
    ctx.vars.DST_STORAGE = storage;
  },
  cases: () => [
    {
      name: "skopeo copy docker:// → docker:// (baseline)",
      before: EMPTY_DESTINATION,
      command:
        'skopeo copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$BIG_REF" "docker://$DST_REGISTRY/copy/skopeo-$(date +%s%N):t"',
      baseline: true,
    },
    {
      name: "dist copy (streamed straight through)",
      before: EMPTY_DESTINATION,
      command: '"$DIST" copy --plain-http "$BIG_REF" "$DST_REGISTRY/copy/dist-$(date +%s%N):t" >/dev/null',
    },
  ],
  async teardown(ctx) {
    await destinations.get(ctx)?.stop();
    destinations.delete(ctx);
    await teardownBigRegistry(ctx);
  },
};

export default suite;
