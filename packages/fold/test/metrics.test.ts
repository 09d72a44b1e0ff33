import { appliedWatchMetrics, watchApplied } from "@slipstream/fold";
import { waitFor } from "@slipstream/testkit";
import { describe, expect, it } from "vitest";
import { describeUpdate, LogKv } from "./helpers/log-kv.js";

describe("appliedWatchMetrics", () => {
  it("reads cursor, counters and lag from a running watch", async () => {
    const kv = new LogKv();
    for (let i = 1; i <= 5; i++) kv.put(`k${i}`, `v${i}`);
    const applied: string[] = [];
    const w = watchApplied({
      watcher: kv,
      scope: { kind: "all" },
      batch: { max: 5, windowMs: 60_000 },
      parse: describeUpdate,
      apply: (b) => {
        applied.push(...b);
      },
    });
    try {
      const before = appliedWatchMetrics(w);
      expect(before.cursorNone).toBe(true);
      expect(before.lag).toBeUndefined();
      await waitFor(() => applied.length === 5, { message: "first batch" });
      const m = appliedWatchMetrics(w, { head: 8n });
      expect(m.cursorNone).toBe(false);
      expect(m.cursorRevision).toBe(5n);
      expect(m.head).toBe(8n);
      expect(m.lag).toBe(3n);
      expect(m.received).toBe(5);
      expect(m.flushes).toBe(1);
      expect(m.resyncs).toBe(0);
      // A head behind the cursor (stale reading) never gives a negative lag.
      expect(appliedWatchMetrics(w, { head: 2n }).lag).toBe(0n);
    } finally {
      await w.stop();
    }
  });
});
