/** The human-readable table and the JSON document of a run. */
import { cpus, totalmem } from "node:os";
import type { BenchOptions } from "./options.js";
import type { BenchResult, Figure } from "./result.js";

/** A benchmark that threw instead of returning a result. */
export interface BenchFailure {
  readonly id: string;
  readonly error: string;
}

/** The whole run, as written by `--json`. */
export interface RunReport {
  readonly startedAt: string;
  readonly mode: "full" | "quick" | "custom";
  /** Whether the benchmarks shared one process (else one child process each). */
  readonly inProcess: boolean;
  readonly machine: { node: string; platform: string; cpus: number; cpuModel: string; totalMemBytes: number };
  readonly sizes: Omit<BenchOptions, "log">;
  readonly results: readonly BenchResult[];
  readonly failures: readonly BenchFailure[];
  /** Every check of every result passed and no benchmark threw. */
  readonly ok: boolean;
}

/** Assembles a {@link RunReport}. */
export function buildReport(
  startedAt: Date,
  mode: RunReport["mode"],
  inProcess: boolean,
  o: BenchOptions,
  results: readonly BenchResult[],
  failures: readonly BenchFailure[],
): RunReport {
  const cpu = cpus();
  return {
    startedAt: startedAt.toISOString(),
    mode,
    inProcess,
    machine: {
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      cpus: cpu.length,
      cpuModel: cpu[0]?.model.trim() ?? "unknown",
      totalMemBytes: totalmem(),
    },
    sizes: {
      entries: o.entries,
      valueBytes: o.valueBytes,
      delta: o.delta,
      applyBatch: o.applyBatch,
      rounds: o.rounds,
    },
    results,
    failures,
    ok: failures.length === 0 && results.every((r) => r.checks.every((c) => c.ok)),
  };
}

const int = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

/** `1,234` for big numbers, `12.3` for small ones. */
export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Number.isInteger(n) || Math.abs(n) >= 100) return int.format(n);
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

/** `12.3 MiB`. */
export function formatBytes(n: number): string {
  if (n >= 1024 * 1024 * 1024) return `${(n / 1024 / 1024 / 1024).toFixed(2)} GiB`;
  if (n >= 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

function figure(f: Figure): string {
  return `${formatNumber(f.value)} ${f.unit}`;
}

function pad(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows.map((row) =>
    row
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd(),
  );
}

function detail(key: string, value: number | string): string {
  if (typeof value === "string") return value;
  if ((/Bytes$/.test(key) && !/PerEntry$/.test(key)) || /Rss(Anon|File)?$/.test(key)) return formatBytes(value);
  if (/Ms$/.test(key)) return `${formatNumber(value)} ms`;
  if (/^ratio/.test(key)) return `${value.toFixed(2)}×`;
  return formatNumber(value);
}

/** The table printed at the end of a run, plus one details block per benchmark. */
export function formatReport(r: RunReport): string {
  const lines: string[] = [];
  const m = r.machine;
  lines.push(
    `slipstream benchmarks — ${r.startedAt}, ${r.mode} run (${r.inProcess ? "one process" : "one process per benchmark"}); node ${m.node}, ${m.cpus} × ${m.cpuModel}, ${formatBytes(m.totalMemBytes)} RAM`,
  );
  lines.push(
    `sizes: ${formatNumber(r.sizes.entries)} entries × ${r.sizes.valueBytes} B values, delta ${formatNumber(r.sizes.delta)}, apply batch ${r.sizes.applyBatch}, rounds ${r.sizes.rounds}`,
  );
  lines.push("ratio = ours relative to the baseline, higher is better (rates: ours/baseline; times: baseline/ours)");
  lines.push("");
  const rows: string[][] = [["benchmark", "baseline", "", "ours", "", "ratio", "peak RSS", "checks"]];
  for (const res of r.results) {
    const passed = res.checks.filter((c) => c.ok).length;
    rows.push([
      res.id,
      res.baseline.label,
      figure(res.baseline),
      res.ours.label,
      figure(res.ours),
      `${res.ratio.toFixed(2)}×`,
      formatBytes(res.memory.peakRss),
      passed === res.checks.length ? `${passed}/${res.checks.length} ok` : `${passed}/${res.checks.length} FAILED`,
    ]);
  }
  for (const f of r.failures) rows.push([f.id, "—", "", "—", "", "—", "—", "ERROR"]);
  lines.push(...pad(rows));
  for (const res of r.results) {
    lines.push("", `${res.id}: ${res.title}`);
    const d = Object.entries(res.details).map(([k, v]) => `${k} ${detail(k, v)}`);
    lines.push(`  ${d.join(", ")}`);
    const mem = res.memory;
    const phases = Object.entries(mem.peakRssByPhase)
      .map(([k, v]) => `${k} ${formatBytes(v)}`)
      .join(", ");
    lines.push(
      `  RSS: at start ${formatBytes(mem.rssAtStart)}, peak ${formatBytes(mem.peakRss)} (${phases}), process high-water mark ${formatBytes(mem.processMaxRss)}` +
        (mem.natsServerPeakRss !== undefined ? `; nats-server peak ${formatBytes(mem.natsServerPeakRss)}` : "") +
        `; wall ${formatNumber(res.wallMs / 1000)} s`,
    );
    if (mem.peakRssAnonByPhase && mem.peakRssFileByPhase) {
      const file = mem.peakRssFileByPhase;
      const split = Object.entries(mem.peakRssAnonByPhase)
        .map(([k, v]) => `${k} ${formatBytes(v)} + ${formatBytes(file[k] ?? 0)}`)
        .join(", ");
      lines.push(`  RSS anonymous + file-backed (peak of each): ${split}`);
    }
    for (const c of res.checks) {
      lines.push(`  ${c.ok ? "ok  " : "FAIL"} ${c.name}${c.ok ? "" : `: expected ${c.expected}, got ${c.actual}`}`);
    }
  }
  for (const f of r.failures) lines.push("", `${f.id}: ERROR ${f.error}`);
  lines.push("", r.ok ? "all checks passed" : "SOME CHECKS FAILED");
  return lines.join("\n");
}
