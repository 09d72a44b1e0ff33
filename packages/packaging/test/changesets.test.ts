/**
 * The release path on a temporary copy of the repository (the checkout is never touched):
 * `changeset version` with the pending .changeset/*.md files, then `pnpm pack` and
 * `pnpm publish --dry-run` of every published package. The expected versions are computed
 * here from the changeset files, independently of changesets itself.
 */
import { execFile } from "node:child_process";
import { cp, readdir, readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { promisify } from "node:util";
import { repoRoot, type TempDir, tempDir } from "@slipstream/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Packed, pack, publishedPackages, type WorkspacePackage } from "./pack.js";

const run = promisify(execFile);
type Bump = "major" | "minor" | "patch";
const ORDER: Bump[] = ["patch", "minor", "major"];
const SKIP = new Set(["node_modules", ".git", ".cache", ".turbo", "coverage"]);

interface Changeset {
  readonly file: string;
  readonly bumps: Map<string, Bump>;
  readonly summary: string;
}

/** Parses the pending changesets: YAML-ish frontmatter of `"name": bump` lines, then the summary. */
async function pendingChangesets(dir: string): Promise<Changeset[]> {
  const out: Changeset[] = [];
  for (const f of (await readdir(dir)).sort()) {
    if (!f.endsWith(".md") || f === "README.md") continue;
    const text = await readFile(join(dir, f), "utf8");
    const m = /^---\n([\s\S]*?)\n---\n([\s\S]*)$/.exec(text);
    if (!m) throw new Error(`${f}: no frontmatter`);
    const bumps = new Map<string, Bump>();
    for (const line of (m[1] as string).split("\n")) {
      const b = /^\s*["']?([^"':]+)["']?\s*:\s*(major|minor|patch)\s*$/.exec(line);
      if (b) bumps.set(b[1] as string, b[2] as Bump);
    }
    out.push({ file: f, bumps, summary: (m[2] as string).trim() });
  }
  return out;
}

function inc(version: string, bump: Bump): string {
  const [major, minor, patch] = version.split(".").map(Number) as [number, number, number];
  if (bump === "major") return `${major + 1}.0.0`;
  if (bump === "minor") return `${major}.${minor + 1}.0`;
  return `${major}.${minor}.${patch + 1}`;
}

describe("changeset version + publish dry run on a copy", () => {
  let work: TempDir;
  let copy: string;
  let before: WorkspacePackage[];
  let after: WorkspacePackage[];
  let changesets: Changeset[];
  const packed = new Map<string, Packed>();
  const dryRuns = new Map<string, string>();

  beforeAll(async () => {
    const root = repoRoot();
    work = await tempDir("slipstream-release-");
    copy = join(work.path, "repo");
    await cp(root, copy, { recursive: true, filter: (src) => !SKIP.has(basename(src)) });
    before = publishedPackages(copy);
    changesets = await pendingChangesets(join(copy, ".changeset"));
    // An offline install from the store the real install filled: links workspace packages so
    // pnpm can resolve `workspace:` ranges when it packs.
    await run("pnpm", ["install", "--offline", "--frozen-lockfile", "--ignore-scripts"], { cwd: copy });
    await run("pnpm", ["exec", "changeset", "version"], { cwd: copy });
    after = publishedPackages(copy);
    const out = join(work.path, "tarballs");
    for (const p of after) {
      packed.set(p.name, await pack(p, out));
      // An unreachable registry: a dry run that tried to upload would fail instead.
      const r = await run("pnpm", ["publish", "--dry-run", "--no-git-checks", "--registry", "http://127.0.0.1:9/"], {
        cwd: p.dir,
      });
      dryRuns.set(p.name, `${r.stdout}${r.stderr}`);
    }
  }, 300_000);

  afterAll(async () => {
    await work?.cleanup();
  });

  it("has pending changesets to check (else this test proves nothing)", () => {
    expect(changesets.length).toBeGreaterThan(0);
  });

  it("names only packages that exist and are published", () => {
    const names = new Set(before.map((p) => p.name));
    for (const c of changesets) for (const name of c.bumps.keys()) expect(names, `${c.file}: ${name}`).toContain(name);
  });

  it("bumps each package by its largest pending change; others stay or take a patch for a bumped dependency", () => {
    const wanted = new Map<string, Bump>();
    for (const c of changesets)
      for (const [name, b] of c.bumps)
        if (ORDER.indexOf(b) > ORDER.indexOf(wanted.get(name) ?? "patch") || !wanted.has(name)) wanted.set(name, b);
    for (const p of before) {
      const now = after.find((q) => q.name === p.name)?.version;
      const bump = wanted.get(p.name);
      if (bump) {
        expect(now, p.name).toBe(inc(p.version, bump));
        continue;
      }
      const deps = Object.keys((p.manifest.dependencies ?? {}) as Record<string, string>);
      const depBumped = deps.some((d) => wanted.has(d));
      expect([p.version, ...(depBumped ? [inc(p.version, "patch")] : [])], p.name).toContain(now);
    }
  });

  it("consumes the changesets and writes each summary into the bumped packages' changelogs", async () => {
    const left = (await readdir(join(copy, ".changeset"))).filter((f) => f.endsWith(".md") && f !== "README.md");
    expect(left).toEqual([]);
    for (const p of after) {
      const old = before.find((q) => q.name === p.name);
      if (old?.version === p.version) continue;
      const log = await readFile(join(p.dir, "CHANGELOG.md"), "utf8");
      expect(log.startsWith(`# ${p.name}\n\n## ${p.version}\n`), p.name).toBe(true);
      for (const c of changesets.filter((c) => c.bumps.has(p.name))) {
        const firstLine = c.summary.split("\n")[0]?.replace(/^- /, "") ?? "";
        expect(log, `${p.name} changelog lacks ${c.file}`).toContain(firstLine);
      }
    }
  });

  it("leaves private packages alone", async () => {
    for (const dir of ["packages/testkit", "packages/e2e", "apps/demo", "apps/bench"]) {
      const read = async (r: string) => JSON.parse(await readFile(join(r, dir, "package.json"), "utf8")).version;
      expect(await read(copy), dir).toBe(await read(repoRoot()));
    }
  });

  it("packs real version ranges: every internal dependency is the version released beside it", () => {
    for (const p of after) {
      const m = packed.get(p.name)?.manifest;
      expect(m?.version, p.name).toBe(p.version);
      expect(JSON.stringify(m)).not.toContain("workspace:");
      for (const field of ["dependencies", "peerDependencies", "optionalDependencies"]) {
        for (const [dep, range] of Object.entries((m?.[field] ?? {}) as Record<string, string>)) {
          const sibling = after.find((q) => q.name === dep);
          if (sibling) expect(range, `${p.name} ${field} ${dep}`).toBe(sibling.version);
        }
      }
    }
  });

  it("publish --dry-run accepts every package at its new version", () => {
    for (const p of after) expect(dryRuns.get(p.name), p.name).toContain(`${p.name}@${p.version}`);
  });
});
