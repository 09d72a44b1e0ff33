import { WatchCursor } from "@slipstream/core";
import { decodeLeaseRecord, encodeLeaseRecord } from "@slipstream/lease";
import { describe, expect, it } from "vitest";

describe("lease record codec", () => {
  it("round-trips with and without completion", () => {
    const base = { holder: "node-a", acquiredAt: 1000, expiresAt: 61000 };
    expect(decodeLeaseRecord(encodeLeaseRecord(base))).toEqual(base);
    const done = { ...base, completedCursor: WatchCursor.fromRevision(42n), completedAt: 2000 };
    const back = decodeLeaseRecord(encodeLeaseRecord(done));
    expect(back?.completedCursor?.toHex()).toBe("000000000000002a");
    expect(back?.completedAt).toBe(2000);
    expect(new TextDecoder().decode(encodeLeaseRecord(done))).toBe(
      '{"holder":"node-a","acquiredAt":1000,"expiresAt":61000,"completedCursor":"000000000000002a","completedAt":2000}',
    );
  });

  it.each([
    ["empty tombstone", ""],
    ["garbage", "not json"],
    ["JSON null", "null"],
    ["a number", "42"],
    ["missing holder", '{"acquiredAt":1,"expiresAt":2}'],
    ["string expiry", '{"holder":"a","acquiredAt":1,"expiresAt":"2"}'],
    ["bad cursor hex", '{"holder":"a","acquiredAt":1,"expiresAt":2,"completedCursor":"zz"}'],
  ])("treats %s as no record (takeover allowed)", (_n, text) => {
    expect(decodeLeaseRecord(new TextEncoder().encode(text))).toBeUndefined();
  });

  it("tolerates unknown fields", () => {
    const r = decodeLeaseRecord(new TextEncoder().encode('{"holder":"a","acquiredAt":1,"expiresAt":2,"future":true}'));
    expect(r?.holder).toBe("a");
  });
});
