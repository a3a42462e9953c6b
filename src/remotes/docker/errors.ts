/**
 * Registry errors: the `{"errors":[{code,message,detail}]}` bodies of the
 * distribution spec decoded into one line, HTTP statuses mapped onto dist's
 * typed errors, and transport failures (refused, unknown host, TLS) explained.
 */
import {
  DataLossError,
  type DistError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  UnauthenticatedError,
  UnavailableError,
} from "../../errors.ts";

export interface RegistryErrorEntry {
  code: string;
  message: string;
  detail?: unknown;
}

const MAX_TEXT = 300;

function oneLine(s: string): string {
  const t = s.replace(/\s+/g, " ").trim();
  return t.length > MAX_TEXT ? `${t.slice(0, MAX_TEXT)}…` : t;
}

/** The entries of a registry error body; empty when the body is not one. */
export function parseErrorBody(body: string): RegistryErrorEntry[] {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    return [];
  }
  if (!v || typeof v !== "object") return [];
  const errors = (v as { errors?: unknown }).errors;
  if (!Array.isArray(errors)) return [];
  const out: RegistryErrorEntry[] = [];
  for (const e of errors) {
    if (!e || typeof e !== "object") continue;
    const { code, message, detail } = e as { code?: unknown; message?: unknown; detail?: unknown };
    out.push({
      code: typeof code === "string" ? code : "UNKNOWN",
      message: typeof message === "string" ? message : "",
      detail,
    });
  }
  return out;
}

/** `MANIFEST_UNKNOWN` → `manifest unknown`. */
function codeText(code: string): string {
  return code.toLowerCase().replace(/_/g, " ");
}

function detailText(detail: unknown): string {
  if (detail === undefined || detail === null || detail === "") return "";
  if (typeof detail === "string") return oneLine(detail);
  if (typeof detail === "object") {
    // distribution sends e.g. {"Tag":"nope"} or {"Name":"x","Revision":"sha256:…"}
    const parts = Object.entries(detail as Record<string, unknown>)
      .filter(([, v]) => typeof v === "string" || typeof v === "number")
      .map(([k, v]) => `${k.toLowerCase()} ${v}`);
    return oneLine(parts.join(", "));
  }
  return "";
}

/**
 * One line for a registry error body: `manifest unknown: manifest unknown (tag nope)`;
 * the code text and the message, then the detail when it adds anything. `extra` joins
 * the parenthesised part (used for the HTTP status).
 */
export function describeErrorBody(body: string, extra?: string): string {
  const entries = parseErrorBody(body);
  const paren = (parts: string[]) => (parts.length > 0 ? ` (${parts.join("; ")})` : "");
  if (entries.length === 0) {
    const text = oneLine(body);
    // HTML error pages from proxies say nothing useful
    if (text === "" || /^<(!doctype|html)/i.test(text)) return extra ?? "";
    return text + paren(extra ? [extra] : []);
  }
  return entries
    .map((e, i) => {
      const parts = [codeText(e.code)];
      if (e.message) parts.push(oneLine(e.message));
      const notes: string[] = [];
      const d = detailText(e.detail);
      if (d) notes.push(d);
      if (extra && i === entries.length - 1) notes.push(extra);
      return parts.join(": ") + paren(notes);
    })
    .join("; ");
}

export interface HttpFailure {
  /** The reference or repository the request was for. */
  ref: string;
  /** What was being done, e.g. `resolving`, `fetching blob sha256:…`. */
  what: string;
  status: number;
  /** Response body text (possibly empty, e.g. for HEAD). */
  body?: string;
  /** The registry host, for auth messages. */
  host?: string;
}

const STATUS_TEXT: Record<number, string> = {
  400: "bad request",
  401: "unauthorized",
  403: "forbidden",
  404: "not found",
  405: "method not allowed",
  408: "request timeout",
  413: "payload too large",
  416: "range not satisfiable",
  429: "too many requests",
  500: "internal server error",
  502: "bad gateway",
  503: "service unavailable",
  504: "gateway timeout",
};

/** The typed error of an HTTP failure: 404 NotFound, 401 Unauthenticated, 403 PermissionDenied, … */
export function httpError(f: HttpFailure): DistError {
  const statusText = `HTTP ${f.status} ${STATUS_TEXT[f.status] ?? "error"}`;
  const detail = f.body ? describeErrorBody(f.body, `HTTP ${f.status}`) : statusText;
  const msg = `${f.ref}: ${f.what}: ${detail || statusText}`;
  switch (f.status) {
    case 401:
      return new UnauthenticatedError(msg);
    case 403:
      return new PermissionDeniedError(msg);
    case 404:
      return new NotFoundError(msg);
    case 400:
    case 405:
    case 413:
    case 416:
      return new InvalidArgumentError(msg);
    default:
      if (f.status === 408 || f.status === 429 || f.status >= 500) return new UnavailableError(msg);
      return new InvalidArgumentError(msg);
  }
}

const TLS_CODES = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE",
]);

/** The code of a transport error, looking through undici's wrapping (`cause`). */
export function errorCode(err: unknown): string | undefined {
  let e = err as { code?: unknown; cause?: unknown } | undefined;
  for (let depth = 0; e && depth < 5; depth++) {
    if (typeof e.code === "string" && e.code !== "UND_ERR_SOCKET" && e.code !== "UND_ERR_CONNECT") return e.code;
    if (!e.cause) return typeof e.code === "string" ? e.code : undefined;
    e = e.cause as typeof e;
  }
  return undefined;
}

/** Transport errors worth retrying: resets, refused, timeouts, sockets closed early. */
export function isRetryableNetworkError(err: unknown): boolean {
  const code = errorCode(err);
  if (!code) return false;
  if (TLS_CODES.has(code)) return false;
  return [
    "ECONNRESET",
    "ECONNREFUSED",
    "ECONNABORTED",
    "EPIPE",
    "ETIMEDOUT",
    "EHOSTUNREACH",
    "ENETUNREACH",
    "EAI_AGAIN",
    "UND_ERR_SOCKET",
    "UND_ERR_CLOSED",
    "UND_ERR_CONNECT_TIMEOUT",
    "UND_ERR_HEADERS_TIMEOUT",
    "UND_ERR_BODY_TIMEOUT",
    "UND_ERR_REQ_CONTENT_LENGTH_MISMATCH",
    "UND_ERR_RES_CONTENT_LENGTH_MISMATCH",
    "ERR_STREAM_PREMATURE_CLOSE",
    "STALLED",
  ].includes(code);
}

/**
 * TLS alerts a server sends when it refuses the client's certificate, or wants
 * one (`ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED`, `ERR_SSL_SSL/TLS_ALERT_BAD_CERTIFICATE`…).
 */
function isClientCertificateAlert(code: string | undefined): boolean {
  return (
    code !== undefined &&
    /^ERR_SSL_.*ALERT_(BAD_CERTIFICATE|CERTIFICATE_REQUIRED|UNKNOWN_CA|CERTIFICATE_UNKNOWN|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED)$/.test(
      code,
    )
  );
}

/** What a proxy said when it refused, from undici's messages. */
function proxyRefusal(err: unknown): string | undefined {
  const msg = (err as Error)?.message ?? "";
  if (/Proxy Authentication Required|Proxy response \(407\)/.test(msg)) {
    return "the proxy requires authentication (HTTP 407): give it as http://user:password@host:port";
  }
  const m = /Proxy response \((\d+)\) !== 200/.exec(msg);
  return m ? `the proxy refused the tunnel (HTTP ${m[1]})` : undefined;
}

/** Why a transport operation failed, in a few words (no host, no reference). */
export function networkReason(err: unknown): string {
  const code = errorCode(err);
  const refused = proxyRefusal(err);
  if (refused) return refused;
  if (isClientCertificateAlert(code)) {
    const alert = /alert ([a-z ]+)/i.exec((err as Error)?.message ?? "")?.[1]?.trim() ?? code;
    return `the registry refused the TLS connection (${alert}): it wants a client certificate it trusts (hosts.toml client)`;
  }
  return (() => {
    switch (code) {
      case "ECONNREFUSED":
        return "connection refused";
      case "ENOTFOUND":
        return "unknown host";
      case "EAI_AGAIN":
        return "host name lookup failed (temporary)";
      case "ECONNRESET":
        return "connection reset by peer";
      case "ETIMEDOUT":
      case "UND_ERR_CONNECT_TIMEOUT":
        return "connection timed out";
      case "UND_ERR_HEADERS_TIMEOUT":
        return "no response headers in time";
      case "EHOSTUNREACH":
      case "ENETUNREACH":
        return "network unreachable";
      case "ERR_SSL_WRONG_VERSION_NUMBER":
      case "EPROTO":
        return "TLS handshake failed (is it a plain HTTP registry? use --plain-http)";
      default:
        if (code && TLS_CODES.has(code)) {
          return `TLS certificate not trusted (${code}); use --tlscacert FILE, a hosts.toml ca, or --skip-verify`;
        }
        return (err as Error)?.message ? oneLine((err as Error).message) : String(err);
    }
  })();
}

/** A one-line explanation of a transport failure talking to `host`. */
export function networkError(ref: string, host: string, err: unknown): UnavailableError | InvalidArgumentError {
  const code = errorCode(err);
  const why = networkReason(err);
  const msg = `${ref}: cannot reach ${host}: ${why}`;
  if (code && (TLS_CODES.has(code) || isClientCertificateAlert(code)))
    return new InvalidArgumentError(msg, { cause: err });
  return new UnavailableError(msg, { cause: err });
}

/** A body that does not match what the registry or the descriptor promised. */
export function dataLoss(ref: string, what: string, why: string): DataLossError {
  return new DataLossError(`${ref}: ${what}: ${why}`);
}
