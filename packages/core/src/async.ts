import { SlipstreamError } from "./errors.js";

/** Default bound of one network await. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/** Throws `ABORTED` when `signal` has fired. */
export function throwIfAborted(signal: AbortSignal | undefined, what = "operation"): void {
  if (signal?.aborted) throw abortedError(signal, what);
}

/** The `ABORTED` error for a fired signal, keeping its reason as cause. */
export function abortedError(signal: AbortSignal | undefined, what: string): SlipstreamError {
  const reason: unknown = signal?.reason;
  if (SlipstreamError.is(reason)) return reason;
  return new SlipstreamError("ABORTED", `${what} aborted`, { cause: reason });
}

/**
 * Runs `fn` bounded by `timeoutMs` and the caller's `signal`. `fn` receives a signal that
 * fires on either; the call rejects with `TIMEOUT` or `ABORTED` according to which fired,
 * even if `fn` ignores its signal (bounded waits).
 */
export async function withTimeout<T>(
  what: string,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  throwIfAborted(signal, what);
  const ctl = new AbortController();
  let onAbort: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const stop = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new SlipstreamError("TIMEOUT", `${what} timed out after ${timeoutMs} ms`);
      ctl.abort(err);
      reject(err);
    }, timeoutMs);
    onAbort = () => {
      const err = abortedError(signal, what);
      ctl.abort(err);
      reject(err);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
  stop.catch(() => {});
  try {
    return await Promise.race([fn(ctl.signal), stop]);
  } catch (err) {
    // Whichever fired decides the code, even when fn rejected with its own abort error first.
    if (ctl.signal.aborted && SlipstreamError.is(ctl.signal.reason)) throw ctl.signal.reason;
    throw err;
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener("abort", onAbort);
  }
}

/** Sleeps `ms`, rejecting with `ABORTED` if `signal` fires first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortedError(signal, "sleep"));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortedError(signal, "sleep"));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Collects an async iterable into an array. */
export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}
