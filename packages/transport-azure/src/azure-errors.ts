/**
 * Mapping the Azure SDK's failures onto slipstream's error codes: a fired deadline or signal
 * keeps its own code (`TIMEOUT`/`ABORTED`), everything else the service or the network says
 * is `BACKEND` with the HTTP status and the storage error code in the message and the
 * SDK's error as `cause`.
 */
import { abortedError, SlipstreamError } from "@slipstream/core";

/** The fields of the SDK's `RestError` this package reads (duck-typed: no runtime SDK import). */
interface RestErrorLike {
  name?: unknown;
  message?: unknown;
  statusCode?: unknown;
  code?: unknown;
  details?: { errorCode?: unknown };
}

/** The HTTP status of an SDK error, when the service answered. */
export function httpStatus(err: unknown): number | undefined {
  const status = (err as RestErrorLike | null)?.statusCode;
  return typeof status === "number" ? status : undefined;
}

/**
 * The storage error code (`BlobNotFound`, `BlobAlreadyExists`, `ConditionNotMet`, …) or the
 * transport-level code (`REQUEST_SEND_ERROR`, `ECONNREFUSED`). HEAD-style answers carry it
 * only in `details.errorCode`.
 */
export function azureErrorCode(err: unknown): string | undefined {
  const e = err as RestErrorLike | null;
  if (typeof e?.code === "string") return e.code;
  const fromHeader = e?.details?.errorCode;
  return typeof fromHeader === "string" ? fromHeader : undefined;
}

/** True for "the blob is not there" (and not: the container is missing, which is a misconfiguration). */
export function isBlobNotFound(err: unknown): boolean {
  if (httpStatus(err) !== 404) return false;
  const code = azureErrorCode(err);
  return code === undefined || code === "BlobNotFound";
}

/**
 * Converts whatever an SDK call threw into a SlipstreamError: SlipstreamErrors pass through;
 * when `signal` fired, its reason (`TIMEOUT`/`ABORTED`) wins over the SDK's AbortError.
 */
export function toSlipstreamError(err: unknown, what: string, signal?: AbortSignal): SlipstreamError {
  if (SlipstreamError.is(err)) return err;
  if (signal?.aborted) return abortedError(signal, `azure blob store: ${what}`);
  const status = httpStatus(err);
  const code = azureErrorCode(err);
  const detail = [status === undefined ? undefined : `HTTP ${status}`, code].filter(Boolean).join(" ");
  // No signal of ours fired, yet the SDK reports an abort: the response stream was cut
  // (the SDK turns a connection closed mid-body into an AbortError).
  const cut = (err as RestErrorLike | null)?.name === "AbortError";
  const raw = cut
    ? "the connection closed before the answer was complete"
    : err instanceof Error
      ? err.message
      : String(err);
  const message = raw.split("\n")[0] ?? "";
  return new SlipstreamError(
    "BACKEND",
    `azure blob store: ${what} failed${detail ? ` (${detail})` : ""}${message ? `: ${message}` : ""}`,
    { cause: err },
  );
}
