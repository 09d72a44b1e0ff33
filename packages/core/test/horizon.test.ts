import { type RetentionState, retentionHorizon, WatchCursor } from "@slipstream/core";
import { describe, expect, it } from "vitest";

const at = (rev: bigint) => WatchCursor.fromRevision(rev);
// A full bounded log of 5 messages, sequences 6..10, 100 bytes each.
const full: RetentionState = {
  firstSeq: 6n,
  lastSeq: 10n,
  messages: 5,
  bytes: 500,
  maxBytes: 0,
  maxMsgs: 5,
  maxAgeMs: 0,
  discard: "old",
};

describe("retentionHorizon", () => {
  it("counts the retained messages at or below the cursor as the slack of a full count-limited log", () => {
    const h = retentionHorizon(full, at(7n));
    expect(h.state).toBe("ok");
    expect(h.behind).toBe(3n);
    expect(h.slackMessages).toBe(2);
    // publish 11 evicts 6, 12 evicts 7 (first = 8 = rev+1, still fine), 13 evicts 8: expired.
    expect(h.messagesRemaining).toBe(2);
    expect(h.limitedBy).toEqual(["max_msgs"]);
  });

  it("a caught-up cursor survives a whole log's worth of messages plus the free room", () => {
    expect(retentionHorizon(full, at(10n)).messagesRemaining).toBe(5);
    expect(retentionHorizon({ ...full, messages: 3, firstSeq: 8n }, at(10n)).messagesRemaining).toBe(5);
    expect(retentionHorizon({ ...full, messages: 3, firstSeq: 8n }, at(8n)).messagesRemaining).toBe(3);
  });

  it("matches a simulated FIFO log step by step", () => {
    for (let cap = 1; cap <= 6; cap++) {
      for (let published = 0; published <= 8; published++) {
        for (let rev = 0; rev <= published; rev++) {
          // Simulate: log holds the last `cap` of 1..published.
          const first = Math.max(1, published - cap + 1);
          const state: RetentionState = {
            firstSeq: BigInt(published === 0 ? 1 : first),
            lastSeq: BigInt(published),
            messages: published === 0 ? 0 : published - first + 1,
            bytes: 0,
            maxBytes: 0,
            maxMsgs: cap,
            maxAgeMs: 0,
            discard: "old",
          };
          const h = retentionHorizon(state, at(BigInt(rev)));
          let safe = 0;
          for (let more = 1; more <= 30; more++) {
            const last = published + more;
            const firstNow = Math.max(1, last - cap + 1);
            if (firstNow <= rev + 1) safe = more;
            else break;
          }
          if (state.firstSeq > BigInt(rev) + 1n) expect(h.state).toBe("expired");
          else expect([cap, published, rev, h.messagesRemaining]).toEqual([cap, published, rev, safe]);
        }
      }
    }
  });

  it("estimates the byte horizon from the average message size", () => {
    const s: RetentionState = { ...full, maxMsgs: 0, maxBytes: 1000 };
    const h = retentionHorizon(s, at(7n));
    expect(h.bytesRemaining).toBe(500 + 200);
    expect(h.messagesRemaining).toBe(7);
    expect(h.limitedBy).toEqual(["max_bytes"]);
  });

  it("discard new never evicts by size: no count horizon", () => {
    const h = retentionHorizon({ ...full, discard: "new", maxBytes: 1000 }, at(7n));
    expect(h.state).toBe("ok");
    expect(h.messagesRemaining).toBeUndefined();
    expect(h.bytesRemaining).toBeUndefined();
    expect(h.limitedBy).toEqual([]);
  });

  it("dates the age horizon from the needed message", () => {
    const s: RetentionState = { ...full, maxMsgs: 0, maxAgeMs: 60_000 };
    const now = new Date("2026-01-01T00:01:00Z");
    const h = retentionHorizon(s, at(7n), { neededPublishedAt: new Date("2026-01-01T00:00:30Z"), now });
    expect(h.timeRemainingMs).toBe(30_000);
    expect(h.expiresAt?.toISOString()).toBe("2026-01-01T00:01:30.000Z");
    expect(h.timeIsLowerBound).toBe(false);
    expect(retentionHorizon(s, at(10n), { neededPublishedAt: now, now }).timeRemainingMs).toBeUndefined();
    const lb = retentionHorizon(s, at(7n), { neededPublishedAt: now, now, neededTimeIsLowerBound: true });
    expect(lb.timeIsLowerBound).toBe(true);
  });

  it("reports expired, ahead and none", () => {
    const e = retentionHorizon(full, at(4n));
    expect(e.state).toBe("expired");
    expect(e.messagesRemaining).toBe(0);
    expect(retentionHorizon(full, at(5n)).state).toBe("ok");
    expect(retentionHorizon(full, at(11n)).state).toBe("ahead");
    expect(retentionHorizon(full, WatchCursor.none()).state).toBe("none");
  });
});
