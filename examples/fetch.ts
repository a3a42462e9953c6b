// Fetches an image without unpacking it: every blob of the chosen platforms goes into the
// content store, verified, and the image is recorded; then checks what the store holds.
// Usage: node fetch.ts [--plain-http] [--platform OS/ARCH] REF [ROOT]
import { parseArgs } from "node:util";
import {
  check,
  createResolver,
  defaultMatcher,
  fetchImage,
  imageSize,
  namespacedContentStore,
  only,
  openSqliteImageStore,
  parsePlatform,
} from "@dist-project/dist";

const { values, positionals } = parseArgs({
  options: { "plain-http": { type: "boolean" }, platform: { type: "string" } },
  allowPositionals: true,
});
const [ref = "docker.io/library/busybox:latest", root = "/var/lib/dist"] = positionals;
const platform = values.platform ? only(parsePlatform(values.platform)) : defaultMatcher();

const content = namespacedContentStore(root, "default");
const resolver = createResolver({ plainHttp: values["plain-http"] });
const fetched = await fetchImage({
  resolver,
  store: content,
  ref,
  platforms: [platform],
  images: openSqliteImageStore(root, "default"),
  onNote: (desc, message) => console.error(`${desc.digest}: ${message}`),
});
await resolver.close();

const { complete, missing } = await check(content, fetched.target, platform);
console.log(fetched.name, fetched.target.digest, complete ? "complete" : `${missing.length} blobs missing`);
console.log(`${await imageSize(content, fetched.target, platform)} bytes for ${platform}`);
