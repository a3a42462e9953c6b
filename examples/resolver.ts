// Asks a registry what a reference names, then reads that manifest or index (verified
// against its descriptor) and lists what it points at. Nothing is stored.
// Usage: node resolver.ts [--plain-http] REF
import { parseArgs } from "node:util";
import {
  createResolver,
  formatPlatform,
  isIndex,
  MAX_MANIFEST_SIZE,
  parseIndex,
  parseManifest,
  readVerified,
} from "@dist-project/dist";

const { values, positionals } = parseArgs({ options: { "plain-http": { type: "boolean" } }, allowPositionals: true });
const [ref = "docker.io/library/busybox:latest"] = positionals;

const resolver = createResolver({ plainHttp: values["plain-http"] });
try {
  const { name, desc } = await resolver.resolve(ref);
  console.log(name, desc.mediaType, desc.digest);
  if (desc.size > MAX_MANIFEST_SIZE) throw new Error(`${name}: manifest too large`);
  const fetcher = await resolver.fetcher(name);
  const bytes = await readVerified(await fetcher.fetch(desc), desc, `manifest of ${name}`);
  if (isIndex(desc.mediaType)) {
    for (const m of parseIndex(bytes, desc).manifests) {
      console.log(`  ${m.platform ? formatPlatform(m.platform) : "?"} ${m.digest}`);
    }
  } else {
    const manifest = parseManifest(bytes, desc);
    console.log(`  config ${manifest.config.digest}`);
    for (const layer of manifest.layers) console.log(`  layer ${layer.digest} ${layer.size}`);
  }
} finally {
  await resolver.close();
}
