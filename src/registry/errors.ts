/**
 * The distribution spec's error responses: a status and a body of the form
 * `{"errors":[{"code","message","detail"}]}`. Library errors are mapped by their
 * kind, so a NotFound of the store becomes the 404 of what was asked for.
 */
import { DistError, type ErrorCode, errorMessage } from "../errors.ts";

/** The error codes of the distribution spec (and the registry's UNSUPPORTED / TOOMANYREQUESTS). */
export type RegistryErrorCode =
  | "BLOB_UNKNOWN"
  | "BLOB_UPLOAD_INVALID"
  | "BLOB_UPLOAD_UNKNOWN"
  | "DIGEST_INVALID"
  | "MANIFEST_BLOB_UNKNOWN"
  | "MANIFEST_INVALID"
  | "MANIFEST_UNKNOWN"
  | "NAME_INVALID"
  | "NAME_UNKNOWN"
  | "SIZE_INVALID"
  | "RANGE_INVALID"
  | "UNAUTHORIZED"
  | "DENIED"
  | "UNSUPPORTED"
  | "TOOMANYREQUESTS"
  | "UNAVAILABLE"
  | "UNKNOWN";

export class RegistryError extends Error {
  readonly status: number;
  readonly code: RegistryErrorCode;
  readonly detail: unknown;
  /** Extra response headers (WWW-Authenticate, Content-Range of a 416). */
  readonly headers: Record<string, string>;
  constructor(
    status: number,
    code: RegistryErrorCode,
    message: string,
    opts: { detail?: unknown; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, { cause: opts.cause });
    this.status = status;
    this.code = code;
    this.detail = opts.detail;
    this.headers = opts.headers ?? {};
  }
}

const BY_KIND: Partial<Record<ErrorCode, [number, RegistryErrorCode]>> = {
  NotFound: [404, "BLOB_UNKNOWN"],
  InvalidArgument: [400, "UNSUPPORTED"],
  OutOfRange: [416, "RANGE_INVALID"],
  DataLoss: [400, "DIGEST_INVALID"],
  Unauthenticated: [401, "UNAUTHORIZED"],
  PermissionDenied: [403, "DENIED"],
  Unimplemented: [405, "UNSUPPORTED"],
  Unavailable: [503, "UNAVAILABLE"],
  DeadlineExceeded: [504, "UNAVAILABLE"],
  FailedPrecondition: [400, "UNSUPPORTED"],
};

/** The registry error of anything thrown while answering: its own, or mapped from a library error's kind. */
export function toRegistryError(err: unknown): RegistryError {
  if (err instanceof RegistryError) return err;
  if (err instanceof DistError) {
    const [status, code] = BY_KIND[err.code] ?? [500, "UNKNOWN"];
    return new RegistryError(status, code, err.message, { cause: err });
  }
  return new RegistryError(500, "UNKNOWN", `internal error: ${errorMessage(err)}`, { cause: err });
}

/** The JSON body of an error response. */
export function errorBody(err: RegistryError): string {
  const entry: Record<string, unknown> = { code: err.code, message: err.message };
  if (err.detail !== undefined) entry.detail = err.detail;
  return JSON.stringify({ errors: [entry] });
}

export const blobUnknown = (digest: string) =>
  new RegistryError(404, "BLOB_UNKNOWN", `blob ${digest} unknown to this registry`, { detail: { digest } });
export const manifestUnknown = (name: string, reference: string, why = "") =>
  new RegistryError(404, "MANIFEST_UNKNOWN", `manifest ${name}:${reference} unknown${why ? `: ${why}` : ""}`, {
    detail: { name, reference },
  });
export const nameInvalid = (why: string) => new RegistryError(400, "NAME_INVALID", why);
export const digestInvalid = (why: string) => new RegistryError(400, "DIGEST_INVALID", why);
export const unsupported = (why: string, status = 405) => new RegistryError(status, "UNSUPPORTED", why);
