/** Writing responses: JSON bodies, the spec's errors, and streams that never hold a blob in memory. */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { errorBody, type RegistryError } from "./errors.ts";

export type Request = IncomingMessage;
export type Response = ServerResponse;

export function sendJson(
  req: Request,
  res: Response,
  status: number,
  value: unknown,
  headers: Record<string, string> = {},
): void {
  const body = Buffer.from(JSON.stringify(value));
  res.writeHead(status, { "content-type": "application/json", "content-length": body.length, ...headers });
  res.end(req.method === "HEAD" ? undefined : body);
}

/** An empty response (202, 201, 204 of the upload protocol). */
export function sendEmpty(res: Response, status: number, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-length": 0, ...headers });
  res.end();
}

export function sendError(req: Request, res: Response, err: RegistryError): void {
  if (res.headersSent) {
    // a stream failed midway: the client sees a cut body and retries (with Range)
    res.destroy(err);
    return;
  }
  const body = Buffer.from(errorBody(err));
  const headers: Record<string, string | number> = {
    "content-type": "application/json",
    "content-length": body.length,
    ...err.headers,
  };
  // a request body not read yet is not waited for: the connection closes after the answer
  if (!req.complete) headers.connection = "close";
  res.writeHead(err.status, headers);
  res.end(req.method === "HEAD" ? undefined : body);
}

/** Streams a body after the headers; the stream is destroyed if the client goes away. */
export async function sendStream(
  res: Response,
  status: number,
  headers: Record<string, string | number>,
  body: Readable,
): Promise<void> {
  res.writeHead(status, headers);
  await pipeline(body, res);
}
