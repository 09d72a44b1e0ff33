import { cursorRank, MAX_REVISION, SlipstreamError, VersionToken, WatchCursor } from "@slipstream/core";
import { describe, expect, it } from "vitest";

describe("VersionToken", () => {
  it("encodes revisions as 8 big-endian bytes", () => {
    const t = VersionToken.fromRevision(0x0102030405060708n);
    expect([...t.bytes]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(t.revision).toBe(0x0102030405060708n);
    expect(t.toHex()).toBe("0102030405060708");
  });

  it("keeps revision 0 distinct from unknown", () => {
    const zero = VersionToken.fromRevision(0n);
    expect(zero.isUnknown).toBe(false);
    expect(zero.revision).toBe(0n);
    expect(VersionToken.unknown().isUnknown).toBe(true);
    expect(VersionToken.unknown().revision).toBeUndefined();
    expect(zero.equals(VersionToken.unknown())).toBe(false);
  });

  it("round-trips the largest revision without losing precision", () => {
    const t = VersionToken.fromRevision(MAX_REVISION);
    expect(t.toHex()).toBe("ffffffffffffffff");
    expect(VersionToken.fromHex(t.toHex()).revision).toBe(MAX_REVISION);
    expect(VersionToken.fromRevision(2n ** 53n + 1n).revision).toBe(2n ** 53n + 1n);
  });

  it("accepts up to 10 bytes and refuses 11 without truncating", () => {
    const ten = VersionToken.fromBytes(new Uint8Array(10).fill(7));
    expect(ten.bytes.length).toBe(10);
    expect(ten.revision).toBeUndefined();
    expect(() => VersionToken.fromBytes(new Uint8Array(11))).toThrowError(/at most 10 bytes/);
    try {
      VersionToken.fromBytes(new Uint8Array(11));
    } catch (err) {
      expect(SlipstreamError.is(err, "INVALID_ARGUMENT")).toBe(true);
    }
  });

  it("copies its input so later mutation cannot change it", () => {
    const raw = new Uint8Array([1, 2, 3]);
    const t = VersionToken.fromBytes(raw);
    raw[0] = 9;
    expect(t.toHex()).toBe("010203");
    t.bytes[1] = 9;
    expect(t.toHex()).toBe("010203");
  });

  it.each([
    ["negative", () => VersionToken.fromRevision(-1n)],
    ["too large", () => VersionToken.fromRevision(MAX_REVISION + 1n)],
    ["odd hex", () => VersionToken.fromHex("abc")],
    ["non-hex", () => VersionToken.fromHex("zz")],
    ["11-byte hex", () => VersionToken.fromHex("00".repeat(11))],
  ])("refuses %s input with INVALID_ARGUMENT", (_name, f) => {
    expect(f).toThrow(SlipstreamError);
    try {
      f();
    } catch (err) {
      expect((err as SlipstreamError).code).toBe("INVALID_ARGUMENT");
    }
  });

  it("throws TypeError for a number instead of a bigint", () => {
    expect(() => VersionToken.fromRevision(5 as unknown as bigint)).toThrow(TypeError);
  });

  it("accepts uppercase hex on decode and writes lowercase", () => {
    expect(VersionToken.fromHex("00000000000000FF").toHex()).toBe("00000000000000ff");
  });
});

describe("WatchCursor", () => {
  it("none is empty hex and round-trips", () => {
    expect(WatchCursor.none().isNone).toBe(true);
    expect(WatchCursor.none().toHex()).toBe("");
    expect(WatchCursor.fromHex("").isNone).toBe(true);
    expect(WatchCursor.fromVersion(VersionToken.unknown()).isNone).toBe(true);
  });

  it("revision 42 is 000000000000002a", () => {
    const c = WatchCursor.fromRevision(42n);
    expect(c.toHex()).toBe("000000000000002a");
    expect(WatchCursor.fromHex("000000000000002a").equals(c)).toBe(true);
    expect(c.revision).toBe(42n);
    expect(c.isNone).toBe(false);
  });

  it("compares by bytes", () => {
    expect(WatchCursor.fromRevision(1n).equals(WatchCursor.fromRevision(2n))).toBe(false);
    expect(WatchCursor.fromRevision(0n).equals(WatchCursor.none())).toBe(false);
    const ten = VersionToken.fromBytes(new Uint8Array(10).fill(1));
    expect(WatchCursor.fromVersion(ten).toHex()).toBe("01".repeat(10));
  });

  it("refuses bad hex with INVALID_ARGUMENT", () => {
    for (const bad of ["zz", "abc", "00".repeat(11)]) {
      expect(() => WatchCursor.fromHex(bad)).toThrow(/cursor hex/);
    }
  });

  it("serialises to JSON as hex", () => {
    expect(JSON.stringify({ c: WatchCursor.fromRevision(255n) })).toBe('{"c":"00000000000000ff"}');
  });
});

describe("VersionToken.fromSequence / writeTo / length", () => {
  it("makes the same token as fromRevision for every safe sequence shape", () => {
    for (const n of [0, 1, 255, 256, 65_535, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 12_345, Number.MAX_SAFE_INTEGER]) {
      const a = VersionToken.fromSequence(n);
      const b = VersionToken.fromRevision(BigInt(n));
      expect(a.toHex()).toBe(b.toHex());
      expect(a.equals(b)).toBe(true);
      expect(a.revision).toBe(BigInt(n));
      expect(a.length).toBe(8);
      expect(a.isUnknown).toBe(false);
      // Written straight from the number (no bytes made yet) and after the bytes exist.
      const fresh = new Uint8Array(10).fill(7);
      expect(VersionToken.fromSequence(n).writeTo(fresh, 1)).toBe(8);
      expect(Buffer.from(fresh.subarray(1, 9)).toString("hex")).toBe(b.toHex());
      expect([fresh[0], fresh[9]]).toEqual([7, 7]);
      expect(VersionToken.compare(VersionToken.fromSequence(n), b)).toBe(0);
      if (n < Number.MAX_SAFE_INTEGER) {
        expect(VersionToken.compare(VersionToken.fromSequence(n), VersionToken.fromSequence(n + 1))).toBeLessThan(0);
      }
    }
  });

  it("refuses what is not a safe integer ≥ 0", () => {
    for (const bad of [-1, 1.5, Number.NaN, 2 ** 53, Number.POSITIVE_INFINITY]) {
      expect(() => VersionToken.fromSequence(bad)).toThrow(
        expect.objectContaining({ code: "INVALID_ARGUMENT" }) as Error,
      );
    }
  });

  it("writes its raw bytes at an offset", () => {
    const token = VersionToken.fromBytes(new Uint8Array([1, 2, 3]));
    const out = new Uint8Array(6).fill(9);
    expect(token.writeTo(out, 2)).toBe(3);
    expect(Array.from(out)).toEqual([9, 9, 1, 2, 3, 9]);
    expect(VersionToken.unknown().writeTo(out)).toBe(0);
    expect(VersionToken.unknown().length).toBe(0);
  });
});

describe("VersionToken.compare", () => {
  it("orders like cursorRank, for equal and different lengths, without allocating", () => {
    const tokens = [
      VersionToken.unknown(),
      VersionToken.fromBytes(new Uint8Array([0, 0])),
      VersionToken.fromRevision(1n),
      VersionToken.fromBytes(new Uint8Array([2])),
      VersionToken.fromRevision(255n),
      VersionToken.fromRevision(256n),
      VersionToken.fromBytes(new Uint8Array([0, 1, 1])),
      VersionToken.fromRevision(2n ** 40n),
      VersionToken.fromBytes(new Uint8Array(10).fill(0xff)),
    ];
    const rank = (t: VersionToken) => cursorRank(WatchCursor.fromVersion(t));
    for (const a of tokens) {
      for (const b of tokens) {
        const want = Math.sign(Number(rank(a) - rank(b)));
        expect(Math.sign(VersionToken.compare(a, b))).toBe(want);
      }
    }
  });
});
