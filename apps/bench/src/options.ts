/** Sizes shared by the benchmarks, with the defaults of a full and of a `--quick` run. */

/** Sizes and knobs of one benchmark run. */
export interface BenchOptions {
  /** Entries (distinct keys) in the bucket or store. */
  readonly entries: number;
  /** Bytes per value. */
  readonly valueBytes: number;
  /** Changes written while a node is down (resume, bootstrap). */
  readonly delta: number;
  /** Updates per `apply` / `level` batch in the hydration benchmark. */
  readonly applyBatch: number;
  /** Alternating baseline/ours rounds of every benchmark; the best of each side counts. */
  readonly rounds: number;
  /** Progress lines (default: none). */
  readonly log?: (line: string) => void;
}

/** A full run: 100k entries of 170 bytes, a 1% delta. */
export const FULL: BenchOptions = { entries: 100_000, valueBytes: 170, delta: 1_000, applyBatch: 1000, rounds: 3 };

/** `--quick`: a smoke run of a few seconds per benchmark. */
export const QUICK: BenchOptions = { entries: 10_000, valueBytes: 170, delta: 100, applyBatch: 1000, rounds: 2 };

/** Validates sizes; throws a TypeError naming the bad one. */
export function validateOptions(o: BenchOptions): BenchOptions {
  const int = (v: number, what: string, min: number): void => {
    if (!Number.isInteger(v) || v < min) throw new TypeError(`${what} must be an integer ≥ ${min}, got ${v}`);
  };
  int(o.entries, "entries", 10);
  int(o.valueBytes, "valueBytes", 1);
  int(o.delta, "delta", 1);
  int(o.applyBatch, "applyBatch", 1);
  int(o.rounds, "rounds", 1);
  if (o.delta > o.entries) throw new TypeError(`delta (${o.delta}) must not exceed entries (${o.entries})`);
  return o;
}
