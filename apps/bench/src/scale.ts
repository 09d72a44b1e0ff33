/**
 * `--scale`: the same benchmarks at growing entry counts, and a table of how each ratio and
 * each peak RSS move with the count, so that growth is visible (time should stay linear, so
 * ratios flat; memory should stay flat).
 */
import type { RunReport } from "./report.js";

/** One size of a scale run. */
export interface ScaleStep {
  readonly entries: number;
  readonly report: RunReport;
}

const MIB = 1024 * 1024;

function fmtEntries(n: number): string {
  return n >= 1_000_000 ? `${n / 1_000_000}M` : n >= 1000 ? `${n / 1000}k` : String(n);
}

/** The scale table: per benchmark, its ratio and peak RSS at every size, and the change. */
export function formatScale(steps: readonly ScaleStep[]): string {
  const ids = [...new Set(steps.flatMap((s) => s.report.results.map((r) => r.id)))];
  const head = ["benchmark", "figure", ...steps.map((s) => fmtEntries(s.entries)), "first → last"];
  const rows: string[][] = [];
  for (const id of ids) {
    const at = steps.map((s) => s.report.results.find((r) => r.id === id));
    const ratios = at.map((r) => r?.ratio);
    const rss = at.map((r) => (r ? r.memory.peakRss / MIB : undefined));
    const change = (xs: (number | undefined)[], unit: string, digits: number): string => {
      const first = xs.find((x) => x !== undefined);
      const last = [...xs].reverse().find((x) => x !== undefined);
      if (first === undefined || last === undefined) return "—";
      const pct = first === 0 ? 0 : ((last - first) / first) * 100;
      return `${first.toFixed(digits)}${unit} → ${last.toFixed(digits)}${unit} (${pct >= 0 ? "+" : ""}${pct.toFixed(0)}%)`;
    };
    rows.push([
      id,
      "ratio",
      ...ratios.map((x) => (x === undefined ? "—" : `${x.toFixed(2)}×`)),
      change(ratios, "×", 2),
    ]);
    rows.push([
      "",
      "peak RSS",
      ...rss.map((x) => (x === undefined ? "—" : `${x.toFixed(0)} MiB`)),
      change(rss, " MiB", 0),
    ]);
    const mibRow = (label: string, xs: (number | undefined)[]): void => {
      if (!xs.some((x) => x !== undefined)) return;
      rows.push(["", label, ...xs.map((x) => (x === undefined ? "—" : `${x.toFixed(0)} MiB`)), change(xs, " MiB", 0)]);
    };
    const mib = (v: unknown): number | undefined => (typeof v === "number" ? v / MIB : undefined);
    // Anonymous memory of our phase (without LevelDB's mapped table pages), where measured.
    mibRow(
      "anon RSS (ours)",
      at.map((r) => mib(r?.memory.peakRssAnonByPhase?.ours)),
    );
    // The fold in a process of its own, and the raw ceiling in one (fold benchmark only).
    mibRow(
      "peak RSS, fold alone",
      at.map((r) => mib(r?.details?.alonePeakRss)),
    );
    mibRow(
      "anon RSS, fold alone",
      at.map((r) => mib(r?.details?.alonePeakRssAnon)),
    );
    mibRow(
      "peak RSS, raw ceiling alone",
      at.map((r) => mib(r?.details?.rawCeilingAlonePeakRss)),
    );
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  const failed = steps.flatMap((s) => s.report.failures.map((f) => `${f.id} at ${fmtEntries(s.entries)} failed`));
  return [
    "scale: how each ratio and the peak RSS move with the entry count (flat ratios = linear time)",
    line(head),
    ...rows.map(line),
    ...failed,
  ].join("\n");
}
