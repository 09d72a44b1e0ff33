import { hasNats } from "@slipstream/testkit";
import { describe, expect, it } from "vitest";
import { parseArgs } from "../src/args.js";
import { benchResume } from "../src/bench-resume.js";

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
