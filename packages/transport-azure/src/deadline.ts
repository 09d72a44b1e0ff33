/**
 * Bounded waits (invariant 7) for calls that stream: the deadline fires when the wait it is
 * armed for makes no progress for `idleMs`, or when the caller's signal fires. Time spent in
 * the caller's own hands (between chunks it consumes) is not counted.
 */
import { abortedError, runUnder, SlipstreamError } from "@slipstream/core";

/** An idle deadline for one streamed call. */
export class IdleDeadline {
  readonly #ctl = new AbortController();
  readonly #what: string;
  readonly #idleMs: number;
  readonly #caller: AbortSignal | undefined;
  readonly #onCallerAbort: () => void;
  #timer: NodeJS.Timeout | undefined;

  /** Starts armed. */
  constructor(what: string, idleMs: number, signal?: AbortSignal) {
    this.#what = what;
    this.#idleMs = idleMs;
    this.#caller = signal;
    this.#onCallerAbort = () => this.#fire(abortedError(signal, what));
    if (signal?.aborted) this.#onCallerAbort();
    else signal?.addEventListener("abort", this.#onCallerAbort, { once: true });
    this.arm();
  }

  /** Fires on an idle timeout (`TIMEOUT`) or the caller's abort (`ABORTED`); its reason is that error. */
  get signal(): AbortSignal {
    return this.#ctl.signal;
  }

  /** (Re)starts the idle timer: progress was made, or a new wait begins. */
  arm(): void {
    clearTimeout(this.#timer);
    if (this.#ctl.signal.aborted) return;
    this.#timer = setTimeout(
      () => this.#fire(new SlipstreamError("TIMEOUT", `${this.#what} stalled: no progress for ${this.#idleMs} ms`)),
      this.#idleMs,
    );
  }

  /** Stops the idle timer (the caller holds the data; its pace is not ours to bound). */
  disarm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Runs `fn`, rejecting with the deadline's error as soon as it fires, even if `fn` ignores the signal. */
  run<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    return runUnder(this.#ctl.signal, fn);
  }

  /** Clears the timer and stops listening to the caller's signal. Idempotent. */
  dispose(): void {
    this.disarm();
    this.#caller?.removeEventListener("abort", this.#onCallerAbort);
  }

  #fire(err: SlipstreamError): void {
    clearTimeout(this.#timer);
    if (!this.#ctl.signal.aborted) this.#ctl.abort(err);
  }
}
