// Pulls an image: resolves the reference, fetches the host platform's blobs into the
// content store, records the image and unpacks its layers into snapshots.
// Usage: node pull.ts [--plain-http] REF [ROOT]
import { parseArgs } from "node:util";
import {
  createResolver,
  namespacedContentStore,
  openSnapshotterAt,
  openSqliteImageStore,
  pull,
} from "@dist-project/dist";

const { values, positionals } = parseArgs({ options: { "plain-http": { type: "boolean" } }, allowPositionals: true });
const [ref = "docker.io/library/busybox:latest", root = "/var/lib/dist"] = positionals;

const resolver = createResolver({ plainHttp: values["plain-http"] }); // RegistryOptions: user, tlsCaCert, hostsDir, …
const result = await pull({
  resolver,
  content: namespacedContentStore(root, "default"),
  images: openSqliteImageStore(root, "default"),
  snapshotter: openSnapshotterAt(root, "native"),
  ref,
});
await resolver.close();
console.log(result.name, result.unpacked[0]?.chainID);
