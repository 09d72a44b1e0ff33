/**
 * Benchmark 3 — LevelDB hydration: LevelSnapshotStore.apply batches against raw `level`
 * batch writes of the same keys and values into a fresh database.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { type KvEntry, type KvUpdate, WatchCursor } from "@slipstream/core";
import { LevelSnapshotStore } from "@slipstream/snapshot-leveldb";
import { tempDir } from "@slipstream/testkit";
import { Level } from "level";
import { putUpdates } from "./data.js";
import { dirBytes } from "./fsutil.js";
import { RssSampler } from "./memory.js";
import type { BenchOptions } from "./options.js";
import { type BenchResult, check, perSecond, rateRatio } from "./result.js";

interface Hydration {
  ms: number;
  bytes: number;
}

/** Raw `level` (classic-level defaults, `view` values): one `batch()` of puts per slice. */
async function hydrateRaw(dir: string, updates: readonly KvUpdate[], batch: number): Promise<Hydration> {
  const db = new Level<string, Uint8Array>(dir, { valueEncoding: "view" });
  await db.open();
  const t0 = performance.now();
  for (let i = 0; i < updates.length; i += batch) {
    const ops = [];
    for (const u of updates.slice(i, i + batch)) {
      const e = (u as { entry: KvEntry }).entry;
      ops.push({ type: "put" as const, key: e.key, value: e.value });
    }
    await db.batch(ops);
  }
  await db.close();
  const ms = performance.now() - t0;
  return { ms, bytes: await dirBytes(dir) };
}

/**
 * Raw `level` doing the same reads as the store: `hasMany` of the batch's keys (which the
 * store needs to keep its entry count exact), then `batch()`. Explains, not the baseline.
 */
async function hydrateRawHasMany(dir: string, updates: readonly KvUpdate[], batch: number): Promise<Hydration> {
  const db = new Level<string, Uint8Array>(dir, { valueEncoding: "view" });
  await db.open();
  const t0 = performance.now();
  for (let i = 0; i < updates.length; i += batch) {
    const ops = [];
    for (const u of updates.slice(i, i + batch)) {
      const e = (u as { entry: KvEntry }).entry;
      ops.push({ type: "put" as const, key: e.key, value: e.value });
    }
    await db.hasMany(ops.map((op) => op.key));
    await db.batch(ops);
  }
  await db.close();
  const ms = performance.now() - t0;
  return { ms, bytes: await dirBytes(dir) };
}

/** Ours: one atomic `apply(batch, cursor)` per slice, the cursor being the slice's last revision. */
async function hydrateOurs(
  dir: string,
  updates: readonly KvUpdate[],
  batch: number,
): Promise<Hydration & { count: number; cursor: bigint | undefined }> {
  const store = await LevelSnapshotStore.open(dir);
  const t0 = performance.now();
  for (let i = 0; i < updates.length; i += batch) {
    const slice = updates.slice(i, i + batch);
    await store.apply(slice, WatchCursor.fromRevision(BigInt(i + slice.length)));
  }
  const count = await store.count();
  const cursor = store.cursor.revision;
  await store.close();
  const ms = performance.now() - t0;
  return { ms, count, cursor, bytes: await dirBytes(dir) };
}

/**
 * Writes `entries` puts into a fresh LevelDB, alternating raw `level` and LevelSnapshotStore
 * for `rounds` rounds (best of each counts), each timed from the first batch to close. Also
 * times raw `level` with the store's extra read (`hasMany` per batch) to explain the gap.
 * No NATS.
 */
export async function benchHydrate(o: BenchOptions): Promise<BenchResult> {
  const t0 = performance.now();
  const mem = new RssSampler();
  await using dir = await tempDir("slipstream-bench-");
  const updates = putUpdates(o.entries, o.valueBytes);
  let raw: Hydration | undefined;
  let rawHas: Hydration | undefined;
  let ours: (Hydration & { count: number; cursor: bigint | undefined }) | undefined;
  for (let r = 0; r < o.rounds; r++) {
    o.log?.(`hydrate: round ${r + 1}/${o.rounds}`);
    mem.phase("baseline");
    const rawDir = join(dir.path, `raw-${r}`);
    const rr = await hydrateRaw(rawDir, updates, o.applyBatch);
    if (!raw || rr.ms < raw.ms) raw = rr;
    await rm(rawDir, { recursive: true, force: true });
    const hasDir = join(dir.path, `raw-has-${r}`);
    const rh = await hydrateRawHasMany(hasDir, updates, o.applyBatch);
    if (!rawHas || rh.ms < rawHas.ms) rawHas = rh;
    await rm(hasDir, { recursive: true, force: true });
    mem.phase("ours");
    const oursDir = join(dir.path, `ours-${r}`);
    const ro = await hydrateOurs(oursDir, updates, o.applyBatch);
    if (!ours || ro.ms < ours.ms) ours = ro;
    await rm(oursDir, { recursive: true, force: true });
  }
  if (!raw || !rawHas || !ours) throw new Error("no hydration round ran");
  const rawRate = perSecond(o.entries, raw.ms);
  const oursRate = perSecond(o.entries, ours.ms);
  return {
    id: "hydrate",
    title: `LevelDB hydration: LevelSnapshotStore.apply (batches of ${o.applyBatch}) vs raw level batch writes`,
    baseline: { label: "level batch()", value: rawRate, unit: "entries/s" },
    ours: { label: "LevelSnapshotStore.apply", value: oursRate, unit: "entries/s" },
    ratio: rateRatio(oursRate, rawRate),
    details: {
      entries: o.entries,
      valueBytes: o.valueBytes,
      batch: o.applyBatch,
      rounds: o.rounds,
      rawMs: raw.ms,
      oursMs: ours.ms,
      rawHasManyRate: perSecond(o.entries, rawHas.ms),
      ratioVsHasMany: rateRatio(oursRate, perSecond(o.entries, rawHas.ms)),
      rawDiskBytesPerEntry: raw.bytes / o.entries,
      oursDiskBytesPerEntry: ours.bytes / o.entries,
    },
    checks: [
      check("store holds every entry", o.entries, ours.count),
      check("store cursor is the last revision", o.entries, ours.cursor ?? "none"),
    ],
    memory: mem.stop(),
    wallMs: performance.now() - t0,
  };
}
