/**
 * `dist rootfs unpack MANIFEST-DIGEST` (unpack an image already in the content
 * store; prints the ChainID) and `dist rootfs prepare CHAINID TARGET` (an active
 * snapshot TARGET on the chain; prints one mount command per mount), as the seed.
 */
import type { Command } from "commander";
import { FailedPreconditionError, isAlreadyExists } from "../errors.ts";
import { commandSignal, globals } from "./globals.ts";
import { holdCommandLease, openContentStore } from "./open.ts";
import { addPlatformFlags, platformMatcher } from "./platform-flags.ts";
import { holdMessages } from "./progress.ts";
import { addSnapshotterFlag, printMounts, snapshotterFor } from "./snapshots.ts";

export function register(program: Command): void {
  const rootfs = program
    .command("rootfs")
    .description("unpack image layers into snapshots and prepare root filesystems");
  addSnapshotterFlag(rootfs);
  rootfs.addHelpText(
    "after",
    `
Examples:
  dist rootfs unpack sha256:4c8fb09e8d634ab823b1c125e64f0e1ceaf216025aa38283ea1b42997f1e8059
  dist rootfs prepare sha256:<chainid> /tmp/redis-rootfs`,
  );

  const unpack = rootfs
    .command("unpack")
    .description("unpack the layers of a manifest in the content store; prints the ChainID")
    .argument("<manifest-digest>", "digest of an image manifest (or of an index: the platform's manifest is used)");
  addSnapshotterFlag(unpack);
  addPlatformFlags(unpack);
  unpack
    .addHelpText(
      "after",
      `
Layers whose snapshot already exists are not extracted again. The blobs must be
in the content store (dist fetch).

Examples:
  dist fetch docker.io/library/redis:latest
  dist rootfs unpack sha256:4c8fb09e8d634ab823b1c125e64f0e1ceaf216025aa38283ea1b42997f1e8059
  dist rootfs --snapshotter native unpack sha256:4c8f…8059`,
    )
    .action(async (digest: string, opts: { platform?: string[]; allPlatforms?: boolean }, c: Command) => {
      const g = globals(c);
      const signal = commandSignal(g);
      const [{ describeStored, selectManifest }, { unpackManifest }] = await Promise.all([
        import("../images/lookup.ts"),
        import("../unpack/unpacker.ts"),
      ]);
      await holdCommandLease(g);
      const content = await openContentStore(g);
      try {
        const sn = await snapshotterFor(c);
        const { desc, bytes } = await describeStored(content, digest);
        const { desc: mdesc, manifest } = await selectManifest(content, desc, bytes, await platformMatcher(opts));
        const held = holdMessages();
        const r = await unpackManifest(mdesc, manifest, {
          content,
          snapshotter: sn,
          signal,
          onWarning: held.onWarning,
        });
        held.report();
        process.stdout.write(`${r.chainID}\n`);
      } finally {
        await content.close?.();
      }
    });

  const prepare = rootfs
    .command("prepare")
    .description("prepare an active snapshot TARGET on CHAINID; prints the mount commands")
    .argument("<chainid>", "ChainID of an unpacked image (dist rootfs unpack, dist pull --print-chainid)")
    .argument("<target>", "name of the new snapshot, and where the printed commands mount it");
  addSnapshotterFlag(prepare);
  prepare
    .option("--readonly", "a read-only view instead of a writable snapshot")
    .addHelpText(
      "after",
      `
Examples:
  dist rootfs prepare sha256:<chainid> /tmp/rootfs
  sudo sh -c "$(dist rootfs prepare sha256:<chainid> /tmp/rootfs)"`,
    )
    .action(async (chainID: string, target: string, opts: { readonly?: boolean }, c: Command) => {
      const sn = await snapshotterFor(c);
      try {
        const mounts = opts.readonly ? await sn.view(target, chainID) : await sn.prepare(target, chainID);
        await printMounts(mounts, target);
      } catch (err) {
        if (isAlreadyExists(err))
          throw new FailedPreconditionError(`rootfs "${target}" already exists`, { cause: err });
        throw err;
      }
    });
}
