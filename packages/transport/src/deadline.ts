/**
 * Bounded waits for streamed transfers (invariant 7): a transfer is aborted when no byte
 * has moved for `idleMs`, or when it has run longer than `overallMs`, or when the caller's
 * signal fires — and the error says which.
 */
import { abortedError, runUnder, SlipstreamError, throwIfAborted } from "@slipstream/core";

/** A deadline for one streamed transfer. */
export interface TransferDeadline {
  /** Fires on idle timeout, overall timeout or the caller's abort. */
  readonly signal: AbortSignal;
  /** Records progress: re-arms the idle timer (for `idleMs`, or `ms` when given). */
  touch(ms?: number): void;
  /**
   * Runs `fn` under the deadline: rejects with `TIMEOUT`/`ABORTED` as soon as the deadline
   * fires, even when `fn` ignores the signal.
   */
  run<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T>;
  /** Clears the timers; call when the transfer is over. */
  dispose(): void;
}

/** Options of {@link transferDeadline}. */
export interface TransferDeadlineOptions {
  idleMs: number;
  overallMs: number;
  signal?: AbortSignal;
}

/** Starts a deadline for a streamed transfer called `what`. */
export function transferDeadline(what: string, opts: TransferDeadlineOptions): TransferDeadline {
  throwIfAborted(opts.signal, what);
  const ctl = new AbortController();
  let idle: NodeJS.Timeout | undefined;
  const fire = (err: SlipstreamError): void => {
    if (!ctl.signal.aborted) ctl.abort(err);
  };
  const armIdle = (ms = opts.idleMs): void => {
    clearTimeout(idle);
    idle = setTimeout(() => fire(new SlipstreamError("TIMEOUT", `${what} stalled: no progress for ${ms} ms`)), ms);
  };
  const overall = Number.isFinite(opts.overallMs)
    ? setTimeout(
        () => fire(new SlipstreamError("TIMEOUT", `${what} timed out after ${opts.overallMs} ms`)),
        opts.overallMs,
      )
    : undefined;
  const onAbort = (): void => fire(abortedError(opts.signal, what));
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  armIdle();

  const dispose = (): void => {
    clearTimeout(idle);
    clearTimeout(overall);
    opts.signal?.removeEventListener("abort", onAbort);
  };
  ctl.signal.addEventListener("abort", () => {
    clearTimeout(idle);
    clearTimeout(overall);
  });

  return {
    signal: ctl.signal,
    touch: (ms?: number) => {
      if (!ctl.signal.aborted) armIdle(ms);
    },
    async run<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
      return runUnder(ctl.signal, fn);
    },
    dispose,
  };
}

/** Yields `source`'s chunks, calling `onChunk` for each one first (progress, deadlines). */
export async function* tap(
  source: AsyncIterable<Uint8Array>,
  onChunk: (chunk: Uint8Array) => void,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    onChunk(chunk);
    yield chunk;
  }
}
