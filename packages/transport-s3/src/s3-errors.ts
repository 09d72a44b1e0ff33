/**
 * Reading the AWS SDK's errors: which S3 answers are expected outcomes (absent object, lost
 * precondition) and which are backend failures. Matching is on the error name (S3's error
 * code) and the HTTP status, never on messages.
 */
import { SlipstreamError } from "@slipstream/core";

/** The S3 error code (SDK error `name`) and HTTP status of an SDK error, when it has them. */
export interface S3ErrorInfo {
  readonly code: string | undefined;
  readonly status: number | undefined;
}

/** Extracts {@link S3ErrorInfo} from anything thrown by `S3Client.send`. */
export function s3ErrorInfo(err: unknown): S3ErrorInfo {
  if (typeof err !== "object" || err === null) return { code: undefined, status: undefined };
  const e = err as { name?: unknown; code?: unknown; Code?: unknown; $metadata?: { httpStatusCode?: unknown } };
  // An SDK service error carries its S3 code as `Code`/`name`; a network error its errno code.
  const fromService = typeof e.$metadata === "object" && e.$metadata !== null;
  const code =
    typeof e.Code === "string"
      ? e.Code
      : fromService && typeof e.name === "string"
        ? e.name
        : typeof e.code === "string"
          ? e.code
          : undefined;
  const status = typeof e.$metadata?.httpStatusCode === "number" ? e.$metadata.httpStatusCode : undefined;
  return { code, status };
}

/** A missing object (not a missing bucket, which is a configuration error). */
export function isMissingObject(err: unknown): boolean {
  const { code, status } = s3ErrorInfo(err);
  if (code === "NoSuchBucket") return false;
  return code === "NoSuchKey" || code === "NotFound" || status === 404;
}

/**
 * A lost conditional write: 412 PreconditionFailed (the condition did not hold) or 409
 * ConditionalRequestConflict (a concurrent conditional write to the same key won).
 */
export function isPreconditionLost(err: unknown): boolean {
  const { code, status } = s3ErrorInfo(err);
  return code === "PreconditionFailed" || status === 412 || code === "ConditionalRequestConflict";
}

/** A range request on an empty object (S3 answers 416 InvalidRange). */
export function isInvalidRange(err: unknown): boolean {
  const { code, status } = s3ErrorInfo(err);
  return code === "InvalidRange" || status === 416;
}

/** A multipart upload that no longer exists (already aborted or completed). */
export function isNoSuchUpload(err: unknown): boolean {
  const { code, status } = s3ErrorInfo(err);
  return code === "NoSuchUpload" || status === 404;
}

/**
 * `BACKEND` for a failed S3 call, naming the operation, the S3 code and the HTTP status and
 * keeping the SDK error as `cause`. SlipstreamErrors (timeouts, aborts, validation) pass through.
 */
export function backendError(what: string, err: unknown): SlipstreamError {
  if (SlipstreamError.is(err)) return err;
  const { code, status } = s3ErrorInfo(err);
  const detail = err instanceof Error ? err.message : String(err);
  const tags = [code, status === undefined ? undefined : `HTTP ${status}`].filter(Boolean).join(", ");
  return new SlipstreamError("BACKEND", `${what} failed${tags ? ` (${tags})` : ""}: ${detail}`, { cause: err });
}
