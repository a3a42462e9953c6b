/** The upload endpoints of `--allow-push`: start (with mount or a monolithic body), PATCH, PUT, status, cancel. */
import type { Digest } from "../digest.ts";
import { isErrorCode } from "../errors.ts";
import { storedSize } from "./blobs.ts";
import type { Context } from "./context.ts";
import { RegistryError, unsupported } from "./errors.ts";
import { type Request, type Response, sendEmpty } from "./http.ts";
import { requestDigest } from "./routes.ts";
import type { UploadSession } from "./uploads.ts";

function checkPush(ctx: Context): void {
  if (!ctx.allowPush) throw unsupported("push is disabled: start dist serve with --allow-push");
}

function location(name: string, s: UploadSession): string {
  return `/v2/${name}/blobs/uploads/${s.id}`;
}

function progress(name: string, s: UploadSession): Record<string, string> {
  return {
    location: location(name, s),
    range: `0-${Math.max(0, s.offset - 1)}`,
    "docker-upload-uuid": s.id,
  };
}

/** Whether a request carries a body (a Content-Length above 0, or chunked). */
function hasBody(req: Request): boolean {
  const len = req.headers["content-length"];
  if (len !== undefined) return Number(len) > 0;
  return req.headers["transfer-encoding"] !== undefined;
}

/** Refuses a declared body over the server's limit before reading it. */
function checkLength(ctx: Context, req: Request, s?: UploadSession): void {
  const len = Number(req.headers["content-length"] ?? 0);
  if (len + (s?.offset ?? 0) > ctx.uploads.limits.maxBytes) {
    throw new RegistryError(
      413,
      "SIZE_INVALID",
      `upload larger than the ${ctx.uploads.limits.maxBytes}-byte limit of this server`,
    );
  }
}

async function commit(ctx: Context, res: Response, name: string, s: UploadSession, digest: Digest): Promise<void> {
  try {
    const r = await s.finish(digest);
    ctx.known.add(r.digest);
    sendEmpty(res, 201, { location: `/v2/${name}/blobs/${r.digest}`, "docker-content-digest": r.digest });
  } catch (err) {
    if (isErrorCode(err, "DataLoss")) {
      throw new RegistryError(400, "DIGEST_INVALID", `the upload is not ${digest}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    throw err;
  }
}

export async function startUpload(ctx: Context, req: Request, res: Response, name: string, query: URLSearchParams) {
  checkPush(ctx);
  const mount = query.get("mount");
  if (mount !== null) {
    const digest = requestDigest(mount);
    // a blob of this namespace (or taken in here) is mounted; any other is uploaded as usual
    if (
      (ctx.known.has(digest) || (await ctx.view.reachable(digest))) &&
      (await storedSize(ctx, digest)) !== undefined
    ) {
      sendEmpty(res, 201, { location: `/v2/${name}/blobs/${digest}`, "docker-content-digest": digest });
      return;
    }
  }
  const digestParam = query.get("digest");
  const digest = digestParam === null ? undefined : requestDigest(digestParam);
  checkLength(ctx, req);
  const s = ctx.uploads.start(name);
  if (digest) {
    await s.append(req);
    await commit(ctx, res, name, s, digest);
    return;
  }
  if (hasBody(req)) await s.append(req);
  sendEmpty(res, 202, progress(name, s));
}

export async function patchUpload(ctx: Context, req: Request, res: Response, name: string, id: string) {
  checkPush(ctx);
  const s = ctx.uploads.get(name, id);
  const cr = req.headers["content-range"];
  if (cr !== undefined) {
    const m = /^(?:bytes[ =])?(\d+)-(\d+)$/.exec(cr.trim());
    if (!m || Number(m[1]) !== s.offset) {
      throw new RegistryError(
        416,
        "BLOB_UPLOAD_INVALID",
        `Content-Range "${cr.slice(0, 60)}" does not start at byte ${s.offset}`,
        {
          headers: progress(name, s),
        },
      );
    }
  }
  checkLength(ctx, req, s);
  await s.append(req);
  sendEmpty(res, 202, progress(name, s));
}

export async function putUpload(
  ctx: Context,
  req: Request,
  res: Response,
  name: string,
  id: string,
  query: URLSearchParams,
) {
  checkPush(ctx);
  const s = ctx.uploads.get(name, id);
  const d = query.get("digest");
  if (d === null) throw new RegistryError(400, "DIGEST_INVALID", "the final PUT of an upload needs ?digest=");
  const digest = requestDigest(d);
  checkLength(ctx, req, s);
  if (hasBody(req)) await s.append(req);
  await commit(ctx, res, name, s, digest);
}

export function uploadStatus(ctx: Context, res: Response, name: string, id: string): void {
  checkPush(ctx);
  sendEmpty(res, 204, progress(name, ctx.uploads.get(name, id)));
}

export function cancelUpload(ctx: Context, res: Response, name: string, id: string): void {
  checkPush(ctx);
  ctx.uploads.get(name, id).cancel();
  sendEmpty(res, 204);
}
