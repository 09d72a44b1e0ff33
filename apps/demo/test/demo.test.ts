/**
 * `npm run demo` as a real process at a small size, once per transport: it must exit 0, print
 * no control codes into a pipe, and end with a table where every node's fold equals the
 * bucket. Timings are printed by the demo, never asserted.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { hasNats, natsMissingReason, repoRoot } from "@slipstream/testkit";
import { describe, expect, it } from "vitest";
import { parseArgs } from "../src/args.js";

function runDemo(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
  const root = repoRoot();
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--conditions=@slipstream/source", "--import", "tsx", join(root, "apps/demo/src/index.ts"), ...args],
      {
        cwd: root,
        env: { ...process.env, DEMO_ROUTES: "", FORCE_COLOR: "0", ...env },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString("utf8");
    });
    child.stderr.on("data", (b: Buffer) => {
      out += b.toString("utf8");
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, out }));
  });
}

/** The final table's rows: node → its cells. */
function finalTable(out: string): Map<string, string[]> {
  const lines = out.split("\n");
  const head = lines.findIndex((l) => /^\s+node\s+how it started\s+keys\s+cursor\s+digest/.test(l));
  const rows = new Map<string, string[]>();
  if (head < 0) return rows;
  for (const line of lines.slice(head + 2)) {
    if (line.trim() === "") break;
    const cells = line.trim().split(/\s{2,}/);
    rows.set(cells[0] ?? "", cells);
  }
  return rows;
}

describe.skipIf(!hasNats("any"))(`npm run demo, small size ${natsMissingReason("any") ?? ""}`, () => {
  for (const transport of ["fs", "s3", "azure"] as const) {
    it(`tells the whole story through the ${transport} transport`, { timeout: 300_000 }, async () => {
      const { code, out } = await runDemo(["--routes", "400", "--transport", transport]);
      if (code !== 0) console.error(out);
      expect(code).toBe(0);
      expect(out.includes("\u001b")).toBe(false); // a pipe gets no control codes
      expect(out.includes("\r")).toBe(false);
      expect(out).toContain("[7/7]");
      expect(out).toMatch(/✓ node A received \d+ updates/);
      expect(out).toMatch(/✓ exactly one node exported in round 1/);
      // Every artifact of the run is signed and encrypted; nodes B and C bootstrap from them under a trust policy.
      expect(out).toMatch(
        /artifacts are signed \(Ed25519 key [0-9a-f]{16}, the only key the nodes trust\) and encrypted at rest/,
      );
      expect(out).toMatch(/✓ synthetic deletes: [1-9]/);
      const rows = finalTable(out);
      expect([...rows.keys()]).toEqual(["A", "B", "C", "R", "D", "bucket"]);
      const bucket = rows.get("bucket") ?? [];
      for (const node of ["A", "B", "C", "R", "D"]) {
        const cells = rows.get(node) ?? [];
        expect(cells[2], `node ${node} keys`).toBe(bucket[2]);
        expect(cells[3], `node ${node} cursor`).toBe(bucket[3]);
        expect(cells[4], `node ${node} digest`).toBe(`${bucket[4]} ✓`);
      }
      expect(out).toMatch(/all folds equal the bucket/);
    });
  }

  it("exits non-zero and marks the node when a fold differs from the bucket", { timeout: 300_000 }, async () => {
    // Fault injection: node C's store gets a key the bucket never had.
    const { code, out } = await runDemo(["--routes", "300"], { SLIPSTREAM_DEMO_FAULT: "stray-key:C" });
    expect(code).toBe(1);
    const rows = finalTable(out);
    expect(rows.get("C")?.[4]).toMatch(/ ✗$/);
    expect(rows.get("A")?.[4]).toMatch(/ ✓$/);
    expect(out).toMatch(/FAILED: node C's fold/);
  });
});

describe("demo arguments", () => {
  it("parses the flags, and refuses bad ones with the usage", () => {
    const a = parseArgs(["--transport", "azure", "--nats=nats://h:4222", "--routes", "500"]);
    expect(a).toEqual({ transport: "azure", nats: "nats://h:4222", routes: 500, help: false });
    expect(parseArgs([], {}).routes).toBe(30_000);
    expect(parseArgs([], { DEMO_ROUTES: "1000" }).routes).toBe(1000);
    expect(() => parseArgs(["--transport", "gcs"])).toThrow(/--transport must be one of fs, s3, azure/);
    expect(() => parseArgs(["--routes", "10"])).toThrow(/at least 200/);
    expect(() => parseArgs(["--bogus"])).toThrow(/unknown argument --bogus/);
    expect(() => parseArgs(["--nats"])).toThrow(/--nats needs a value/);
  });
});
