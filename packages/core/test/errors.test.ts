import { ARTIFACT_REFUSAL_CODES, ErrorCodes, isArtifactRefusal, SlipstreamError } from "@slipstream/core";
import { describe, expect, it } from "vitest";

describe("SlipstreamError", () => {
  it("keeps code, message and cause", () => {
    const cause = new Error("boom");
    const err = new SlipstreamError("TIMEOUT", "took too long", { cause });
    expect(err.code).toBe("TIMEOUT");
    expect(err.message).toBe("took too long");
    expect(err.cause).toBe(cause);
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe("SlipstreamError");
  });

  it("is() checks the brand and optionally the code", () => {
    const err = new SlipstreamError("CURSOR_EXPIRED", "gone");
    expect(SlipstreamError.is(err)).toBe(true);
    expect(SlipstreamError.is(err, "CURSOR_EXPIRED")).toBe(true);
    expect(SlipstreamError.is(err, "TIMEOUT")).toBe(false);
    expect(SlipstreamError.is(new Error("x"))).toBe(false);
    expect(SlipstreamError.is({ code: "TIMEOUT" })).toBe(false);
    expect(SlipstreamError.is(null)).toBe(false);
  });

  it("is() recognises an error made by a second copy of the package", async () => {
    // A duplicate copy has its own class but the same Symbol.for brand.
    const brand = Symbol.for("@slipstream/core/SlipstreamError");
    class Foreign extends Error {
      code = "ABORTED";
      [brand] = true;
    }
    const foreign = new Foreign("from another copy");
    expect(foreign instanceof SlipstreamError).toBe(false);
    expect(SlipstreamError.is(foreign, "ABORTED")).toBe(true);
  });

  it("wrap() passes SlipstreamErrors through and wraps others", () => {
    const own = new SlipstreamError("BACKEND", "x");
    expect(SlipstreamError.wrap(own, "TIMEOUT")).toBe(own);
    const wrapped = SlipstreamError.wrap(new Error("disk full"), "BACKEND", "writing");
    expect(wrapped.code).toBe("BACKEND");
    expect(wrapped.message).toBe("writing: disk full");
  });

  it("has the documented closed set of codes", () => {
    expect(ErrorCodes).toContain("CURSOR_EXPIRED");
    expect(ErrorCodes).toContain("ARTIFACT_INVALID");
    expect(ErrorCodes).toContain("MASS_DELETE_REFUSED");
    expect(ErrorCodes).toContain("SCOPE_NOT_COVERED");
    expect(ErrorCodes).toContain("ARTIFACT_UNSIGNED");
    expect(ErrorCodes).toContain("CHUNK_CORRUPTED");
    expect(new Set(ErrorCodes).size).toBe(21);
  });

  it("tells a refusal of the artifact itself from other failures", () => {
    for (const code of ARTIFACT_REFUSAL_CODES) {
      expect(ErrorCodes).toContain(code);
      expect(isArtifactRefusal(new SlipstreamError(code, "x"))).toBe(true);
    }
    expect(isArtifactRefusal(new SlipstreamError("SIGNER_EXPIRED", "x"))).toBe(true);
    expect(isArtifactRefusal(new SlipstreamError("BACKEND", "x"))).toBe(false);
    expect(isArtifactRefusal(new SlipstreamError("SCOPE_NOT_COVERED", "x"))).toBe(false);
    expect(isArtifactRefusal(new Error("ARTIFACT_INVALID"))).toBe(false);
  });
});
