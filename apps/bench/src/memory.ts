/**
 * Peak RSS by sampling `process.memoryUsage().rss` (and a child's `/proc/<pid>/status`)
 * on a timer, split into named phases. On Linux each phase also records its peak of
 * anonymous memory (`RssAnon`: heaps, buffers, LevelDB's memtables and caches) apart from
 * file-backed pages (`RssFile`: code, and the table files LevelDB maps to read them, which
 * the kernel can drop at any time and which grow with the size of the fold read).
 */
import { readFileSync } from "node:fs";
import type { MemoryFigures } from "./result.js";

/** Samples RSS every `intervalMs` until {@link RssSampler.stop}. */
export class RssSampler {
  readonly #timer: NodeJS.Timeout;
  readonly #rssAtStart = process.memoryUsage().rss;
  readonly #byPhase: Record<string, number> = {};
  readonly #anonByPhase: Record<string, number> = {};
  readonly #fileByPhase: Record<string, number> = {};
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
   * is not the garbage of the one before — unless `collect` is false: a forced collection
   * also throws away V8's compiled code and type feedback of what is not running, so the
   * short phases of a timed series (the rounds of transfer, bootstrap, resume, download)
   * collect once before the series, not between its phases (the peak of such a phase may
   * then include garbage of the one before it: over-reported, never under).
   */
  phase(name: string, opts: { collect?: boolean } = {}): void {
    this.sample();
    if (opts.collect !== false) (globalThis as { gc?: () => void }).gc?.();
    this.#phase = name;
    this.sample();
  }

  /** Takes one sample (also called by the timer). */
  sample(): void {
    // One read of /proc/self/status gives all three (process.memoryUsage() also walks the
    // heap's spaces: ~1 ms a call on a busy process, a few % of a benchmark's main thread).
    const split = rssSplit("self");
    const rss = split?.rss ?? process.memoryUsage.rss();
    if (rss > this.#peak) this.#peak = rss;
    if (rss > (this.#byPhase[this.#phase] ?? 0)) this.#byPhase[this.#phase] = rss;
    if (split) {
      if (split.anon > (this.#anonByPhase[this.#phase] ?? 0)) this.#anonByPhase[this.#phase] = split.anon;
      if (split.file > (this.#fileByPhase[this.#phase] ?? 0)) this.#fileByPhase[this.#phase] = split.file;
    }
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
      ...(Object.keys(this.#anonByPhase).length > 0
        ? { peakRssAnonByPhase: { ...this.#anonByPhase }, peakRssFileByPhase: { ...this.#fileByPhase } }
        : {}),
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

/** Resident bytes of a process, anonymous and file-backed (`/proc/<pid>/status`), Linux only. */
function rssSplit(pid: number | "self"): { rss: number; anon: number; file: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    const anon = /^RssAnon:\s+(\d+)\s+kB/m.exec(status);
    const file = /^RssFile:\s+(\d+)\s+kB/m.exec(status);
    return rss && anon && file
      ? { rss: Number(rss[1]) * 1024, anon: Number(anon[1]) * 1024, file: Number(file[1]) * 1024 }
      : undefined;
  } catch {
    return undefined;
  }
}
