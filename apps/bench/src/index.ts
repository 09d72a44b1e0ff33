/**
 * The slipstream benchmark runner: every figure is printed beside the raw baseline measured
 * in the same run and their ratio (see README.md). Usage: `node dist/index.js [--quick]`.
 *
 * @packageDocumentation
 */
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs, USAGE } from "./args.js";
import { BENCHMARKS } from "./benchmarks.js";
import { runIsolated } from "./isolate.js";
import { type BenchFailure, buildReport, formatReport } from "./report.js";
import type { BenchResult } from "./result.js";

export type { CliArgs } from "./args.js";
export { parseArgs, USAGE } from "./args.js";
export { benchBootstrap } from "./bench-bootstrap.js";
export { benchFold } from "./bench-fold.js";
export { benchHydrate } from "./bench-hydrate.js";
export { benchResume } from "./bench-resume.js";
export { benchTransfer } from "./bench-transfer.js";
export { BENCHMARKS, type Benchmark } from "./benchmarks.js";
export { runIsolated } from "./isolate.js";
export { type BenchOptions, FULL, QUICK, validateOptions } from "./options.js";
export { type BenchFailure, buildReport, formatReport, type RunReport } from "./report.js";
export type { BenchResult, Check, Figure, MemoryFigures } from "./result.js";

/** Runs the benchmarks selected by `argv`; returns the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv);
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  const unknown = args.only.filter((id) => !BENCHMARKS.some((b) => b.id === id));
  if (unknown.length > 0) throw new TypeError(`unknown benchmark ${unknown.join(", ")}\n${USAGE}`);
  const selected = BENCHMARKS.filter((b) => args.only.length === 0 || args.only.includes(b.id));
  const startedAt = new Date();
  const log = (line: string): void => console.error(`  … ${line}`);
  const results: BenchResult[] = [];
  const failures: BenchFailure[] = [];
  for (const b of selected) {
    console.error(`[${b.id}]`);
    try {
      const r = args.inProcess ? await b.run({ ...args.options, log }) : await runIsolated(b.id, args.options, log);
      results.push(r);
      console.error(`  ${b.id}: ratio ${r.ratio.toFixed(2)}× in ${(r.wallMs / 1000).toFixed(1)} s`);
    } catch (err) {
      const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
      failures.push({ id: b.id, error });
      console.error(`  ${b.id} failed: ${error}`);
    }
  }
  const report = buildReport(startedAt, args.mode, args.inProcess, args.options, results, failures);
  console.log(formatReport(report));
  if (args.json) {
    // Under `pnpm bench` the script runs in apps/bench; a relative path means the caller's directory.
    const file = resolve(process.env.INIT_CWD ?? process.cwd(), args.json);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`\nJSON written to ${args.json}`);
  }
  return report.ok ? 0 : 1;
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
