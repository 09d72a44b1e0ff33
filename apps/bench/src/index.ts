/**
 * The slipstream benchmark runner: every figure is printed beside the raw baseline measured
 * in the same run and their ratio (see README.md). Usage: `node dist/index.js [--quick]`.
 *
 * @packageDocumentation
 */
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { type CliArgs, parseArgs, USAGE } from "./args.js";
import { BENCHMARKS, type Benchmark } from "./benchmarks.js";
import { runIsolated } from "./isolate.js";
import { type BenchOptions, validateOptions } from "./options.js";
import { type BenchFailure, buildReport, formatReport, type RunReport } from "./report.js";
import type { BenchResult } from "./result.js";
import { formatScale, type ScaleStep } from "./scale.js";

export type { CliArgs } from "./args.js";
export { parseArgs, SCALE_SIZES, USAGE } from "./args.js";
export { benchBootstrap } from "./bench-bootstrap.js";
export { benchDownload } from "./bench-download.js";
export { benchFold } from "./bench-fold.js";
export { benchHydrate } from "./bench-hydrate.js";
export { benchResume } from "./bench-resume.js";
export { benchTransfer } from "./bench-transfer.js";
export { BENCHMARKS, type Benchmark } from "./benchmarks.js";
export { runIsolated } from "./isolate.js";
export { type BenchOptions, FULL, QUICK, validateOptions } from "./options.js";
export { type BenchFailure, buildReport, formatReport, type RunReport } from "./report.js";
export type { BenchResult, Check, Figure, MemoryFigures } from "./result.js";
export { formatScale, type ScaleStep } from "./scale.js";

/** Runs the benchmarks selected by `argv`; returns the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv);
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  const unknown = args.only.filter((id) => !BENCHMARKS.some((b) => b.id === id));
  if (unknown.length > 0) throw new TypeError(`unknown benchmark ${unknown.join(", ")}\n${USAGE}`);
  const selected = BENCHMARKS.filter(
    (b) => (args.only.length === 0 && (!args.scale || SCALE_DEFAULT.includes(b.id))) || args.only.includes(b.id),
  );
  if (args.scale) return runScale(args, selected);
  const report = await runSelection(args, args.options, selected);
  console.log(formatReport(report));
  await writeJson(args.json, report);
  return report.ok ? 0 : 1;
}

/** Benchmarks a `--scale` run covers when `--only` does not say. */
const SCALE_DEFAULT: readonly string[] = ["fold", "hydrate"];

/** Runs `selected` at `options` (one child process each unless `--in-process`). */
async function runSelection(args: CliArgs, options: BenchOptions, selected: readonly Benchmark[]): Promise<RunReport> {
  const startedAt = new Date();
  const log = (line: string): void => console.error(`  … ${line}`);
  const results: BenchResult[] = [];
  const failures: BenchFailure[] = [];
  for (const b of selected) {
    console.error(`[${b.id}]`);
    try {
      const r = args.inProcess ? await b.run({ ...options, log }) : await runIsolated(b.id, options, log);
      results.push(r);
      console.error(`  ${b.id}: ratio ${r.ratio.toFixed(2)}× in ${(r.wallMs / 1000).toFixed(1)} s`);
    } catch (err) {
      const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
      failures.push({ id: b.id, error });
      console.error(`  ${b.id} failed: ${error}`);
    }
  }
  return buildReport(startedAt, args.mode, args.inProcess, options, results, failures);
}

/** `--scale`: the selection at every size, each report, then the growth table. */
async function runScale(args: CliArgs, selected: readonly Benchmark[]): Promise<number> {
  const steps: ScaleStep[] = [];
  for (const entries of args.scale ?? []) {
    const options = validateOptions({
      ...args.options,
      entries,
      delta: Math.max(1, Math.round(entries / 100)),
      rounds: args.roundsGiven ? args.options.rounds : entries >= 1_000_000 ? 1 : args.options.rounds,
    });
    console.error(`== ${entries} entries ==`);
    const report = await runSelection(args, options, selected);
    console.log(formatReport(report));
    console.log("");
    steps.push({ entries, report });
  }
  console.log(formatScale(steps));
  await writeJson(args.json, { mode: "scale", steps });
  return steps.every((s) => s.report.ok) ? 0 : 1;
}

async function writeJson(json: string | undefined, value: unknown): Promise<void> {
  if (!json) return;
  // Under `pnpm bench` the script runs in apps/bench; a relative path means the caller's directory.
  const file = resolve(process.env.INIT_CWD ?? process.cwd(), json);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v), 2)}\n`);
  console.log(`\nJSON written to ${json}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exitCode = 1;
    },
  );
}
