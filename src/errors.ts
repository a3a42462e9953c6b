/**
 * Typed errors shared by every layer of dist. The CLI maps them to exit codes,
 * the gRPC layer to status codes and the registry client from HTTP statuses,
 * so each kind is checked by its `code`, never by message text.
 */
/** The kinds of DistError (gRPC's status codes); each maps to one exit code, gRPC code and HTTP status. */
export type ErrorCode =
  | "NotFound"
  | "AlreadyExists"
  | "FailedPrecondition"
  | "InvalidArgument"
  | "Unavailable"
  | "OutOfRange"
  | "DataLoss"
  | "Unauthenticated"
  | "PermissionDenied"
  | "Unimplemented"
  | "Aborted"
  | "DeadlineExceeded"
  | "Internal";

/** An error of a known kind: check `code` (or use isErrorCode), never the message. */
export class DistError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = `${code}Error`;
  }
}

/** Something asked for does not exist (a blob, an image, a snapshot, a manifest in a registry). */
export class NotFoundError extends DistError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("NotFound", message, options);
  }
}
/** Something to be created exists already (a blob being written, an image name, a snapshot key). */
export class AlreadyExistsError extends DistError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("AlreadyExists", message, options);
  }
}
/** The system is not in a state that allows the operation (a snapshot in use, overlayfs unavailable). */
export class FailedPreconditionError extends DistError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("FailedPrecondition", message, options);
  }
}
/** Bad input: a malformed reference, digest, platform, manifest or option. */
export class InvalidArgumentError extends DistError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("InvalidArgument", message, options);
  }
}
/** A service could not be reached or kept failing (a registry's connection errors, 5xx after retries). */
export class UnavailableError extends DistError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("Unavailable", message, options);
  }
}
/** A read or resume offset beyond the end of a blob. */
export class OutOfRangeError extends DistError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("OutOfRange", message, options);
  }
}
/** Bytes that do not match their descriptor (size or digest), or a corrupt layer. */
export class DataLossError extends DistError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("DataLoss", message, options);
  }
}
/** The registry wants credentials that were not given or were refused. */
export class UnauthenticatedError extends DistError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("Unauthenticated", message, options);
  }
}
/** The operation is not allowed for these credentials or this user. */
export class PermissionDeniedError extends DistError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("PermissionDenied", message, options);
  }
}
/** The operation is not supported (by this store, snapshotter or registry). */
export class UnimplementedError extends DistError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("Unimplemented", message, options);
  }
}

type ErrorClass = new (message: string, options?: { cause?: unknown }) => DistError;
const CLASSES: Partial<Record<ErrorCode, ErrorClass>> = {
  NotFound: NotFoundError,
  AlreadyExists: AlreadyExistsError,
  FailedPrecondition: FailedPreconditionError,
  InvalidArgument: InvalidArgumentError,
  Unavailable: UnavailableError,
  OutOfRange: OutOfRangeError,
  DataLoss: DataLossError,
  Unauthenticated: UnauthenticatedError,
  PermissionDenied: PermissionDeniedError,
  Unimplemented: UnimplementedError,
};

/**
 * The typed error of a code that crossed a boundary (a worker thread, the gRPC
 * wire): an instance of that code's class, else a DistError with the code.
 */
export function errorFromCode(code: ErrorCode, message: string, options?: { cause?: unknown }): DistError {
  const Kind = CLASSES[code];
  return Kind ? new Kind(message, options) : new DistError(code, message, options);
}

/** A system error's code (an errno name such as "ENOENT"), which callers test like a kind. */
export function systemCode(err: unknown): string | undefined {
  if (err instanceof DistError) return undefined;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** A plain error carrying a system error's code, when there is one. */
function withSystemCode(message: string, code: string | undefined, options?: { cause?: unknown }): Error {
  const err = new Error(message, options);
  if (code !== undefined) Object.assign(err, { code });
  return err;
}

/**
 * Adds context to an error without editing it (Go's `fmt.Errorf("%s: %w")`):
 * a new error reading "`context`: <err's message>", with `err` as its cause and
 * its kind kept: a DistError's code (or `kind`, to classify an error at a
 * boundary), else a system error's code ("ENOENT", "ENOSPC"...).
 */
export function wrapError(err: unknown, context: string, kind?: ErrorCode): Error {
  const message = `${context}: ${errorMessage(err)}`;
  const code = kind ?? (err instanceof DistError ? err.code : undefined);
  if (code) return errorFromCode(code, message, { cause: err });
  return withSystemCode(message, systemCode(err), { cause: err });
}

/** An error as plain data, for a boundary that carries no classes (a worker thread's messages). */
export interface ErrorData {
  message: string;
  /** The DistError kind, when it had one. */
  kind?: ErrorCode;
  /** A system error's code (an errno name), when it had one. */
  code?: string;
}

export function errorToData(err: unknown): ErrorData {
  if (err instanceof DistError) return { message: err.message, kind: err.code };
  const code = systemCode(err);
  return code === undefined ? { message: errorMessage(err) } : { message: errorMessage(err), code };
}

/** The error `data` describes, of its kind: the same DistError class, or an error with the system code. */
export function errorFromData(data: ErrorData): Error {
  return data.kind ? errorFromCode(data.kind, data.message) : withSystemCode(data.message, data.code);
}

/** Whether `err` is a DistError of kind `code`. */
export function isErrorCode(err: unknown, code: ErrorCode): boolean {
  return err instanceof DistError && err.code === code;
}
/** Whether `err` is a NotFoundError (of any class carrying that code). */
export const isNotFound = (err: unknown): boolean => isErrorCode(err, "NotFound");
/** Whether `err` is an AlreadyExistsError (of any class carrying that code). */
export const isAlreadyExists = (err: unknown): boolean => isErrorCode(err, "AlreadyExists");

/** The message of any thrown value, for one-line reports. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
