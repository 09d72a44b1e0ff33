import { hasNats } from "@slipstream/testkit";
import { describe, expect, it } from "vitest";
import { parseArgs } from "../src/args.js";
import { benchResume } from "../src/bench-resume.js";
import { RssSampler } from "../src/memory.js";
import type { RunReport } from "../src/report.js";
import { formatScale } from "../src/scale.js";

// Correctness fields only: timings and ratios are the benchmark's output, never asserted.
describe.skipIf(!hasNats("any"))("bench smoke: resume after restart", () => {
  it("delivers exactly the delta and ends equal to a full re-list", async () => {
    const r = await benchResume({ entries: 300, valueBytes: 32, delta: 30, applyBatch: 100, rounds: 2 });
    expect(r.id).toBe("resume");
    expect(r.details.delivered).toBe(30);
    expect(r.details.deliveredPerRound).toBe("30,30");
    expect(r.details.deltaPuts).toBe(27);
    expect(r.details.deltaDeletes).toBe(3);
    expect(r.details.relistDelivered).toBe(300);
    expect(r.checks.filter((c) => !c.ok)).toEqual([]);
    expect(r.checks.map((c) => c.name)).toContain("resume delivered exactly the delta (every round)");
    expect(r.checks.map((c) => c.name)).toContain("round 1: resumed fold equals a full re-list");
    expect(r.memory.peakRss).toBeGreaterThan(0);
  });
});

describe("bench arguments", () => {
  it("defaults the delta to 1% of the entries and lets flags win over the environment", () => {
    const a = parseArgs(["--entries", "5000"], { BENCH_ENTRIES: "7000", BENCH_VALUE_BYTES: "64" });
    expect(a.options.entries).toBe(5000);
    expect(a.options.valueBytes).toBe(64);
    expect(a.options.delta).toBe(50);
    expect(a.mode).toBe("custom");
    expect(parseArgs(["--quick"], {}).mode).toBe("quick");
    expect(() => parseArgs(["--delta", "20", "--entries", "10"], {})).toThrow(/delta/);
    expect(() => parseArgs(["--bogus"], {})).toThrow(/unknown argument/);
  });
});

describe("bench --scale", () => {
  it("parses the sizes (default 100k, 1M, 3M) and keeps an explicit --rounds", () => {
    expect(parseArgs(["--scale"], {}).scale).toEqual([100_000, 1_000_000, 3_000_000]);
    const a = parseArgs(["--scale", "--scale-sizes", "30000,10000", "--rounds", "2"], {});
    expect(a.scale).toEqual([10_000, 30_000]);
    expect(a.roundsGiven).toBe(true);
    expect(parseArgs([], {}).scale).toBeUndefined();
    expect(() => parseArgs(["--scale-sizes", ""], {})).toThrow(/entry counts/);
  });

  it("tabulates each ratio and peak RSS per size with the change from first to last", () => {
    const report = (ratio: number, rssMiB: number) =>
      ({
        results: [{ id: "hydrate", ratio, memory: { peakRss: rssMiB * 1024 * 1024 } }],
        failures: [],
      }) as unknown as RunReport;
    const text = formatScale([
      { entries: 100_000, report: report(0.8, 100) },
      { entries: 1_000_000, report: report(0.6, 150) },
    ]);
    expect(text).toContain("100k");
    expect(text).toContain("1M");
    expect(text).toMatch(/hydrate\s+ratio\s+0\.80×\s+0\.60×\s+0\.80× → 0\.60× \(-25%\)/);
    expect(text).toMatch(/peak RSS\s+100 MiB\s+150 MiB\s+100 MiB → 150 MiB \(\+50%\)/);
  });
});

describe("bench smoke: download", () => {
  it("downloads a signed chunked artifact, resumes an aborted one, and reports both rates", async () => {
    const { benchDownload } = await import("../src/bench-download.js");
    const r = await benchDownload({ entries: 10, valueBytes: 1, delta: 1, applyBatch: 1, rounds: 1 });
    expect(r.id).toBe("download");
    expect(r.checks.filter((c) => !c.ok)).toEqual([]);
    // 16 MiB in four 4 MiB files at 4 MiB per chunk, plus the small fold.snap.
    expect(r.details.chunks).toBe(5);
    expect(r.baseline.unit).toBe("MiB/s");
    expect(r.ours.value).toBeGreaterThan(0);
  });
});

describe("RssSampler phases", () => {
  it("collects before a phase unless told not to, and attributes samples to each phase", () => {
    const g = globalThis as { gc?: () => void };
    const saved = g.gc;
    let collections = 0;
    g.gc = () => {
      collections++;
    };
    try {
      const mem = new RssSampler(1000);
      mem.phase("first");
      expect(collections).toBe(1);
      mem.phase("second", { collect: false });
      expect(collections).toBe(1);
      mem.phase("third", { collect: true });
      expect(collections).toBe(2);
      const m = mem.stop();
      expect(Object.keys(m.peakRssByPhase)).toEqual(expect.arrayContaining(["first", "second", "third"]));
    } finally {
      g.gc = saved;
    }
  });
});
