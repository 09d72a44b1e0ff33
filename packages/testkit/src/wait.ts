import { setTimeout as sleep } from "node:timers/promises";

/** Options for {@link waitFor}. */
export interface WaitForOptions {
  /** Give up after this many milliseconds (default 10 000). */
  timeoutMs?: number;
  /** Pause between two evaluations of the condition (default 50 ms). */
  intervalMs?: number;
  /** Describes what was awaited; it is the text of the error thrown on the deadline. */
  message?: string;
}

/**
 * Polls `cond` until it returns (or resolves to) `true`.
 *
 * A condition that throws counts as "not yet"; the last such error becomes the `cause`
 * of the timeout error.
 *
 * @param cond - the condition, sync or async
 * @param opts - timeout, poll interval and the message for the timeout error
 * @throws Error `waitFor timed out after <n> ms: <message>` when the deadline passes
 */
export async function waitFor(cond: () => boolean | Promise<boolean>, opts: WaitForOptions = {}): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await cond()) return;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const text = `waitFor timed out after ${timeoutMs} ms: ${opts.message ?? "condition not met"}`;
      throw lastError === undefined ? new Error(text) : new Error(text, { cause: lastError });
    }
    await sleep(Math.max(0, Math.min(intervalMs, deadline - Date.now())));
  }
}
