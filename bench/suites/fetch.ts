/**
 * `dist fetch` of the ~1 GiB, 4-layer synthetic image from a loopback registry, against
 * `skopeo copy` of the same image into an OCI layout (the baseline): both download,
 * verify and store the compressed blobs without unpacking. Fresh root / layout for each
 * repetition. Issue 3's goal: at most 1.1× skopeo's time, peak RSS under 150 MB.
 *
 * The image is built once into /var/tmp/dist-testbed (test/integration/fixtures/big.ts;
 * ~1 min the first time). BENCH_BIG_MIB=256 makes a quick run.
 *
 * Other suites reuse the image and its registry through setupBigRegistry() /
 * teardownBigRegistry() (the pull suite against ctr).
 */
import { startBigRegistry } from "../../test/integration/fixtures/big.ts";
import type { Registry } from "../../test/integration/fixtures/registry.ts";
import type { BenchContext, BenchSuite } from "../suite.ts";

const registries = new WeakMap<BenchContext, Registry>();

/**
 * Builds the big image if needed and serves it on a plain registry for this run.
 * Sets $BIG_REF ("127.0.0.1:PORT/big/synthetic:gzip"), $BIG_REGISTRY and $BIG_DIGEST.
 */
export async function setupBigRegistry(ctx: BenchContext): Promise<void> {
  const { big, registry, ref } = await startBigRegistry(ctx.tmp);
  registries.set(ctx, registry);
  ctx.vars.BIG_REF = ref;
  ctx.vars.BIG_REGISTRY = registry.addr;
  ctx.vars.BIG_DIGEST = big.image.digest;
  const bytes = (big.image.layers ?? []).reduce((n, l) => n + l.size, 0);
  process.stderr.write(
    `bench: ${ref} (${big.image.layers?.length} layers, ${(bytes / 2 ** 20).toFixed(0)} MiB compressed)\n`,
  );
}

export async function teardownBigRegistry(ctx: BenchContext): Promise<void> {
  await registries.get(ctx)?.stop();
  registries.delete(ctx);
}

const suite: BenchSuite = {
  name: "fetch",
  description: "fetch of the ~1 GiB 4-layer image from a loopback registry: dist fetch vs skopeo copy to an OCI layout",
  repetitions: 5,
  setup: setupBigRegistry,
  cases: () => [
    {
      name: "skopeo copy docker:// → oci: layout",
      before: 'rm -rf "$TMP/skopeo"',
      command: 'skopeo copy -q --src-tls-verify=false "docker://$BIG_REF" "oci:$TMP/skopeo:t"',
      baseline: true,
    },
    {
      name: "dist fetch (fresh root)",
      before: 'rm -rf "$TMP/root"',
      command: '"$DIST" --root "$TMP/root" fetch --plain-http "$BIG_REF" >/dev/null',
    },
  ],
  teardown: teardownBigRegistry,
};

export default suite;
