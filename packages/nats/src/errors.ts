/**
 * Maps nats.js failures onto slipstream's error codes. nats.js error classes are matched by
 * `name` and JetStream API codes, so a second copy of the client library still maps.
 */
import { SlipstreamError } from "@slipstream/core";

/** JetStream API error codes we act on. */
export const JS_CODES = {
  wrongLastSequence: 10071,
  wrongLastSequenceUnknown: 10164,
  streamNotFound: 10059,
  consumerNotFound: 10014,
  streamNameInUse: 10058,
  noMessageFound: 10037,
} as const;

/** The JetStream API error code carried by `err`, if any. */
export function jsApiCode(err: unknown): number | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  try {
    const code = (err as { code?: unknown }).code;
    if (typeof code === "number" && code >= 10000) return code;
    const api = (err as { apiError?: () => { err_code?: number } }).apiError?.();
    if (typeof api?.err_code === "number") return api.err_code;
  } catch {
    // not an API error
  }
  return undefined;
}

/** True when a CAS publish failed because the subject's last sequence differed. */
export function isWrongLastSequence(err: unknown): boolean {
  const code = jsApiCode(err);
  if (code === JS_CODES.wrongLastSequence || code === JS_CODES.wrongLastSequenceUnknown) return true;
  return err instanceof Error && /wrong last sequence/i.test(err.message);
}

function errName(err: unknown): string {
  return err instanceof Error ? err.name : "";
}

/** True for a nats.js authentication / authorization failure. */
export function isAuthError(err: unknown): boolean {
  const name = errName(err);
  if (name === "AuthorizationError" || name === "UserAuthenticationExpiredError") return true;
  return err instanceof Error && /authoriz|authenticat/i.test(err.message);
}

/**
 * Wraps any failure of `what` into a SlipstreamError: closed connection → NOT_CONNECTED,
 * auth/connection errors → CONNECTION_FAILED, request timeouts → TIMEOUT, everything else →
 * BACKEND. SlipstreamErrors pass through unchanged.
 */
export function mapNatsError(err: unknown, what: string): SlipstreamError {
  if (SlipstreamError.is(err)) return err;
  const name = errName(err);
  const detail = err instanceof Error ? err.message : String(err);
  switch (name) {
    case "ClosedConnectionError":
    case "DrainingConnectionError":
      return new SlipstreamError("NOT_CONNECTED", `${what}: the NATS connection is closed`, { cause: err });
    case "AuthorizationError":
    case "UserAuthenticationExpiredError":
      return new SlipstreamError("CONNECTION_FAILED", `${what}: NATS refused the credentials (${detail})`, {
        cause: err,
      });
    case "ConnectionError":
      return new SlipstreamError("CONNECTION_FAILED", `${what}: ${detail}`, { cause: err });
    case "TimeoutError":
      return new SlipstreamError("TIMEOUT", `${what}: the NATS request timed out`, { cause: err });
    case "NoResponders":
      return new SlipstreamError("BACKEND", `${what}: no JetStream responders (is JetStream enabled on the server?)`, {
        cause: err,
      });
    case "InvalidArgumentError":
      // e.g. a value larger than the server's max_payload: bad input, not a server fault.
      return new SlipstreamError("INVALID_ARGUMENT", `${what}: ${detail}`, { cause: err });
    case "PermissionViolationError":
      return new SlipstreamError("BACKEND", `${what}: permission denied (${detail})`, { cause: err });
    default:
      return new SlipstreamError("BACKEND", `${what}: ${detail}`, { cause: err });
  }
}
