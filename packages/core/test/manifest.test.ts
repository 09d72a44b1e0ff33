import {
  type ExportManifest,
  encodeManifest,
  exporterProblem,
  MAX_EXPORTER_CHARS,
  MAX_MANIFEST_BYTES,
  parseManifest,
  payloadPathProblem,
  SlipstreamError,
  WatchCursor,
} from "@slipstream/core";
import { describe, expect, it } from "vitest";

const SHA = "a".repeat(64);

function good(): Record<string, unknown> {
  return {
    schemaVersion: 1,
    backend: "leveldb",
    backendVersion: "1",
    cursor: "000000000000002a",
    createdAt: "2026-01-02T03:04:05.000Z",
    files: [
      { path: "data/a", size: 3, sha256: SHA },
      { path: "data/dir/b", size: 0, sha256: "b".repeat(64) },
    ],
  };
}

function expectInvalid(input: string | Uint8Array, pattern: RegExp): void {
  let caught: unknown;
  try {
    parseManifest(input);
  } catch (err) {
    caught = err;
  }
  expect(SlipstreamError.is(caught, "ARTIFACT_INVALID"), `expected ARTIFACT_INVALID, got ${String(caught)}`).toBe(true);
  expect((caught as Error).message).toMatch(pattern);
}

describe("manifest codec", () => {
  it("round-trips and writes canonical bytes", () => {
    const m: ExportManifest = {
      schemaVersion: 1,
      backend: "memory",
      backendVersion: "1",
      cursor: WatchCursor.fromRevision(42n),
      createdAt: new Date("2026-01-02T03:04:05.000Z"),
      files: [
        { path: "data/z", size: 1, sha256: SHA },
        { path: "data/a", size: 2, sha256: SHA },
      ],
    };
    const text = encodeManifest(m);
    const back = parseManifest(text);
    expect(back.cursor.revision).toBe(42n);
    expect(back.files.map((f) => f.path)).toEqual(["data/a", "data/z"]);
    expect(back.createdAt.toISOString()).toBe("2026-01-02T03:04:05.000Z");
    expect(encodeManifest(back)).toBe(text);
    expect(text.endsWith("}\n")).toBe(true);
    expect(text.indexOf('"schemaVersion"')).toBeLessThan(text.indexOf('"files"'));
  });

  it("accepts a none cursor and a 10-byte cursor", () => {
    expect(parseManifest(JSON.stringify({ ...good(), cursor: "" })).cursor.isNone).toBe(true);
    expect(parseManifest(JSON.stringify({ ...good(), cursor: "01".repeat(10) })).cursor.toHex()).toBe("01".repeat(10));
    expect(parseManifest(new TextEncoder().encode(JSON.stringify(good()))).backend).toBe("leveldb");
  });

  const mutate = (f: (d: Record<string, unknown>) => void): string => {
    const d = good();
    f(d);
    return JSON.stringify(d);
  };
  const withFile = (file: unknown): string => mutate((d) => (d.files = [file]));
  const withPath = (path: unknown): string => withFile({ path, size: 1, sha256: SHA });

  const cases: [string, string | Uint8Array, RegExp][] = [
    ["not JSON", "{nope", /malformed manifest/],
    ["truncated JSON", JSON.stringify(good()).slice(0, 40), /malformed manifest/],
    ["a JSON array", "[]", /expected a JSON object/],
    ["JSON null", "null", /expected a JSON object/],
    ["invalid UTF-8", new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), /not UTF-8/],
    ["schemaVersion 999", mutate((d) => (d.schemaVersion = 999)), /unsupported artifact schemaVersion 999/],
    ["schemaVersion as string", mutate((d) => (d.schemaVersion = "1")), /unsupported artifact schemaVersion/],
    ["missing schemaVersion", mutate((d) => delete d.schemaVersion), /missing field "schemaVersion"/],
    ["unknown top-level field", mutate((d) => (d.extra = 1)), /unknown field "extra"/],
    ["missing files", mutate((d) => delete d.files), /missing field "files"/],
    ["missing cursor", mutate((d) => delete d.cursor), /missing field "cursor"/],
    ["backend empty", mutate((d) => (d.backend = "")), /backend/],
    ["backend with slash", mutate((d) => (d.backend = "../x")), /backend/],
    ["backend not a string", mutate((d) => (d.backend = 7)), /backend/],
    ["backendVersion empty", mutate((d) => (d.backendVersion = "")), /backendVersion/],
    ["backendVersion number", mutate((d) => (d.backendVersion = 1)), /backendVersion/],
    ["cursor odd hex", mutate((d) => (d.cursor = "abc")), /cursor "abc"/],
    ["cursor non-hex", mutate((d) => (d.cursor = "zz")), /cursor "zz"/],
    ["cursor 11 bytes", mutate((d) => (d.cursor = "00".repeat(11))), /at most 10 bytes/],
    ["cursor uppercase", mutate((d) => (d.cursor = "000000000000002A")), /lowercase/],
    ["cursor as number", mutate((d) => (d.cursor = 42)), /cursor/],
    ["createdAt garbage", mutate((d) => (d.createdAt = "yesterday")), /createdAt/],
    ["createdAt number", mutate((d) => (d.createdAt = 0)), /createdAt/],
    ["files not an array", mutate((d) => (d.files = {})), /files must be an array/],
    ["file entry null", withFile(null), /files\[0\] must be an object/],
    ["file unknown field", withFile({ path: "data/a", size: 1, sha256: SHA, mode: 7 }), /unknown field "mode"/],
    ["file missing sha256", withFile({ path: "data/a", size: 1 }), /missing field "sha256"/],
    ["negative size", withFile({ path: "data/a", size: -1, sha256: SHA }), /size/],
    ["fractional size", withFile({ path: "data/a", size: 1.5, sha256: SHA }), /size/],
    ["size as string", withFile({ path: "data/a", size: "1", sha256: SHA }), /size/],
    ["unsafe size", withFile({ path: "data/a", size: 2 ** 60, sha256: SHA }), /size/],
    ["short sha256", withFile({ path: "data/a", size: 1, sha256: "ab" }), /sha256/],
    ["uppercase sha256", withFile({ path: "data/a", size: 1, sha256: "A".repeat(64) }), /sha256/],
    ["path ../escape", withPath("../escape"), /outside data\//],
    ["path absolute", withPath("/abs/path"), /absolute/],
    ["path data/../escape", withPath("data/../escape"), /'\.\.' segment/],
    ["path data/./x", withPath("data/./x"), /'\.' segment/],
    ["path data//x", withPath("data//x"), /empty or doubled/],
    ["path trailing slash", withPath("data/x/"), /empty or doubled/],
    ["path backslash", withPath("data/a\\b"), /backslash/],
    ["path outside data", withPath("nondata/x"), /outside data\//],
    ["path data/", withPath("data/"), /empty or doubled/],
    ["path data", withPath("data"), /names data\/ itself/],
    ["path empty", withPath(""), /is empty/],
    ["path NUL", withPath("data/a\0b"), /NUL/],
    ["path not a string", withPath(5), /must be a string/],
    ["path MANIFEST.json", withPath("MANIFEST.json"), /outside data\//],
    [
      "duplicate paths",
      mutate(
        (d) =>
          (d.files = [
            { path: "data/a", size: 1, sha256: SHA },
            { path: "data/a", size: 1, sha256: SHA },
          ]),
      ),
      /duplicated or not sorted/,
    ],
    [
      "unsorted paths",
      mutate(
        (d) =>
          (d.files = [
            { path: "data/b", size: 1, sha256: SHA },
            { path: "data/a", size: 1, sha256: SHA },
          ]),
      ),
      /duplicated or not sorted/,
    ],
    [
      "file that is also a directory",
      mutate(
        (d) =>
          (d.files = [
            { path: "data/a", size: 1, sha256: SHA },
            { path: "data/a/b", size: 1, sha256: SHA },
          ]),
      ),
      /both a file and a directory/,
    ],
    ["oversize manifest", `${" ".repeat(MAX_MANIFEST_BYTES)}{}`, /exceeds 1048576 bytes/],
    ["exporter empty", mutate((d) => (d.exporter = "")), /exporter is empty/],
    ["exporter null", mutate((d) => (d.exporter = null)), /exporter must be a string/],
    ["exporter number", mutate((d) => (d.exporter = 7)), /exporter must be a string/],
    ["exporter 257 chars", mutate((d) => (d.exporter = "x".repeat(257))), /exporter is longer than 256/],
    ["exporter newline", mutate((d) => (d.exporter = "node-a\nFAKE: ok")), /exporter contains a control/],
    ["exporter ANSI escape", mutate((d) => (d.exporter = "\u001b[31mred")), /exporter contains a control/],
    ["exporter bidi override", mutate((d) => (d.exporter = "abc\u202Edef")), /exporter contains a control/],
    ["exporter lone surrogate", mutate((d) => (d.exporter = "a\ud800b")), /exporter contains a control/],
    ["exporter misspelt", mutate((d) => (d.exportedBy = "a")), /unknown field "exportedBy"/],
  ];

  it("has at least 25 hostile cases", () => {
    expect(cases.length).toBeGreaterThanOrEqual(25);
  });

  it.each(cases)("rejects %s with ARTIFACT_INVALID", (_name, input, pattern) => {
    expectInvalid(input, pattern);
  });
});

describe("manifest exporter (optional)", () => {
  const base: ExportManifest = {
    schemaVersion: 1,
    backend: "memory",
    backendVersion: "1",
    cursor: WatchCursor.fromRevision(42n),
    createdAt: new Date("2026-01-02T03:04:05.000Z"),
    files: [{ path: "data/a", size: 2, sha256: SHA }],
  };

  it("is absent from the bytes when unset: a manifest without it encodes exactly as before", () => {
    const text = encodeManifest(base);
    expect(text).toBe(
      `${JSON.stringify(
        {
          schemaVersion: 1,
          backend: "memory",
          backendVersion: "1",
          cursor: "000000000000002a",
          createdAt: "2026-01-02T03:04:05.000Z",
          files: [{ path: "data/a", size: 2, sha256: SHA }],
        },
        null,
        2,
      )}\n`,
    );
    expect(text).not.toContain("exporter");
    expect("exporter" in parseManifest(text)).toBe(false);
    expect(encodeManifest({ ...base, exporter: undefined })).toBe(text);
  });

  it("round-trips when set, after createdAt and before files", () => {
    const text = encodeManifest({ ...base, exporter: "node-a:4242 (eu-west, ünïcode ✓)" });
    expect(text.indexOf('"createdAt"')).toBeLessThan(text.indexOf('"exporter"'));
    expect(text.indexOf('"exporter"')).toBeLessThan(text.indexOf('"files"'));
    const back = parseManifest(text);
    expect(back.exporter).toBe("node-a:4242 (eu-west, ünïcode ✓)");
    expect(encodeManifest(back)).toBe(text);
  });

  it("exporterProblem: 256 code points pass, 257 do not; astral characters count once", () => {
    expect(exporterProblem("x".repeat(MAX_EXPORTER_CHARS))).toBeUndefined();
    expect(exporterProblem("😀".repeat(256))).toBeUndefined();
    expect(exporterProblem("😀".repeat(257))).toMatch(/longer than 256/);
    expect(exporterProblem("tab\there")).toMatch(/control/);
    expect(exporterProblem("a\u2028b")).toMatch(/separator/);
    expect(exporterProblem(undefined)).toMatch(/must be a string/);
  });
});

describe("payloadPathProblem", () => {
  it("accepts nested normal paths", () => {
    expect(payloadPathProblem("data/a")).toBeUndefined();
    expect(payloadPathProblem("data/x/y/z.sst")).toBeUndefined();
    expect(payloadPathProblem("data/.hidden")).toBeUndefined();
    expect(payloadPathProblem("data/...")).toBeUndefined();
  });
  it("refuses overlong paths", () => {
    expect(payloadPathProblem(`data/${"x".repeat(5000)}`)).toMatch(/longer than/);
  });
});
