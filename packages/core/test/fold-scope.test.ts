import {
  askMassDelete,
  assertScopeCovers,
  type ExportManifest,
  encodeManifest,
  foldScopeOf,
  inFoldScope,
  massDeleteTrips,
  normalizeScope,
  parseManifest,
  resolveExportScope,
  resolveImportScope,
  resolveMassDeleteGuard,
  SlipstreamError,
  sameScope,
  scopeCovers,
  WatchCursor,
} from "@slipstream/core";
import { describe, expect, it } from "vitest";

const SHA = "a".repeat(64);

function manifest(scope?: readonly string[]): ExportManifest {
  return {
    schemaVersion: 1,
    backend: "leveldb",
    backendVersion: "1",
    cursor: WatchCursor.fromRevision(42n),
    ...(scope !== undefined ? { scope } : {}),
    createdAt: new Date("2026-01-02T03:04:05.000Z"),
    files: [{ path: "data/a", size: 3, sha256: SHA }],
  };
}

function doc(scope: unknown): string {
  return `${JSON.stringify(
    {
      schemaVersion: 1,
      backend: "leveldb",
      backendVersion: "1",
      cursor: "000000000000002a",
      scope,
      createdAt: "2026-01-02T03:04:05.000Z",
      files: [{ path: "data/a", size: 3, sha256: SHA }],
    },
    null,
    2,
  )}\n`;
}

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return SlipstreamError.is(err) ? err.code : `not a SlipstreamError: ${String(err)}`;
  }
  return undefined;
}

describe("fold scopes", () => {
  it("normalizes: sorted in byte order, deduplicated, covered prefixes dropped, '' = whole bucket", () => {
    expect(normalizeScope(["svc.", "route.eu.", "route.", "svc."])).toEqual(["route.", "svc."]);
    expect(normalizeScope(["a.b", "a", "ab"])).toEqual(["a"]);
    expect(normalizeScope(["b.", "a.z", "a.b"])).toEqual(["a.b", "a.z", "b."]);
    expect(normalizeScope(["route.", ""])).toBeUndefined();
    expect(normalizeScope([])).toEqual([]);
    expect(foldScopeOf({ kind: "all" })).toBeUndefined();
    expect(foldScopeOf({ kind: "prefix", prefix: "route.eu." })).toEqual(["route.eu."]);
  });

  it("refuses prefixes the watch scope would refuse (INVALID_ARGUMENT)", () => {
    for (const bad of ["a b", "a.*", "a.>", ".a", "a..b", "$kv", "x".repeat(2049)]) {
      expect(
        code(() => normalizeScope([bad])),
        bad,
      ).toBe("INVALID_ARGUMENT");
    }
    expect(code(() => normalizeScope(Array.from({ length: 1025 }, (_, i) => `p${i}.`)))).toBe("INVALID_ARGUMENT");
  });

  it("coverage: the whole bucket covers all; every node prefix must start with an artifact prefix", () => {
    expect(scopeCovers(undefined, undefined)).toBe(true);
    expect(scopeCovers(undefined, ["route.eu."])).toBe(true);
    expect(scopeCovers(["route."], undefined)).toBe(false);
    expect(scopeCovers(["route."], ["route.eu.", "route.us."])).toBe(true);
    expect(scopeCovers(["route.eu."], ["route."])).toBe(false);
    expect(scopeCovers(["route.eu."], ["route.eu.", "svc."])).toBe(false);
    expect(scopeCovers(["a.", "b."], ["b.x"])).toBe(true);
    expect(inFoldScope(["route.eu."], "route.eu.1")).toBe(true);
    expect(inFoldScope(["route.eu."], "route.us.1")).toBe(false);
    expect(inFoldScope(undefined, "anything")).toBe(true);
    expect(sameScope(undefined, undefined)).toBe(true);
    expect(sameScope(["a."], undefined)).toBe(false);
    expect(sameScope(["a.", "b."], ["a.", "b."])).toBe(true);
    expect(code(() => assertScopeCovers(["route.eu."], undefined, "the artifact"))).toBe("SCOPE_NOT_COVERED");
    expect(code(() => assertScopeCovers(undefined, ["x."], "the artifact"))).toBeUndefined();
  });

  it("export and import scopes: requested within held, never empty", () => {
    expect(resolveExportScope(undefined, undefined)).toBeUndefined();
    expect(resolveExportScope(["route."], undefined)).toEqual(["route."]);
    expect(resolveExportScope(undefined, { kind: "prefix", prefix: "route." })).toEqual(["route."]);
    expect(code(() => resolveExportScope(["route.eu."], { kind: "all" }))).toBe("SCOPE_NOT_COVERED");
    expect(code(() => resolveExportScope(undefined, { kind: "prefixes", prefixes: [] }))).toBe("INVALID_ARGUMENT");
    expect(resolveImportScope(undefined)).toBeUndefined();
    expect(resolveImportScope({ kind: "prefixes", prefixes: ["b.", "a."] })).toEqual(["a.", "b."]);
    expect(code(() => resolveImportScope({ kind: "prefixes", prefixes: [] }))).toBe("INVALID_ARGUMENT");
  });
});

describe("manifest scope field", () => {
  it("is omitted when absent: an unscoped manifest keeps its exact bytes", () => {
    const text = encodeManifest(manifest());
    expect(text).not.toContain("scope");
    expect(text).toBe(
      `${JSON.stringify(
        {
          schemaVersion: 1,
          backend: "leveldb",
          backendVersion: "1",
          cursor: "000000000000002a",
          createdAt: "2026-01-02T03:04:05.000Z",
          files: [{ path: "data/a", size: 3, sha256: SHA }],
        },
        null,
        2,
      )}\n`,
    );
    expect(parseManifest(text).scope).toBeUndefined();
    expect("scope" in parseManifest(text)).toBe(false);
  });

  it("round-trips, after the cursor, byte for byte", () => {
    const text = encodeManifest(manifest(["route.eu.", "svc."]));
    expect(text).toBe(doc(["route.eu.", "svc."]));
    const back = parseManifest(text);
    expect(back.scope).toEqual(["route.eu.", "svc."]);
    expect(encodeManifest(back)).toBe(text);
    expect(text.indexOf('"cursor"')).toBeLessThan(text.indexOf('"scope"'));
    expect(text.indexOf('"scope"')).toBeLessThan(text.indexOf('"createdAt"'));
  });

  it.each([
    ["an empty list", [], /non-empty array/],
    ["not an array", "route.", /non-empty array/],
    ["null", null, /non-empty array/],
    ["a non-string", [1], /scope\[0\]/],
    ["the empty prefix", [""], /scope\[0\].*empty/],
    ["a wildcard", ["route.>"], /scope\[0\]/],
    ["an empty token", ["route..eu"], /scope\[0\]/],
    ["unsorted", ["svc.", "route."], /not sorted/],
    ["a duplicate", ["route.", "route."], /duplicated/],
    ["a covered prefix", ["route.", "route.eu."], /already covered/],
  ])("refuses %s", (_name, scope, pattern) => {
    let caught: unknown;
    try {
      parseManifest(doc(scope));
    } catch (err) {
      caught = err;
    }
    expect(SlipstreamError.is(caught, "ARTIFACT_INVALID")).toBe(true);
    expect((caught as Error).message).toMatch(pattern);
  });
});

describe("mass-delete guard kernel", () => {
  it("applies defaults and validates", () => {
    expect(resolveMassDeleteGuard(undefined)).toEqual({ maxShare: 0.5, minKeys: 100 });
    expect(resolveMassDeleteGuard(false)).toBeUndefined();
    expect(code(() => resolveMassDeleteGuard({ maxShare: 2 }))).toBe("INVALID_ARGUMENT");
    expect(code(() => resolveMassDeleteGuard({ minKeys: -1 }))).toBe("INVALID_ARGUMENT");
    expect(() => resolveMassDeleteGuard({ onMassDelete: 1 as never })).toThrow(TypeError);
  });

  it("trips above the share and at least minKeys", () => {
    const g = resolveMassDeleteGuard({ maxShare: 0.5, minKeys: 10 });
    expect(massDeleteTrips(g, 11, 20)).toBe(true);
    expect(massDeleteTrips(g, 10, 20)).toBe(false); // exactly half is allowed
    expect(massDeleteTrips(g, 9, 9)).toBe(false); // below minKeys
    expect(massDeleteTrips(g, 0, 0)).toBe(false);
    expect(massDeleteTrips(undefined, 1000, 1000)).toBe(false);
  });

  it("asks the hook: only true allows; a throwing hook refuses", async () => {
    const info = { deletes: 5, foldKeys: 6, liveKeys: 1, cursor: WatchCursor.none(), sample: [] };
    const base = { maxShare: 0.5, minKeys: 1 };
    expect(await askMassDelete(base, info)).toEqual({ allowed: false });
    expect((await askMassDelete({ ...base, onMassDelete: () => true }, info)).allowed).toBe(true);
    expect((await askMassDelete({ ...base, onMassDelete: () => "yes" as never }, info)).allowed).toBe(false);
    const boom = new Error("boom");
    expect(
      await askMassDelete(
        {
          ...base,
          onMassDelete: () => {
            throw boom;
          },
        },
        info,
      ),
    ).toEqual({ allowed: false, hookError: boom });
  });
});
