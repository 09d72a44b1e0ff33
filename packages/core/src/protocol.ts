/**
 * The protocol decision kernels: pure functions that decide the safety-critical questions,
 * kept apart from I/O so they can be tested exhaustively.
 */

import type { WatchCursor } from "./cursor.js";
import { SlipstreamError } from "./errors.js";
import { MAX_REVISION } from "./version.js";

/**
 * Never resume silently across a gap: resuming after `revision` is sound iff the stream
 * still holds revision + 1, i.e. `firstSeq <= revision + 1`. An empty stream reports
 * `firstSeq = lastSeq + 1`, which is sound for a cursor at `lastSeq`.
 */
export function resumeWindowOk(revision: bigint, firstSeq: bigint): boolean {
  return firstSeq <= revision + 1n;
}

/**
 * The first stream sequence a resume after `revision` asks for (revision + 1). Refuses to
 * wrap past 2^64 − 1 to 0 (which would replay the whole stream as if it were a delta).
 */
export function resumeStartSequence(revision: bigint): bigint {
  if (revision < 0n) throw new SlipstreamError("INVALID_ARGUMENT", `negative revision ${revision}`);
  if (revision >= MAX_REVISION) {
    throw new SlipstreamError("INVALID_ARGUMENT", "resume revision is 2^64-1; refusing to wrap to 0");
  }
  return revision + 1n;
}

/**
 * Live floor guard: a delivered revision that jumps past `frontier + 1` may mean retention
 * evicted what lay between. Returns true when the jump must be checked against the stream's
 * first sequence (see {@link liveGapOk}).
 */
export function liveGapSuspect(frontier: bigint, delivered: bigint): boolean {
  return delivered > frontier + 1n;
}

/**
 * A gapped live delivery is benign (the missing revisions were other subjects or superseded
 * history) iff the stream still retains everything after `frontier`.
 */
export function liveGapOk(frontier: bigint, firstSeq: bigint): boolean {
  return resumeWindowOk(frontier, firstSeq);
}

/**
 * The rank that orders artifacts: the cursor's revision, 0 for none, and for non-8-byte
 * tokens the big-endian integer of their bytes.
 */
export function cursorRank(cursor: WatchCursor): bigint {
  if (cursor.isNone) return 0n;
  const rev = cursor.revision;
  if (rev !== undefined) return rev;
  let rank = 0n;
  for (const b of cursor.version.bytes) rank = (rank << 8n) | BigInt(b);
  return rank;
}

/**
 * The published pointer only moves forward: a candidate may replace the current pointer iff
 * there is none or it is unreadable (`currentRank` undefined), or the candidate's rank is at
 * least the current one.
 */
export function pointerPublishAllowed(currentRank: bigint | undefined, candidateRank: bigint): boolean {
  return currentRank === undefined || candidateRank >= currentRank;
}

/** Inputs of {@link payloadPrunable}. */
export interface PrunableInput {
  /** Rank parsed from the payload's name; undefined when the name is not ours. */
  payloadRank: bigint | undefined;
  /** Rank of the current pointer; undefined when it is missing or unreadable. */
  pointerRank: bigint | undefined;
  /** True when the pointer names this payload. */
  isPointerTarget: boolean;
  /** When the payload was last modified (ms since epoch). */
  lastModifiedMs: number;
  /** Now (ms since epoch). */
  nowMs: number;
  /** Payloads younger than this are kept. */
  graceMs: number;
}

/**
 * Pruning deletes only payloads strictly below the pointer, never its target, never objects
 * it cannot name, and only when older than the grace period. No pointer → nothing is pruned.
 */
export function payloadPrunable(input: PrunableInput): boolean {
  const { payloadRank, pointerRank, isPointerTarget, lastModifiedMs, nowMs, graceMs } = input;
  if (payloadRank === undefined || pointerRank === undefined || isPointerTarget) return false;
  if (!(payloadRank < pointerRank)) return false;
  const cutoff = Math.max(Number.MIN_SAFE_INTEGER, nowMs - Math.max(0, graceMs));
  return lastModifiedMs <= cutoff;
}
