import { type ChildProcess, spawn } from "node:child_process";
import { lstat, mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SlipstreamError } from "@slipstream/core";
import { tempDir } from "@slipstream/testkit";
import { describe, expect, it } from "vitest";
import { LevelSnapshotStore } from "../src/index.js";
import { at, put } from "./helpers.js";

const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
const fixture = fileURLToPath(new URL("./fixtures/artifact-op.ts", import.meta.url));
const ENTRIES = 60_000;

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Runs the fixture; resolves once it printed "start" with a promise of its exit. */
async function startOp(op: "export" | "import", from: string, to: string) {
  const child: ChildProcess = spawn(
    process.execPath,
    ["--conditions=@slipstream/source", "--import", "tsx", fixture, op, from, to],
    { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  let err = "";
  child.stderr?.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const exit = new Promise<{ code: number | null; signal: string | null; out: string; err: string }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal, out, err })),
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("start\n")) resolve();
    });
    void exit.then((r) => reject(new Error(`${op} child exited before starting: ${r.err}`)));
  });
  const started = performance.now();
  return { child, exit, started };
}

async function sourceFold(dir: string): Promise<void> {
  const store = await LevelSnapshotStore.open(dir);
  const value = "x".repeat(180);
  for (let start = 0; start < ENTRIES; start += 10_000) {
    const batch = [];
    for (let i = start; i < start + 10_000; i++)
      batch.push(put(`k.${String(i).padStart(7, "0")}`, `${i}${value}`, i + 1));
    await store.apply(batch, at(start + 10_000));
  }
  await store.close();
}

/** Kills `op` at random points of a measured run, `rounds` times; returns the outcome of each. */
async function killRounds(
  op: "export" | "import",
  from: string,
  destOf: (round: number) => string,
  rounds: number,
): Promise<string[]> {
  // One undisturbed run to learn how long the operation takes here.
  const probe = await startOp(op, from, destOf(-1));
  const probeExit = await probe.exit;
  expect(probeExit.code, probeExit.err).toBe(0);
  const duration = performance.now() - probe.started;
  const outcomes: string[] = [];
  for (let round = 0; round < rounds; round++) {
    const { child, exit } = await startOp(op, from, destOf(round));
    await new Promise((r) => setTimeout(r, Math.random() * duration * 0.6));
    child.kill("SIGKILL");
    const r = await exit;
    outcomes.push(r.signal === "SIGKILL" ? "killed" : `exit ${r.code}`);
  }
  return outcomes;
}

describe("crash during export or import (kill -9 of the process doing it)", () => {
  it("an import killed at any point leaves nothing at the destination, or the complete fold", async () => {
    await using tmp = await tempDir("slipstream-leveldb-crash-art-");
    await sourceFold(join(tmp.path, "source"));
    const store = await LevelSnapshotStore.open(join(tmp.path, "source"));
    const manifest = await store.exportTo(join(tmp.path, "artifact"));
    await store.close();
    const dests = join(tmp.path, "dests");
    await mkdir(dests);
    const outcomes = await killRounds("import", join(tmp.path, "artifact"), (r) => join(dests, `fold-${r}`), 6);
    expect(outcomes.filter((o) => o === "killed").length, outcomes.join(",")).toBeGreaterThanOrEqual(2);
    let complete = 0;
    for (let round = 0; round < outcomes.length; round++) {
      const dest = join(dests, `fold-${round}`);
      if (!(await exists(dest))) continue;
      // Present means complete: it opens at the manifest's cursor with every entry.
      const fold = await LevelSnapshotStore.open(dest);
      expect(fold.cursor.equals(manifest.cursor)).toBe(true);
      expect(await fold.count()).toBe(ENTRIES);
      await fold.close();
      complete++;
    }
    // Only hidden stages (never a half-made fold) may be left beside the destinations.
    const names = await readdir(dests);
    for (const n of names)
      expect(n === "fold--1" || /^fold-\d$/.test(n) || n.startsWith(".slipstream-import-")).toBe(true);
    expect(names.filter((n) => /^fold-\d$/.test(n)).length).toBe(complete);
    // The artifact itself is untouched and still imports.
    const again = await LevelSnapshotStore.import(join(tmp.path, "artifact"), join(tmp.path, "final"));
    expect(await again.count()).toBe(ENTRIES);
    await again.close();
  }, 180_000);

  it("an export killed at any point leaves nothing at the destination, or a complete artifact; the fold is intact", async () => {
    await using tmp = await tempDir("slipstream-leveldb-crash-art-");
    const source = join(tmp.path, "source");
    await sourceFold(source);
    const dests = join(tmp.path, "dests");
    await mkdir(dests);
    const outcomes = await killRounds("export", source, (r) => join(dests, `artifact-${r}`), 6);
    expect(outcomes.filter((o) => o === "killed").length, outcomes.join(",")).toBeGreaterThanOrEqual(2);
    for (let round = 0; round < outcomes.length; round++) {
      const dest = join(dests, `artifact-${round}`);
      if (!(await exists(dest))) continue;
      // Present means complete and verified: it imports at the fold's cursor.
      let imported: LevelSnapshotStore | undefined;
      try {
        imported = await LevelSnapshotStore.import(dest, join(tmp.path, `check-${round}`));
      } catch (err) {
        expect.fail(`artifact-${round} exists but does not import: ${SlipstreamError.is(err) ? err.message : err}`);
      }
      expect(imported.cursor.revision).toBe(BigInt(ENTRIES));
      expect(await imported.count()).toBe(ENTRIES);
      await imported.close();
    }
    for (const n of await readdir(dests)) {
      expect(/^artifact--?\d$/.test(n) || n.startsWith(".slipstream-artifact-")).toBe(true);
    }
    // The live fold survived every killed export.
    const fold = await LevelSnapshotStore.open(source);
    expect(fold.cursor.revision).toBe(BigInt(ENTRIES));
    expect(await fold.count()).toBe(ENTRIES);
    await fold.close();
  }, 180_000);
});
