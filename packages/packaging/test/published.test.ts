/**
 * Every published package as a user gets it: `pnpm pack` (publishConfig applied), then
 * publint (strict), are-the-types-wrong with the ESM-only profile, and the packed
 * manifest's own rules.
 */
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { type TempDir, tempDir } from "@slipstream/testkit";
import { publint } from "publint";
import { formatMessage } from "publint/utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Packed, packAll, publishedPackages } from "./pack.js";

const run = promisify(execFile);
const ATTW = join(import.meta.dirname, "..", "node_modules", ".bin", "attw");
const pkgs = publishedPackages();
let out: TempDir;
let packed: Map<string, Packed>;

beforeAll(async () => {
  out = await tempDir("slipstream-pack-");
  packed = await packAll(pkgs, out.path);
});
afterAll(async () => {
  await out?.cleanup();
});

const get = (name: string): Packed => {
  const p = packed.get(name);
  if (!p) throw new Error(`${name} was not packed`);
  return p;
};

it("finds the published packages", () => {
  expect(pkgs.map((p) => p.name)).toContain("@slipstream/core");
  expect(pkgs.length).toBeGreaterThanOrEqual(9);
  expect(pkgs.map((p) => p.name)).not.toContain("@slipstream/testkit");
});

describe.each(pkgs.map((p) => p.name))("%s", (name) => {
  it("passes publint --strict", async () => {
    const p = get(name);
    const tarball = (await readFile(p.tarball)).buffer as ArrayBuffer;
    const { messages, pkg } = await publint({ pack: { tarball }, strict: true, level: "suggestion" });
    expect(messages.map((m) => `${m.type}: ${formatMessage(m, pkg) ?? m.code}`)).toEqual([]);
  });

  it("passes are-the-types-wrong (ESM only)", async () => {
    const p = get(name);
    // attw exits 1 on any problem for the resolutions the profile keeps.
    const r = await run(ATTW, [p.tarball, "--profile", "esm-only", "--format", "json"], {
      maxBuffer: 16 * 1024 * 1024,
    }).catch((err: { stdout?: string; stderr?: string; code?: number }) => err);
    const report = JSON.parse(r.stdout ?? "{}") as { problems?: unknown[]; analysis?: unknown };
    expect("code" in r ? r.code : 0, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(report.analysis).toBeDefined();
  });

  it("packs a manifest for users: no workspace ranges, no source condition, dist and types shipped", () => {
    const p = get(name);
    const text = JSON.stringify(p.manifest);
    expect(text).not.toContain("workspace:");
    expect(text).not.toContain("@slipstream/source");
    expect(p.manifest.exports).toEqual({ ".": { types: "./dist/index.d.ts", default: "./dist/index.js" } });
    expect(p.files).toContain("dist/index.js");
    expect(p.files).toContain("dist/index.d.ts");
    expect(p.files).toContain("README.md");
    expect(p.files.filter((f) => f.endsWith(".tsbuildinfo") || f.startsWith("test/"))).toEqual([]);
    // Internal runtime dependencies are pinned to the version packed beside them.
    const deps = (p.manifest.dependencies ?? {}) as Record<string, string>;
    for (const [dep, range] of Object.entries(deps)) {
      const sibling = pkgs.find((q) => q.name === dep);
      if (sibling) expect(range, `${name} -> ${dep}`).toBe(sibling.version);
    }
  });
});
