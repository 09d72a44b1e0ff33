/** Command-line flags and environment variables of the benchmark runner. */
import { type BenchOptions, FULL, QUICK, validateOptions } from "./options.js";

/** Parsed command line. */
export interface CliArgs {
  readonly mode: "full" | "quick" | "custom";
  readonly options: BenchOptions;
  /** Benchmark ids to run, in registry order; all when empty. */
  readonly only: readonly string[];
  readonly json: string | undefined;
  /** Run every benchmark in this process instead of one child process each. */
  readonly inProcess: boolean;
  readonly help: boolean;
  /** `--scale`: the entry counts to run the selection at, smallest first (else undefined). */
  readonly scale: readonly number[] | undefined;
  /** Whether `--rounds` or BENCH_ROUNDS was given (a scale run keeps it for every size). */
  readonly roundsGiven: boolean;
}

/** Entry counts of `--scale` when `--scale-sizes` does not say. */
export const SCALE_SIZES: readonly number[] = [100_000, 1_000_000, 3_000_000];

/** The `--help` text. */
export const USAGE = `usage: node dist/index.js [--quick] [--only fold,resume,hydrate,transfer,bootstrap,download]
                         [--entries N] [--value-bytes N] [--delta N] [--rounds N] [--json FILE] [--in-process]
                         [--scale [--scale-sizes N,N,…]]

  --quick          smoke sizes (10k entries, delta 100, 2 rounds): ~15 s
  --only IDS       run only these benchmarks (comma-separated)
  --entries N      entries in the bucket / store        (env BENCH_ENTRIES, default 100000)
  --value-bytes N  bytes per value                      (env BENCH_VALUE_BYTES, default 170)
  --delta N        changes written while a node is down (env BENCH_DELTA, default 1% of entries)
  --rounds N       alternating rounds, best of each side counts (env BENCH_ROUNDS, default 3)
  --json FILE      also write the results as JSON to FILE
  --in-process     run every benchmark in this process (default: one child process each,
                   so each one's RSS figures are its own)
  --scale          run the selection (default: fold,hydrate) at 100k, 1M and 3M entries and
                   print how each ratio and the peak RSS move with the entry count; sizes of
                   1M and more run 1 round unless --rounds says otherwise
  --scale-sizes L  the entry counts of --scale (comma-separated)
Exit code 1 when a correctness check fails or a benchmark throws.`;

function intValue(flag: string, raw: string | undefined): number {
  const n = Number(raw);
  if (raw === undefined || raw === "" || !Number.isInteger(n)) {
    throw new TypeError(`${flag} needs an integer, got ${raw ?? "nothing"}`);
  }
  return n;
}

/** Parses `argv` (without node and the script) over `env`; flags win over the environment. */
export function parseArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): CliArgs {
  let quick = false;
  let help = false;
  let inProcess = false;
  let scale: number[] | undefined;
  let json: string | undefined;
  let only: string[] = [];
  const sizes: { entries?: number; valueBytes?: number; delta?: number; rounds?: number } = {};
  if (env.BENCH_ENTRIES) sizes.entries = intValue("BENCH_ENTRIES", env.BENCH_ENTRIES);
  if (env.BENCH_VALUE_BYTES) sizes.valueBytes = intValue("BENCH_VALUE_BYTES", env.BENCH_VALUE_BYTES);
  if (env.BENCH_DELTA) sizes.delta = intValue("BENCH_DELTA", env.BENCH_DELTA);
  if (env.BENCH_ROUNDS) sizes.rounds = intValue("BENCH_ROUNDS", env.BENCH_ROUNDS);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const next = (): string | undefined => argv[++i];
    switch (arg) {
      case "--quick":
        quick = true;
        break;
      case "--":
        // pnpm may pass its argument separator through to the script.
        break;
      case "--in-process":
        inProcess = true;
        break;
      case "--scale":
        scale ??= [...SCALE_SIZES];
        break;
      case "--scale-sizes":
        scale = (next() ?? "")
          .split(",")
          .filter(Boolean)
          .map((v) => intValue("--scale-sizes", v))
          .sort((a, b) => a - b);
        if (scale.length === 0) throw new TypeError("--scale-sizes needs entry counts");
        break;
      case "--help":
      case "-h":
        help = true;
        break;
      case "--json":
        json = next();
        if (!json) throw new TypeError("--json needs a file name");
        break;
      case "--only":
        only = (next() ?? "")
          .split(",")
          .map((s) => s.trim())
          .filter(Boolean);
        break;
      case "--entries":
        sizes.entries = intValue(arg, next());
        break;
      case "--value-bytes":
        sizes.valueBytes = intValue(arg, next());
        break;
      case "--delta":
        sizes.delta = intValue(arg, next());
        break;
      case "--rounds":
        sizes.rounds = intValue(arg, next());
        break;
      default:
        throw new TypeError(`unknown argument ${arg}\n${USAGE}`);
    }
  }
  const base = quick ? QUICK : FULL;
  const entries = sizes.entries ?? base.entries;
  const custom = Object.keys(sizes).length > 0;
  const options = validateOptions({
    ...base,
    entries,
    valueBytes: sizes.valueBytes ?? base.valueBytes,
    // Default delta: 1% of the entries.
    delta: sizes.delta ?? (sizes.entries !== undefined ? Math.max(1, Math.round(entries / 100)) : base.delta),
    rounds: sizes.rounds ?? base.rounds,
  });
  return {
    mode: custom ? "custom" : quick ? "quick" : "full",
    options,
    only,
    json,
    inProcess,
    help,
    scale,
    roundsGiven: sizes.rounds !== undefined,
  };
}
