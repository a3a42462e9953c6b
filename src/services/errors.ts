/**
 * One-to-one mapping between dist's typed errors and gRPC status codes, used
 * by the server (error → status) and the client adapters (status → error).
 */
import { type ServiceError, status } from "@grpc/grpc-js";
import { DistError, type ErrorCode, errorFromCode } from "../errors.ts";

const TO_GRPC: Record<ErrorCode, status> = {
  NotFound: status.NOT_FOUND,
  AlreadyExists: status.ALREADY_EXISTS,
  FailedPrecondition: status.FAILED_PRECONDITION,
  InvalidArgument: status.INVALID_ARGUMENT,
  Unavailable: status.UNAVAILABLE,
  OutOfRange: status.OUT_OF_RANGE,
  DataLoss: status.DATA_LOSS,
  Unauthenticated: status.UNAUTHENTICATED,
  PermissionDenied: status.PERMISSION_DENIED,
  Unimplemented: status.UNIMPLEMENTED,
  Aborted: status.ABORTED,
  DeadlineExceeded: status.DEADLINE_EXCEEDED,
  Internal: status.INTERNAL,
};

const FROM_GRPC = new Map<number, ErrorCode>(Object.entries(TO_GRPC).map(([k, v]) => [v, k as ErrorCode]));

/** Node fs errors that have an obvious kind. */
const ERRNO: Record<string, ErrorCode> = {
  ENOENT: "NotFound",
  EEXIST: "AlreadyExists",
  EACCES: "PermissionDenied",
  EPERM: "PermissionDenied",
  EROFS: "PermissionDenied",
  ENOTEMPTY: "FailedPrecondition",
};

export interface GrpcStatus {
  code: status;
  details: string;
}

/** The gRPC status for any thrown value; unknown errors are UNKNOWN, never a stack. */
export function toGrpcStatus(err: unknown): GrpcStatus {
  if (err instanceof DistError) return { code: TO_GRPC[err.code] ?? status.UNKNOWN, details: err.message };
  const e = err as NodeJS.ErrnoException | undefined;
  if (e && typeof e.code === "string" && ERRNO[e.code]) {
    return { code: TO_GRPC[ERRNO[e.code]], details: e.message };
  }
  if (e && typeof (e as { code?: unknown }).code === "number" && typeof e.message === "string") {
    // already a gRPC-shaped error
    return { code: (e as unknown as { code: status }).code, details: (e as { details?: string }).details ?? e.message };
  }
  return { code: status.UNKNOWN, details: err instanceof Error ? err.message : String(err) };
}

/** A typed dist error from a gRPC status; the message names the daemon's reason. */
export function fromGrpcError(err: unknown, context?: string): Error {
  const se = err as Partial<ServiceError> | undefined;
  if (!se || typeof se.code !== "number") return err instanceof Error ? err : new Error(String(err));
  const code = FROM_GRPC.get(se.code);
  const details = se.details || se.message || status[se.code];
  const message = context ? `${context}: ${details}` : details;
  return errorFromCode(code ?? "Internal", message, { cause: err });
}

export function grpcCodeName(code: number): string {
  return status[code] ?? String(code);
}
