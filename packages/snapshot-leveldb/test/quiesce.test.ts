import { cp } from "node:fs/promises";
import { join } from "node:path";
import { SlipstreamError } from "@slipstream/core";
import { type TempDir, tempDir } from "@slipstream/testkit";
import { Level } from "level";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { compactionBacklogOf, L0_COMPACTION_TRIGGER } from "../src/fold-db.js";
import { LevelSnapshotStore } from "../src/index.js";
import { at, put } from "./helpers.js";

let tmp: TempDir;
beforeEach(async () => {
  tmp = await tempDir("slipstream-quiesce-");
});
afterEach(async () => {
  await tmp[Symbol.asyncDispose]();
});

/** A `leveldb.sstables` listing with `sizes[level]` = the byte sizes of that level's tables. */
function listing(sizes: number[][]): string {
  let n = 10;
  return sizes
    .map(
      (tables, level) =>
        `--- level ${level} ---\n${tables.map((b) => ` ${n++}:${b}['a' @ 1 : 1 .. 'z' @ 2 : 1]\n`).join("")}`,
    )
    .join("");
}

const MiB = 1048576;

describe("compactionBacklogOf (LevelDB's own compaction rule)", () => {
  it("level 0 is due from the trigger's file count on, whatever their size", () => {
    expect(compactionBacklogOf(listing([]))).toBe(false);
    expect(compactionBacklogOf(listing([Array(L0_COMPACTION_TRIGGER - 1).fill(100)]))).toBe(false);
    expect(compactionBacklogOf(listing([Array(L0_COMPACTION_TRIGGER).fill(100)]))).toBe(true);
  });

  it("levels 1–5 are due at 10 MiB × 10^(n−1); the last level never is", () => {
    expect(compactionBacklogOf(listing([[], [10 * MiB - 1]]))).toBe(false);
    expect(compactionBacklogOf(listing([[], [5 * MiB, 5 * MiB]]))).toBe(true);
    expect(compactionBacklogOf(listing([[], [], [100 * MiB - 1]]))).toBe(false);
    expect(compactionBacklogOf(listing([[], [], [100 * MiB]]))).toBe(true);
    expect(compactionBacklogOf(listing([[], [], [], [], [], [100_000 * MiB]]))).toBe(true);
    expect(compactionBacklogOf(listing([[], [], [], [], [], [], [10_000_000 * MiB]]))).toBe(false);
  });
});

/** Applies `n` puts of ~170-byte values in batches of 500; returns the last revision. */
async function fill(store: LevelSnapshotStore, n: number): Promise<number> {
  let rev = 0;
  for (let i = 0; i < n; i += 500) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 500); j++)
      batch.push(put(`k.${String(j).padStart(7, "0")}`, `${j}-${"v".repeat(160)}`, ++rev));
    await store.apply(batch, at(rev));
  }
  return rev;
}

/** The compaction backlog recorded in a fold directory's files (read from a copy, right after opening it). */
async function backlogOf(dir: string, name: string): Promise<boolean> {
  const copy = join(tmp.path, name);
  await cp(dir, copy, { recursive: true });
  const db = new Level(copy);
  await db.open();
  try {
    return compactionBacklogOf((db as unknown as { getProperty(p: string): string }).getProperty("leveldb.sstables"));
  } finally {
    await db.close();
  }
}

describe("LevelSnapshotStore.quiesce and exportTo({ quiesceMs })", () => {
  it("a fold loaded in bulk has compactions due; exported with quiesceMs, its artifact has none", async () => {
    // A small write buffer turns the load into many level-0 tables; closing right after it
    // leaves the compactions it queued undone (LevelDB stops them), as a crash would.
    const dir = join(tmp.path, "fold");
    const loading = await LevelSnapshotStore.open(dir, { writeBufferSize: 64 * 1024 });
    const last = await fill(loading, 60_000);
    await loading.close();
    expect(await backlogOf(dir, "loaded-copy")).toBe(true);
    const store = await LevelSnapshotStore.open(dir, { writeBufferSize: 64 * 1024 });
    try {
      const manifest = await store.exportTo(join(tmp.path, "artifact"), { quiesceMs: 60_000 });
      expect(manifest.cursor.revision).toBe(BigInt(last));
      expect(await backlogOf(join(tmp.path, "artifact", "data"), "artifact-copy")).toBe(false);
      const imported = await LevelSnapshotStore.import(join(tmp.path, "artifact"), join(tmp.path, "imported"));
      try {
        expect(await imported.count()).toBe(60_000);
        expect(imported.cursor.revision).toBe(BigInt(last));
      } finally {
        await imported.close();
      }
      // The same fold without quiesceMs exports at once (whatever its backlog).
      const plain = await store.exportTo(join(tmp.path, "plain"));
      expect(plain.cursor.revision).toBe(BigInt(last));
    } finally {
      await store.close();
    }
  });

  it("quiesce: a quiet fold answers at once; bad timeouts, aborts and a closed store", async () => {
    const store = await LevelSnapshotStore.open(join(tmp.path, "fold"));
    await fill(store, 1000);
    expect(await store.quiesce()).toBe(true);
    // timeoutMs 0 gives up before the memtable flush has even finished.
    expect(await store.quiesce({ timeoutMs: 0 })).toBe(false);
    await expect(store.quiesce({ timeoutMs: -1 })).rejects.toThrow(TypeError);
    await expect(store.quiesce({ timeoutMs: Number.NaN })).rejects.toThrow(TypeError);
    await expect(store.exportTo(join(tmp.path, "a"), { quiesceMs: -5 })).rejects.toThrow(TypeError);
    await expect(store.quiesce({ signal: AbortSignal.abort() })).rejects.toSatisfy((e) =>
      SlipstreamError.is(e, "ABORTED"),
    );
    await store.close();
    expect(await store.quiesce()).toBe(false);
  });
});
