/**
 * Decompresses a layer file and prints its diffID, nothing else: the decoding
 * alone, for bench suites (zstd). `$NODE bench/inflate.ts worker|stream FILE`:
 * `worker` is the decompression worker reading the file itself (what apply and
 * pull do with a stored blob), `stream` is decompressStream over a file stream
 * (the library's stream path).
 */
import { createHash } from "node:crypto";
import { closeSync, createReadStream, openSync, readSync, statSync } from "node:fs";
import { decompressStream, detectCompression } from "../src/archive/compression.ts";
import { InflateJob } from "../src/archive/inflater.ts";

async function worker(path: string): Promise<string> {
  const length = statSync(path).size;
  const head = Buffer.alloc(4);
  const fd = openSync(path, "r");
  readSync(fd, head, 0, 4, 0);
  closeSync(fd);
  const job = new InflateJob(detectCompression(head), path, { path, offset: 0, length });
  for await (const _ of job.chunks());
  return job.result().diffID;
}

async function stream(path: string): Promise<string> {
  const { stream: s } = await decompressStream(createReadStream(path, { highWaterMark: 1 << 20 }), { what: path });
  const h = createHash("sha256");
  for await (const c of s) h.update(c);
  return `sha256:${h.digest("hex")}`;
}

const [how, file] = process.argv.slice(2);
if ((how !== "worker" && how !== "stream") || !file) {
  process.stderr.write("usage: $NODE bench/inflate.ts worker|stream FILE\n");
  process.exit(2);
}
process.stdout.write(`${await (how === "worker" ? worker(file) : stream(file))}\n`);
