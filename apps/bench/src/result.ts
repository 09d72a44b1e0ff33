/**
 * The shape every benchmark returns: a baseline, our figure, their ratio, correctness
 * checks and memory.
 */

/** One measured figure. */
export interface Figure {
  /** What was measured, e.g. `"nats.js ordered consumer"`. */
  readonly label: string;
  /** The number, in `unit`. */
  readonly value: number;
  /** `"msg/s"`, `"entries/s"`, `"ms"`, … */
  readonly unit: string;
}

/** A correctness check; a failed one makes the run exit with code 1. */
export interface Check {
  readonly name: string;
  readonly expected: string | number;
  readonly actual: string | number;
  readonly ok: boolean;
}

/** Peak resident set sizes seen while a benchmark ran (bytes). */
export interface MemoryFigures {
  /** RSS of this process when the benchmark started. */
  readonly rssAtStart: number;
  /** Highest sampled RSS of this process over the whole benchmark. */
  readonly peakRss: number;
  /**
   * The kernel's high-water mark of this process's RSS (`process.resourceUsage().maxRSS`):
   * exact, but for the whole process lifetime, so per benchmark only in a child process.
   */
  readonly processMaxRss: number;
  /** Highest sampled RSS per phase (`baseline`, `ours`, `setup`, …). */
  readonly peakRssByPhase: Readonly<Record<string, number>>;
  /**
   * Highest sampled anonymous resident memory per phase (Linux `RssAnon`): what the process
   * allocated, without the file pages (code, LevelDB's mapped table files) the kernel may drop.
   */
  readonly peakRssAnonByPhase?: Readonly<Record<string, number>>;
  /** Highest sampled file-backed resident memory per phase (Linux `RssFile`). */
  readonly peakRssFileByPhase?: Readonly<Record<string, number>>;
  /** Highest sampled RSS of the benchmark's nats-server child process, when it had one (Linux only). */
  readonly natsServerPeakRss?: number;
}

/** What one benchmark reports. */
export interface BenchResult {
  /** Short id: `fold`, `resume`, `hydrate`, `transfer`, `bootstrap`. */
  readonly id: string;
  /** One line saying what is compared. */
  readonly title: string;
  readonly baseline: Figure;
  readonly ours: Figure;
  /**
   * Ours relative to the baseline, always "higher is better": for rates ours / baseline, for
   * durations baseline / ours. 1 = parity; 0.5 = half the baseline's speed; 10 = ten times faster.
   */
  readonly ratio: number;
  /** Sizes and secondary figures (phase timings, bytes per entry, …). */
  readonly details: Readonly<Record<string, number | string>>;
  readonly checks: readonly Check[];
  readonly memory: MemoryFigures;
  /** Wall time of the whole benchmark, setup included (ms). */
  readonly wallMs: number;
}

/** Builds a {@link Check}; numbers, bigints and strings compare by their decimal text. */
export function check(name: string, expected: string | number | bigint, actual: string | number | bigint): Check {
  const e = typeof expected === "bigint" ? expected.toString() : expected;
  const a = typeof actual === "bigint" ? actual.toString() : actual;
  return { name, expected: e, actual: a, ok: String(e) === String(a) };
}

/** Rate ratio (higher is better): ours / baseline. */
export function rateRatio(ours: number, baseline: number): number {
  return baseline > 0 ? ours / baseline : Number.NaN;
}

/** Duration ratio (higher is better): baseline / ours. */
export function timeRatio(oursMs: number, baselineMs: number): number {
  return oursMs > 0 ? baselineMs / oursMs : Number.NaN;
}

/** Items per second from a count and a duration in ms. */
export function perSecond(count: number, ms: number): number {
  return ms > 0 ? (count * 1000) / ms : Number.NaN;
}
