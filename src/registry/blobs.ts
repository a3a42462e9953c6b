/**
 * GET and HEAD of blobs: from the store's file when the namespace references
 * the blob, else (pull-through) from the shared download of it, joined while
 * it arrives. Range requests get 206 with one range.
 */
import type { Readable } from "node:stream";
import { hasBlobFiles } from "../content/content.ts";
import type { Digest } from "../digest.ts";
import { isNotFound } from "../errors.ts";
import { type Context, namespaceOf, registryOf } from "./context.ts";
import type { Download } from "./downloads.ts";
import { blobUnknown } from "./errors.ts";
import { type Request, type Response, sendStream } from "./http.ts";
import { type ByteRange, parseRange } from "./range.ts";
import { sendFileRange } from "./send-file.ts";
import { isMirrored } from "./upstream.ts";

/** The size of a blob in the store, or undefined when it is not there. */
export async function storedSize(ctx: Context, digest: Digest): Promise<number | undefined> {
  try {
    return (await ctx.content.info(digest)).size;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

type Source = { size: number; open: (r: ByteRange) => Promise<Readable>; file?: string };

function fromStore(ctx: Context, digest: Digest, size: number): Source {
  return {
    size,
    open: (r) => ctx.content.openRead(digest, { offset: r.start, length: r.end - r.start + 1 }),
    // a local store's blob is sent from its file through pooled buffers
    file: hasBlobFiles(ctx.content) ? ctx.content.blobPath(digest) : undefined,
  };
}

function fromDownload(d: Download): Source {
  return { size: d.size, open: (r) => d.reader(r.start, r.end) };
}

/** Where the blob's bytes come from, or undefined when this server may not serve it. */
async function locate(ctx: Context, req: Request, name: string, digest: Digest, query: URLSearchParams) {
  const stored = await storedSize(ctx, digest);
  if (stored !== undefined && (ctx.known.has(digest) || (await ctx.view.reachable(digest)))) {
    return fromStore(ctx, digest, stored);
  }
  const registry = ctx.upstream?.registryFor(registryOf(ctx, namespaceOf(query)));
  if (!ctx.upstream || !registry) return undefined;
  const upstream = ctx.upstream;
  const mirrored = isMirrored(req.headers);
  const inflight = ctx.downloads.get(digest);
  const joined = inflight ? await inflight : undefined;
  if (joined) return fromDownload(joined);
  if (stored !== undefined) {
    // in the store for another namespace: served once the upstream confirms it has it
    if (!(await upstream.has(registry, name, digest, stored, mirrored))) return undefined;
    ctx.known.add(digest);
    return fromStore(ctx, digest, stored);
  }
  const download = await ctx.downloads.join(digest, `blob ${digest} from ${registry}/${name}`, async () =>
    upstream.blob(registry, name, digest, await upstream.hosts(registry, mirrored, digest)),
  );
  if (!download) {
    const size = await storedSize(ctx, digest);
    return size === undefined ? undefined : fromStore(ctx, digest, size);
  }
  ctx.known.add(digest);
  download.finished.then(() => ctx.view.invalidate()).catch(() => ctx.known.delete(digest));
  return fromDownload(download);
}

export async function getBlob(
  ctx: Context,
  req: Request,
  res: Response,
  name: string,
  digest: Digest,
  query: URLSearchParams,
): Promise<void> {
  const src = await locate(ctx, req, name, digest, query);
  if (!src) throw blobUnknown(digest);
  const range = parseRange(req.headers.range, src.size);
  const headers: Record<string, string | number> = {
    "content-type": "application/octet-stream",
    "docker-content-digest": digest,
    "accept-ranges": "bytes",
    etag: `"${digest}"`,
  };
  if (req.method === "HEAD") {
    res.writeHead(200, { ...headers, "content-length": src.size });
    res.end();
    return;
  }
  const r = range ?? { start: 0, end: src.size - 1 };
  if (range) headers["content-range"] = `bytes ${r.start}-${r.end}/${src.size}`;
  headers["content-length"] = src.size === 0 ? 0 : r.end - r.start + 1;
  if (src.size === 0) {
    res.writeHead(200, headers);
    res.end();
    return;
  }
  if (src.file) {
    res.writeHead(range ? 206 : 200, headers);
    await sendFileRange(res, src.file, r.start, r.end);
    return;
  }
  await sendStream(res, range ? 206 : 200, headers, await src.open(r));
}
