import {
  cursorRank,
  liveGapOk,
  liveGapSuspect,
  MAX_REVISION,
  payloadPrunable,
  pointerPublishAllowed,
  resumeStartSequence,
  resumeWindowOk,
  SlipstreamError,
  VersionToken,
  WatchCursor,
} from "@slipstream/core";
import { describe, expect, it } from "vitest";

describe("resumeWindowOk", () => {
  // Sound iff firstSeq <= revision + 1, checked exhaustively over a small grid.
  it("matches the definition on a grid", () => {
    for (let rev = 0n; rev < 12n; rev++) {
      for (let first = 0n; first < 14n; first++) {
        expect(resumeWindowOk(rev, first)).toBe(first <= rev + 1n);
      }
    }
  });
  it("accepts an empty stream whose first sequence is last + 1", () => {
    expect(resumeWindowOk(10n, 11n)).toBe(true);
    expect(resumeWindowOk(10n, 12n)).toBe(false);
  });
  it("does not overflow at the top of u64", () => {
    expect(resumeWindowOk(MAX_REVISION, MAX_REVISION)).toBe(true);
  });
});

describe("resumeStartSequence", () => {
  it("is revision + 1", () => {
    expect(resumeStartSequence(0n)).toBe(1n);
    expect(resumeStartSequence(41n)).toBe(42n);
    expect(resumeStartSequence(MAX_REVISION - 1n)).toBe(MAX_REVISION);
  });
  it("refuses to wrap at 2^64-1", () => {
    expect(() => resumeStartSequence(MAX_REVISION)).toThrow(/refusing to wrap/);
    try {
      resumeStartSequence(MAX_REVISION);
    } catch (err) {
      expect(SlipstreamError.is(err, "INVALID_ARGUMENT")).toBe(true);
    }
  });
  it("refuses negative revisions", () => {
    expect(() => resumeStartSequence(-1n)).toThrow(SlipstreamError);
  });
});

describe("live floor guard", () => {
  it("suspects only jumps past frontier + 1", () => {
    expect(liveGapSuspect(5n, 6n)).toBe(false);
    expect(liveGapSuspect(5n, 5n)).toBe(false);
    expect(liveGapSuspect(5n, 7n)).toBe(true);
  });
  it("a gap is benign while the stream still holds frontier + 1", () => {
    expect(liveGapOk(5n, 6n)).toBe(true);
    expect(liveGapOk(5n, 3n)).toBe(true);
    expect(liveGapOk(5n, 7n)).toBe(false);
  });
});

describe("cursorRank", () => {
  it("is the revision, 0 for none, big-endian bytes otherwise", () => {
    expect(cursorRank(WatchCursor.none())).toBe(0n);
    expect(cursorRank(WatchCursor.fromRevision(42n))).toBe(42n);
    const odd = WatchCursor.fromVersion(VersionToken.fromBytes(new Uint8Array([1, 0])));
    expect(cursorRank(odd)).toBe(256n);
  });
});

describe("pointerPublishAllowed", () => {
  it("allows when there is no readable pointer", () => {
    expect(pointerPublishAllowed(undefined, 0n)).toBe(true);
    expect(pointerPublishAllowed(undefined, 5n)).toBe(true);
  });
  it("only moves forward (equal allowed)", () => {
    for (let cur = 0n; cur < 6n; cur++) {
      for (let cand = 0n; cand < 6n; cand++) {
        expect(pointerPublishAllowed(cur, cand)).toBe(cand >= cur);
      }
    }
  });
});

describe("payloadPrunable", () => {
  const base = {
    payloadRank: 5n as bigint | undefined,
    pointerRank: 10n as bigint | undefined,
    isPointerTarget: false,
    lastModifiedMs: 1_000,
    nowMs: 10_000,
    graceMs: 1_000,
  };
  it("prunes an old payload strictly below the pointer", () => {
    expect(payloadPrunable(base)).toBe(true);
  });
  it("keeps the pointer's target even when it looks older", () => {
    expect(payloadPrunable({ ...base, isPointerTarget: true })).toBe(false);
  });
  it("keeps payloads at or above the pointer", () => {
    expect(payloadPrunable({ ...base, payloadRank: 10n })).toBe(false);
    expect(payloadPrunable({ ...base, payloadRank: 11n })).toBe(false);
  });
  it("keeps objects it cannot name and everything when there is no pointer", () => {
    expect(payloadPrunable({ ...base, payloadRank: undefined })).toBe(false);
    expect(payloadPrunable({ ...base, pointerRank: undefined })).toBe(false);
  });
  it("respects the grace period (boundary inclusive)", () => {
    expect(payloadPrunable({ ...base, graceMs: 9_000 })).toBe(true);
    expect(payloadPrunable({ ...base, graceMs: 9_001 })).toBe(false);
    expect(payloadPrunable({ ...base, graceMs: 0, lastModifiedMs: 10_000 })).toBe(true);
  });
  it("does not overflow with a huge grace", () => {
    expect(payloadPrunable({ ...base, graceMs: Number.MAX_SAFE_INTEGER })).toBe(false);
  });
});
