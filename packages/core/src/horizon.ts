/**
 * The retention horizon: how much more can be published to a bucket before its limits evict
 * what a cursor needs to resume (the point where a resume fails with `CURSOR_EXPIRED` and the
 * fold must resync). A pure function over a bucket's state, so a service can export it as a
 * metric and an operator tool can warn before a node can no longer resume.
 */
import type { WatchCursor } from "./cursor.js";
import { cursorRank, resumeWindowOk } from "./protocol.js";

/**
 * The state of a bucket's log that decides eviction. `BucketStatus` of `@slipstream/nats`
 * satisfies it. Limits of 0 or less mean "no limit".
 */
export interface RetentionState {
  /** First retained sequence (lastSeq + 1 when the log is empty). */
  firstSeq: bigint;
  lastSeq: bigint;
  /** Messages retained now. */
  messages: number;
  /** Bytes retained now. */
  bytes: number;
  /** Byte limit of the log; ≤ 0 = none. */
  maxBytes: number;
  /** Message-count limit of the log; ≤ 0 or absent = none. */
  maxMsgs?: number;
  /** Age limit in ms; 0 = none. */
  maxAgeMs: number;
  /**
   * What the log does at its byte/count limit: "old" evicts its head (a bounded log), "new"
   * refuses the write (nothing is evicted by those limits).
   */
  discard: "new" | "old";
}

/** Options of {@link retentionHorizon}. */
export interface RetentionHorizonOptions {
  /**
   * When the first message the cursor still needs (revision + 1) was published. With an age
   * limit this dates the horizon exactly; without it the age horizon is left unknown.
   */
  neededPublishedAt?: Date;
  /**
   * True when {@link neededPublishedAt} is the time of an older message (e.g. the log's first
   * one) because revision + 1 itself is gone: the time given is then a lower bound.
   * @defaultValue false
   */
  neededTimeIsLowerBound?: boolean;
  /** The clock. @defaultValue `new Date()` */
  now?: Date;
}

/**
 * Where a cursor stands against a bucket's retention:
 * - `none`: the cursor is none; a fresh start re-lists and needs no history;
 * - `ok`: the log still holds everything after the cursor;
 * - `expired`: the log's first sequence is past revision + 1: a resume fails with
 *   `CURSOR_EXPIRED` and the fold resyncs;
 * - `ahead`: the cursor is past the log's last sequence (the bucket was recreated or
 *   purged since): revisions up to the cursor would be skipped when they are reused.
 */
export type HorizonState = "none" | "ok" | "expired" | "ahead";

/** The result of {@link retentionHorizon}. */
export interface RetentionHorizon {
  readonly state: HorizonState;
  /** The cursor's revision (its rank); undefined for a none cursor. */
  readonly revision: bigint | undefined;
  /** Revisions published after the cursor (lastSeq − revision; 0 when caught up or ahead). */
  readonly behind: bigint;
  /**
   * Retained messages at or below the cursor — the slack the log evicts before it reaches
   * what the cursor needs. A lower bound (exact when the log has no interior holes).
   */
  readonly slackMessages: number;
  /**
   * How many more messages may be published before the log evicts what the cursor needs,
   * assuming every new message stays in the log; undefined when no byte or count limit
   * evicts the head (discard "new", or no such limit). 0 when expired. An estimate under
   * a byte limit (it uses the average retained message size).
   */
  readonly messagesRemaining: number | undefined;
  /** Bytes that may still be published before the byte limit evicts what the cursor needs (an estimate); undefined without one. */
  readonly bytesRemaining: number | undefined;
  /**
   * Time until the age limit evicts what the cursor needs; undefined when there is no age
   * limit, nothing is needed yet (caught up: the clock starts at the next publish) or the
   * needed message's time is unknown. 0 when expired.
   */
  readonly timeRemainingMs: number | undefined;
  /** When the age limit evicts what the cursor needs (see {@link timeRemainingMs}). */
  readonly expiresAt: Date | undefined;
  /** True when {@link timeRemainingMs} is a lower bound rather than exact. */
  readonly timeIsLowerBound: boolean;
  /** The limits that bound this horizon. */
  readonly limitedBy: readonly ("max_msgs" | "max_bytes" | "max_age")[];
}

function limited(n: number | undefined): n is number {
  return typeof n === "number" && Number.isFinite(n) && n > 0;
}

function clampToNumber(n: bigint): number {
  return n > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(n);
}

/**
 * Computes the retention horizon of `cursor` against a bucket's `state` (see
 * {@link RetentionHorizon}). Pure: no I/O, no clock unless `opts.now` is omitted.
 *
 * Model: limits evict the oldest messages first. The cursor stays resumable while the log's
 * first sequence is at most revision + 1 (see `resumeWindowOk`). With a count or byte limit
 * and discard "old", the log first fills its free room, then evicts one old message per new
 * one; the cursor survives the free room plus the retained messages at or below it. With an
 * age limit, it survives until revision + 1 is older than the limit. Rewrites of a key whose
 * history is 1, and deletes or purges, also remove old messages; they can move the first
 * sequence sooner than this model says, so alert with a margin.
 *
 * @example
 * ```ts
 * const h = retentionHorizon(await bucket.status(), store.cursor);
 * gauge.set(h.messagesRemaining ?? Infinity);
 * ```
 */
export function retentionHorizon(
  state: RetentionState,
  cursor: WatchCursor,
  opts: RetentionHorizonOptions = {},
): RetentionHorizon {
  const limitedBy: ("max_msgs" | "max_bytes" | "max_age")[] = [];
  const evictsByCount = state.discard === "old" && limited(state.maxMsgs);
  const evictsByBytes = state.discard === "old" && limited(state.maxBytes);
  const byAge = limited(state.maxAgeMs);
  if (evictsByCount) limitedBy.push("max_msgs");
  if (evictsByBytes) limitedBy.push("max_bytes");
  if (byAge) limitedBy.push("max_age");
  const none = {
    messagesRemaining: undefined,
    bytesRemaining: undefined,
    timeRemainingMs: undefined,
    expiresAt: undefined,
    timeIsLowerBound: false,
    limitedBy,
  };

  if (cursor.isNone) return { state: "none", revision: undefined, behind: 0n, slackMessages: 0, ...none };
  const rev = cursorRank(cursor);
  if (rev > state.lastSeq) return { state: "ahead", revision: rev, behind: 0n, slackMessages: 0, ...none };
  const behind = state.lastSeq - rev;
  if (!resumeWindowOk(rev, state.firstSeq)) {
    return {
      state: "expired",
      revision: rev,
      behind,
      slackMessages: 0,
      messagesRemaining: evictsByCount || evictsByBytes ? 0 : undefined,
      bytesRemaining: evictsByBytes ? 0 : undefined,
      timeRemainingMs: byAge ? 0 : undefined,
      expiresAt: undefined,
      timeIsLowerBound: false,
      limitedBy,
    };
  }

  const messages = Math.max(0, state.messages);
  // Retained at or below the cursor: at least all retained minus the most that can lie above it.
  const atMostAbove = clampToNumber(behind);
  const span = rev >= state.firstSeq ? clampToNumber(rev - state.firstSeq + 1n) : 0;
  const slack = Math.max(0, Math.min(messages - atMostAbove, span, messages));
  const avg = messages > 0 ? state.bytes / messages : undefined;

  let messagesRemaining: number | undefined;
  let bytesRemaining: number | undefined;
  if (evictsByCount) messagesRemaining = Math.max(0, (state.maxMsgs as number) - messages) + slack;
  if (evictsByBytes) {
    const slackBytes = avg === undefined ? 0 : Math.floor(slack * avg);
    bytesRemaining = Math.max(0, state.maxBytes - state.bytes) + slackBytes;
    if (avg !== undefined && avg > 0) {
      const byBytes = Math.floor(bytesRemaining / avg);
      messagesRemaining = messagesRemaining === undefined ? byBytes : Math.min(messagesRemaining, byBytes);
    }
  }

  let timeRemainingMs: number | undefined;
  let expiresAt: Date | undefined;
  const timeIsLowerBound = opts.neededTimeIsLowerBound === true;
  if (byAge && behind > 0n && opts.neededPublishedAt !== undefined) {
    expiresAt = new Date(opts.neededPublishedAt.getTime() + state.maxAgeMs);
    const now = (opts.now ?? new Date()).getTime();
    timeRemainingMs = Math.max(0, expiresAt.getTime() - now);
  }
  return {
    state: "ok",
    revision: rev,
    behind,
    slackMessages: slack,
    messagesRemaining,
    bytesRemaining,
    timeRemainingMs,
    expiresAt,
    timeIsLowerBound: timeRemainingMs !== undefined && timeIsLowerBound,
    limitedBy,
  };
}
