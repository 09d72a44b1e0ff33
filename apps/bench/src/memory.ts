/**
 * Peak RSS by sampling `process.memoryUsage().rss` (and a child's `/proc/<pid>/status`)
 * on a timer, split into named phases.
 */
import { readFileSync } from "node:fs";
import type { MemoryFigures } from "./result.js";

/** Samples RSS every `intervalMs` until {@link RssSampler.stop}. */
export class RssSampler {
  readonly #timer: NodeJS.Timeout;
  readonly #rssAtStart = process.memoryUsage().rss;
  readonly #byPhase: Record<string, number> = {};
  #phase = "setup";
  #peak = this.#rssAtStart;
  #childPid: number | undefined;
  #childPeak: number | undefined;

  /** Starts sampling at once. */
  constructor(intervalMs = 20) {
    this.#timer = setInterval(() => this.sample(), intervalMs);
    this.#timer.unref();
    this.sample();
  }

  /** Also samples this child process (e.g. the benchmark's nats-server); Linux only. */
  watchChild(pid: number | undefined): void {
    this.#childPid = pid;
    this.sample();
  }

  /**
   * Samples once now and attributes further samples to `name`. With `--expose-gc` (as the
   * benchmark child processes run) a full collection comes first, so the new phase's peak
   * is not the garbage of the one before.
   */
  phase(name: string): void {
    this.sample();
    (globalThis as { gc?: () => void }).gc?.();
    this.#phase = name;
    this.sample();
  }

  /** Takes one sample (also called by the timer). */
  sample(): void {
    const rss = process.memoryUsage().rss;
    if (rss > this.#peak) this.#peak = rss;
    if (rss > (this.#byPhase[this.#phase] ?? 0)) this.#byPhase[this.#phase] = rss;
    if (this.#childPid !== undefined) {
      const child = childRss(this.#childPid);
      if (child !== undefined && child > (this.#childPeak ?? 0)) this.#childPeak = child;
    }
  }

  /** Stops sampling and returns the figures. */
  stop(): MemoryFigures {
    this.sample();
    clearInterval(this.#timer);
    return {
      rssAtStart: this.#rssAtStart,
      peakRss: this.#peak,
      processMaxRss: process.resourceUsage().maxRSS * 1024,
      peakRssByPhase: { ...this.#byPhase },
      ...(this.#childPeak !== undefined ? { natsServerPeakRss: this.#childPeak } : {}),
    };
  }
}

/** VmRSS of a process in bytes, or undefined when unreadable (not Linux, process gone). */
function childRss(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}
