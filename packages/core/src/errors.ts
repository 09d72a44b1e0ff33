/**
 * The closed set of error codes slipstream raises. Codes are stable strings: match on them,
 * never on messages.
 *
 * `MASS_DELETE_REFUSED`: a resync or an artifact import would delete or drop more of a fold
 * than its mass-delete guard allows; the fold is unchanged. `SCOPE_NOT_COVERED`: an
 * artifact (or a fold) holds a narrower scope of keys than the node or export asking for
 * it needs; nothing was written.
 */
export const ErrorCodes = [
  "NOT_CONNECTED",
  "CONNECTION_FAILED",
  "ALREADY_EXISTS",
  "REVISION_MISMATCH",
  "CURSOR_EXPIRED",
  "TIMEOUT",
  "WATCH_FAILED",
  "SNAPSHOT_CORRUPTED",
  "SNAPSHOT_INVALID_FORMAT",
  "ARTIFACT_INVALID",
  "BACKEND",
  "INVALID_ARGUMENT",
  "ABORTED",
  "MASS_DELETE_REFUSED",
  "SCOPE_NOT_COVERED",
  /** An importer that trusts signing keys met an artifact without a signature (and `allowUnsigned` is off). */
  "ARTIFACT_UNSIGNED",
  /** An artifact's signature does not verify: the manifest was changed, replaced or re-encoded after signing. */
  "SIGNATURE_INVALID",
  /** An artifact is signed by a key the importer does not trust. */
  "SIGNER_UNTRUSTED",
  /** An artifact is signed by a trusted key past its `notAfter` (now, or the artifact's `createdAt`). */
  "SIGNER_EXPIRED",
  /** An encrypted artifact's data key cannot be unwrapped or a chunk fails its authentication (wrong or missing key). */
  "DECRYPTION_FAILED",
  /** A downloaded chunk still disagrees with the hash its manifest declares after the allowed refetches. */
  "CHUNK_CORRUPTED",
] as const;

/** One of {@link ErrorCodes}. */
export type ErrorCode = (typeof ErrorCodes)[number];

/**
 * The codes of a refusal of an artifact itself rather than of the operation: an invalid or
 * hostile artifact, a missing, bad, untrusted or expired signature, a payload that cannot
 * be decrypted, a chunk that stays corrupt. Retrying the same artifact cannot succeed.
 */
export const ARTIFACT_REFUSAL_CODES: readonly ErrorCode[] = [
  "ARTIFACT_INVALID",
  "ARTIFACT_UNSIGNED",
  "SIGNATURE_INVALID",
  "SIGNER_UNTRUSTED",
  "SIGNER_EXPIRED",
  "DECRYPTION_FAILED",
  "CHUNK_CORRUPTED",
];

/** True when `err` is a refusal of the artifact itself (one of {@link ARTIFACT_REFUSAL_CODES}). */
export function isArtifactRefusal(err: unknown): err is SlipstreamError {
  return SlipstreamError.is(err) && ARTIFACT_REFUSAL_CODES.includes(err.code);
}

// A registry-wide symbol, so two copies of @slipstream/core in one process still agree
// on what a SlipstreamError is (instanceof alone breaks across duplicate packages).
const BRAND: unique symbol = Symbol.for("@slipstream/core/SlipstreamError") as never;

/**
 * The single error class of slipstream. Every failure the library reports carries a stable
 * {@link ErrorCode}; the underlying error, when there is one, is kept in `cause`.
 *
 * @example
 * ```ts
 * try { await watch.done } catch (err) {
 *   if (SlipstreamError.is(err, "CURSOR_EXPIRED")) resync();
 * }
 * ```
 */
export class SlipstreamError extends Error {
  /** The stable code of this error. */
  readonly code: ErrorCode;
  /** @internal brand checked by {@link SlipstreamError.is}. */
  readonly [BRAND] = true;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "SlipstreamError";
    this.code = code;
  }

  /**
   * True when `err` is a SlipstreamError (from any copy of this package) and, if `code` is
   * given, carries that code.
   */
  static is(err: unknown, code?: ErrorCode): err is SlipstreamError {
    if (typeof err !== "object" || err === null) return false;
    if ((err as Record<symbol, unknown>)[BRAND] !== true) return false;
    return code === undefined || (err as SlipstreamError).code === code;
  }

  /** Wraps any thrown value: SlipstreamErrors pass through, others get `code` and `cause`. */
  static wrap(err: unknown, code: ErrorCode, message?: string): SlipstreamError {
    if (SlipstreamError.is(err)) return err;
    const detail = err instanceof Error ? err.message : String(err);
    return new SlipstreamError(code, message ? `${message}: ${detail}` : detail, { cause: err });
  }
}

/** Shorthand for `new SlipstreamError("ARTIFACT_INVALID", message)`. */
export function artifactInvalid(message: string, cause?: unknown): SlipstreamError {
  return new SlipstreamError("ARTIFACT_INVALID", message, { cause });
}

/** Shorthand for `new SlipstreamError("INVALID_ARGUMENT", message)`. */
export function invalidArgument(message: string, cause?: unknown): SlipstreamError {
  return new SlipstreamError("INVALID_ARGUMENT", message, { cause });
}
