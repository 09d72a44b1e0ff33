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
  const timer = setTimeout(
    () => ctl.abort(new SlipstreamError("TIMEOUT", `${what} timed out after ${timeoutMs} ms`)),
    timeoutMs,
  );
  const onAbort = () => ctl.abort(abortedError(signal, what));
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    return await runUnder(ctl.signal, fn);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}

/**
 * Runs `fn(signal)` and settles as soon as `signal` fires, even if `fn` ignores it: the
 * call then rejects with the signal's reason when that is a SlipstreamError (so the code
 * says which deadline fired), else with `fn`'s own error.
 */
export async function runUnder<T>(signal: AbortSignal, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  let onFire: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    onFire = () => reject(signal.reason);
    if (signal.aborted) onFire();
    else signal.addEventListener("abort", onFire, { once: true });
  });
  stop.catch(() => {});
  try {
    return await Promise.race([fn(signal), stop]);
  } catch (err) {
    // Whichever deadline fired decides the code, even when fn rejected with its own abort error first.
    if (signal.aborted && SlipstreamError.is(signal.reason)) throw signal.reason;
    throw err;
  } finally {
    if (onFire) signal.removeEventListener("abort", onFire);
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

/**
 * Runs `fn` over `items` with at most `limit` calls in flight (items are started in order).
 * After the first failure no new item starts; the calls in flight are awaited, then the
 * first failure is thrown. Resolves once every call has settled.
 * @param limit - at least 1
 */
export async function forEachConcurrent<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  if (!Number.isInteger(limit) || limit < 1) throw new TypeError("limit must be an integer ≥ 1");
  let next = 0;
  let failed: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failed === undefined && next < items.length) {
      const i = next++;
      try {
        await fn(items[i] as T, i);
      } catch (error) {
        failed ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed) throw failed.error;
}
