// The content store: writes a blob through an ingest (verified on commit), reads it back
// by digest, labels it, lists and deletes it.
// Usage: node content-store.ts [ROOT]
import { Readable } from "node:stream";
import { type Descriptor, digestOf, isNotFound, namespacedContentStore, readBlob, writeBlob } from "@dist-project/dist";

const [root = "/var/lib/dist"] = process.argv.slice(2);
const store = namespacedContentStore(root, "default");

const data = Buffer.from('{"hello":"world"}\n');
const desc: Descriptor = { mediaType: "application/json", digest: digestOf(data), size: data.length };
const written = await writeBlob(store, `example-${desc.digest}`, Readable.from([data]), {
  size: desc.size,
  expected: desc.digest,
  labels: { "example.com/kind": "greeting" },
});
console.log(written.digest, written.existed ? "was already there" : "written");

console.log((await readBlob(store, desc)).toString("utf8").trim());
await store.update(desc.digest, { "example.com/read": "yes" }, ["labels.example.com/read"]);
await store.walk((info) => console.log(info.digest, info.size, JSON.stringify(info.labels)), {
  labels: ["example.com/kind=greeting"],
});

await store.delete(desc.digest);
await store.info(desc.digest).catch((err: unknown) => console.log(isNotFound(err) ? "deleted" : err));
