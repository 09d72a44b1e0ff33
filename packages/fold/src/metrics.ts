/**
 * A metrics snapshot of a running {@link AppliedWatch}: what an exporter (Prometheus,
 * OpenTelemetry, a health endpoint) reads. Built only from the watch's public `cursor` and
 * `stats`, so it adds no work to the watch's hot path.
 */
import { cursorRank } from "@slipstream/core";
import type { AppliedWatch, AppliedWatchStats } from "./watch-applied.js";

/** Options of {@link appliedWatchMetrics}. */
export interface AppliedWatchMetricsOptions {
  /**
   * The source's newest revision (e.g. `(await bucket.status()).lastSeq` on NATS). With it
   * the snapshot reports the lag; the watch itself does not know the head.
   */
  head?: bigint;
}

/** One reading of a watch's progress. Revisions are bigints; counters are numbers. */
export interface AppliedWatchMetrics extends AppliedWatchStats {
  /** The applied (and committed) cursor's revision; 0 when the cursor is none. */
  readonly cursorRevision: bigint;
  /** True when nothing has been applied yet (the cursor is none). */
  readonly cursorNone: boolean;
  /** The head given in the options, when given. */
  readonly head: bigint | undefined;
  /** Revisions published but not yet applied (head − cursor, never negative); undefined without a head. */
  readonly lag: bigint | undefined;
}

/**
 * Reads a metrics snapshot of `watch`: cursor, counters and, given the source's head, the
 * lag. Cheap and synchronous; call it on every scrape.
 *
 * @example
 * ```ts
 * const m = appliedWatchMetrics(watch, { head: (await bucket.status()).lastSeq });
 * lagGauge.set(Number(m.lag ?? 0n));
 * ```
 */
export function appliedWatchMetrics(
  watch: Pick<AppliedWatch, "cursor" | "stats">,
  opts: AppliedWatchMetricsOptions = {},
): AppliedWatchMetrics {
  const cursor = watch.cursor;
  const rev = cursorRank(cursor);
  const head = opts.head;
  return {
    ...watch.stats,
    cursorRevision: rev,
    cursorNone: cursor.isNone,
    head,
    lag: head === undefined ? undefined : head > rev ? head - rev : 0n,
  };
}
