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
  /** Time spent in writes (each slice's batch or apply, and the final close), ms. */
  ms: number;
  /** Process CPU time (all threads: LevelDB's included) over the same writes, µs. */
  cpuUs: number;
  bytes: number;
}

/**
 * Feeds `entries` puts in slices of `batch` to `write`, generating each slice just before
 * it is written (memory stays flat in the entry count) and timing only the writes: the
 * generation is the same for both sides and is not what either of them costs.
 */
async function timedSlices(
  entries: number,
  valueBytes: number,
  batch: number,
  write: (slice: KvUpdate[], end: number) => Promise<void>,
  close: () => Promise<void>,
): Promise<{ ms: number; cpuUs: number }> {
  let ms = 0;
  let cpuUs = 0;
  const timed = async (fn: () => Promise<void>): Promise<void> => {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await fn();
    ms += performance.now() - t0;
    const c = process.cpuUsage(c0);
    cpuUs += c.user + c.system;
  };
  for (let i = 0; i < entries; i += batch) {
    const slice = putUpdates(Math.min(batch, entries - i), valueBytes, i);
    await timed(() => write(slice, i + slice.length));
  }
  await timed(close);
  return { ms, cpuUs };
}

/** Raw `level` (classic-level defaults, `view` values): one `batch()` of puts per slice. */
async function hydrateRaw(dir: string, o: BenchOptions): Promise<Hydration> {
  const db = new Level<string, Uint8Array>(dir, { valueEncoding: "view" });
  await db.open();
  const t = await timedSlices(
    o.entries,
    o.valueBytes,
    o.applyBatch,
    async (slice) => {
      const ops = [];
      for (const u of slice) {
        const e = (u as { entry: KvEntry }).entry;
        ops.push({ type: "put" as const, key: e.key, value: e.value });
      }
      await db.batch(ops);
    },
    () => db.close(),
  );
  return { ...t, bytes: await dirBytes(dir) };
}

/** Ours: one atomic `apply(batch, cursor)` per slice, the cursor being the slice's last revision. */
async function hydrateOurs(
  dir: string,
  o: BenchOptions,
): Promise<Hydration & { count: number; cursor: bigint | undefined }> {
  const store = await LevelSnapshotStore.open(dir);
  let count = 0;
  let cursor: bigint | undefined;
  const t = await timedSlices(
    o.entries,
    o.valueBytes,
    o.applyBatch,
    (slice, end) => store.apply(slice, WatchCursor.fromRevision(BigInt(end))),
    async () => {
      count = await store.count();
      cursor = store.cursor.revision;
      await store.close();
    },
  );
  return { ...t, count, cursor, bytes: await dirBytes(dir) };
}

/**
 * Writes `entries` puts into a fresh LevelDB, alternating raw `level` and LevelSnapshotStore
 * for `rounds` rounds (best of each counts), timing the writes from the first batch to
 * close (each slice is generated untimed just before it is written, so memory stays flat).
 * Also reports the process CPU per entry of each side (LevelDB's threads included). No NATS.
 */
export async function benchHydrate(o: BenchOptions): Promise<BenchResult> {
  const t0 = performance.now();
  const mem = new RssSampler();
  await using dir = await tempDir("slipstream-bench-");
  let raw: Hydration | undefined;
  let ours: (Hydration & { count: number; cursor: bigint | undefined }) | undefined;
  for (let r = 0; r < o.rounds; r++) {
    o.log?.(`hydrate: round ${r + 1}/${o.rounds}`);
    mem.phase("baseline");
    const rawDir = join(dir.path, `raw-${r}`);
    const rr = await hydrateRaw(rawDir, o);
    if (!raw || rr.ms < raw.ms) raw = rr;
    await rm(rawDir, { recursive: true, force: true });
    mem.phase("ours");
    const oursDir = join(dir.path, `ours-${r}`);
    const ro = await hydrateOurs(oursDir, o);
    if (!ours || ro.ms < ours.ms) ours = ro;
    await rm(oursDir, { recursive: true, force: true });
  }
  if (!raw || !ours) throw new Error("no hydration round ran");
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
      rawCpuUsPerEntry: raw.cpuUs / o.entries,
      oursCpuUsPerEntry: ours.cpuUs / o.entries,
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
