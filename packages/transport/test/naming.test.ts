import { createHash } from "node:crypto";
import { encodeManifest, SlipstreamError, VersionToken, WatchCursor } from "@slipstream/core";
import { describe, expect, it } from "vitest";
import {
  ArtifactTransport,
  type BlobStore,
  blobKeyProblem,
  parsePayloadName,
  payloadName,
  withoutConditionalWrites,
} from "../src/index.js";

const manifestAt = (cursor: WatchCursor) => ({
  schemaVersion: 1 as const,
  backend: "test",
  backendVersion: "1",
  cursor,
  createdAt: new Date("2026-01-02T03:04:05.000Z"),
  files: [{ path: "data/fold.snap", size: 3, sha256: "a".repeat(64) }],
});

// A store that must never be called: naming is pure.
const unreachable = new Proxy({ capabilities: { conditionalWrites: true } } as BlobStore, {
  get(target, prop) {
    if (prop in target) return target[prop as keyof BlobStore];
    return () => {
      throw new Error(`unexpected store call ${String(prop)}`);
    };
  },
});

describe("payload names", () => {
  it("embed the cursor rank as 16 hex digits and the first 16 hex of sha256(manifest bytes)", () => {
    const m = manifestAt(WatchCursor.fromRevision(42n));
    const bytes = new TextEncoder().encode(encodeManifest(m));
    const digest = createHash("sha256").update(bytes).digest("hex").slice(0, 16);
    expect(payloadName(m, bytes)).toBe(`000000000000002a-${digest}.tar`);
    expect(parsePayloadName(`000000000000002a-${digest}.tar`)).toEqual({ rank: 42n, digest });
  });

  it("rank 0 for the none cursor, wider names for 10-byte tokens, order preserved by rank", () => {
    const none = manifestAt(WatchCursor.none());
    const noneBytes = new TextEncoder().encode(encodeManifest(none));
    expect(payloadName(none, noneBytes)).toMatch(/^0000000000000000-[0-9a-f]{16}\.tar$/);
    const wide = manifestAt(WatchCursor.fromVersion(VersionToken.fromHex("01000000000000000000")));
    const name = payloadName(wide, new TextEncoder().encode(encodeManifest(wide)));
    expect(name).toMatch(/^1000000000000000000-[0-9a-f]{16}\.tar$/);
    expect(parsePayloadName(name)?.rank).toBe(1n << 72n);
    const max = manifestAt(WatchCursor.fromRevision((1n << 64n) - 1n));
    expect(payloadName(max, new Uint8Array([1]))).toMatch(/^ffffffffffffffff-/);
  });

  it("names that are not ours parse as undefined", () => {
    for (const bad of [
      "x.tar",
      "000000000000002a.tar",
      "000000000000002A-0123456789abcdef.tar",
      "000000000000002a-0123456789abcde.tar",
      "000000000000002a-0123456789abcdef.tar.tmp",
      "2a-0123456789abcdef.tar",
      "notes.txt",
    ]) {
      expect(parsePayloadName(bad), bad).toBeUndefined();
    }
  });

  it("the same manifest bytes always give the same payload key; different bytes a different one", () => {
    const t = new ArtifactTransport(unreachable, { prefix: "artifacts/prod" });
    const a = new TextEncoder().encode(encodeManifest(manifestAt(WatchCursor.fromRevision(7n))));
    const b = new TextEncoder().encode(
      encodeManifest({ ...manifestAt(WatchCursor.fromRevision(7n)), backendVersion: "2" }),
    );
    expect(t.payloadKey("edge/us", a)).toBe(t.payloadKey("edge/us", a));
    expect(t.payloadKey("edge/us", a)).not.toBe(t.payloadKey("edge/us", b));
    expect(t.payloadKey("edge/us", a)).toMatch(
      /^artifacts\/prod\/edge\/us\.payloads\/0000000000000007-[0-9a-f]{16}\.tar$/,
    );
    expect(t.pointerKey("edge/us")).toBe("artifacts/prod/edge/us.manifest.json");
    expect(new ArtifactTransport(unreachable).pointerKey("k")).toBe("k.manifest.json");
  });
});

describe("keys and options", () => {
  it("refuses hostile keys and prefixes with INVALID_ARGUMENT", () => {
    const t = new ArtifactTransport(unreachable);
    for (const bad of ["", "../x", "/abs", "a//b", "a/./b", "a\\b", "a\u0000b", "a\nb"]) {
      expect(blobKeyProblem(bad), JSON.stringify(bad)).toBeDefined();
      let caught: unknown;
      try {
        t.pointerKey(bad);
      } catch (err) {
        caught = err;
      }
      expect(SlipstreamError.is(caught, "INVALID_ARGUMENT"), JSON.stringify(bad)).toBe(true);
    }
    expect(() => new ArtifactTransport(unreachable, { prefix: "../up" })).toThrow(/prefix/);
    expect(blobKeyProblem("edge/us-east/latest")).toBeUndefined();
  });

  it("validates its options at construction", () => {
    expect(() => new ArtifactTransport(unreachable, { timeoutMs: 0 })).toThrow(TypeError);
    expect(() => new ArtifactTransport(unreachable, { transferTimeoutMs: -1 })).toThrow(TypeError);
    expect(() => new ArtifactTransport({} as BlobStore)).toThrow(TypeError);
  });

  it("withoutConditionalWrites hides the capability and refuses conditional puts", async () => {
    const plain = withoutConditionalWrites(unreachable);
    expect(plain.capabilities.conditionalWrites).toBe(false);
    await expect(plain.conditionalPut("k", new Uint8Array(), { ifAbsent: true })).rejects.toMatchObject({
      code: "BACKEND",
    });
  });
});
