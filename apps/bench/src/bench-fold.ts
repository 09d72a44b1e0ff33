/**
 * Benchmark 1 — fold throughput: watchApplied into LevelDB against a plain nats.js ordered
 * consumer draining the same stream.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { LevelSnapshotStore } from "@slipstream/snapshot-leveldb";
import { tempDir } from "@slipstream/testkit";
import { type FoldRun, foldToHead, watchToHead } from "./fold.js";
import { RssSampler } from "./memory.js";
import { openNats, RAW_PULL, rawFoldCeiling, rawKvWatch, rawOrderedDrain, seed } from "./nats.js";
import type { BenchOptions } from "./options.js";
import { type BenchResult, type Check, check, perSecond, rateRatio } from "./result.js";
import { type FoldAlone, runSide } from "./side-process.js";

interface Drain {
  messages: number;
  ms: number;
  cpuUs?: number;
}

/** Keeps the faster of two drains of the same size. */
function best<T extends Drain>(a: T | undefined, b: T): T {
  return a === undefined || b.ms < a.ms ? b : a;
}

/**
 * Seeds `entries` puts, then for `rounds` alternating rounds (best of each counts): drains
 * them with a raw ordered consumer at its default pull size and with {@link RAW_PULL} per
 * pull, and with nats.js `kv.watch`; runs `watchApplied` without a store (the watch and
 * batching alone); and folds them with `watchApplied` into a fresh LevelSnapshotStore until
 * the committed cursor is the stream's last sequence (the figure; once more with the
 * library's default batching, for reference). The baseline is the fastest of the raw
 * drains: the limit of the client on this machine in this run. Also the raw drain writing
 * into raw `level` ({@link rawFoldCeiling}): what the two libraries alone reach composed.
 */
export async function benchFold(o: BenchOptions): Promise<BenchResult> {
  const t0 = performance.now();
  const mem = new RssSampler();
  await using nats = await openNats({ bucket: "bench_fold", entries: o.entries, valueBytes: o.valueBytes });
  await using dir = await tempDir("slipstream-bench-");
  mem.watchChild(nats.server.pid);
  o.log?.(`fold: seeding ${o.entries} entries`);
  const seedStart = performance.now();
  const head = await seed(nats, o.entries, o.valueBytes);
  const seedMs = performance.now() - seedStart;

  let rawDefault: Drain | undefined;
  let rawTuned: Drain | undefined;
  let kvWatch: Drain | undefined;
  let ceiling: Drain | undefined;
  let watchAlone: Drain | undefined;
  let bare: FoldRun | undefined;
  let ours: FoldRun | undefined;
  const checks: Check[] = [];
  let defaults: FoldRun | undefined;
  let alone: FoldAlone | undefined;
  let ceilingAlone: FoldAlone | undefined;
  let count = 0;
  let cursor: bigint | undefined;
  for (let r = 0; r < o.rounds; r++) {
    o.log?.(`fold: round ${r + 1}/${o.rounds}`);
    mem.phase("baseline");
    rawDefault = best(rawDefault, await rawOrderedDrain(nats, head));
    rawTuned = best(rawTuned, await rawOrderedDrain(nats, head, RAW_PULL));
    kvWatch = best(kvWatch, await rawKvWatch(nats, head));
    const ceilingDir = join(dir.path, `ceiling-${r}`);
    ceiling = best(ceiling, await rawFoldCeiling(nats, head, ceilingDir));
    await rm(ceilingDir, { recursive: true, force: true });
    mem.phase("ours-no-store");
    watchAlone = best(watchAlone, await watchToHead(nats.kv, head));
    bare = best(bare, await foldToHead(nats.kv, undefined, head));
    mem.phase("ours");
    const foldDir = join(dir.path, `fold-${r}`);
    const store = await LevelSnapshotStore.open(foldDir);
    const run = await foldToHead(nats.kv, store, head);
    ours = best(ours, run);
    count = await store.count();
    cursor = store.cursor.revision;
    await store.close();
    await rm(foldDir, { recursive: true, force: true });
    if (r === 0) {
      // Once, for reference: the library's default batching (10 ms / 1000 updates, read-ahead 4096).
      const defaultsDir = join(dir.path, "fold-defaults");
      const d = await LevelSnapshotStore.open(defaultsDir);
      defaults = await foldToHead(nats.kv, d, head, {});
      await d.close();
      await rm(defaultsDir, { recursive: true, force: true });
      // And once in a process of its own: the RSS of a process that only folds.
      alone = JSON.parse(
        await runSide({
          kind: "fold",
          natsUrl: nats.server.url,
          bucket: nats.bucket,
          head: String(head),
          foldDir: join(dir.path, "fold-alone"),
        }),
      ) as FoldAlone;
      // And the raw ceiling in a process of its own: the RSS nats.js and `level` reach composed.
      ceilingAlone = JSON.parse(
        await runSide({
          kind: "ceiling",
          natsUrl: nats.server.url,
          stream: nats.stream,
          head: String(head),
          dir: join(dir.path, "ceiling-alone"),
        }),
      ) as FoldAlone;
      checks.push(
        check("the fold in a process of its own delivered every entry", o.entries, alone.delivered),
        check("the raw ceiling in a process of its own wrote every message", o.entries, ceilingAlone.delivered),
        check("watchApplied delivered every entry", o.entries, run.delivered),
        check("fold holds every entry", o.entries, count),
        check("fold cursor is the stream head", head, cursor ?? "none"),
      );
    }
  }
  if (
    !rawDefault ||
    !rawTuned ||
    !kvWatch ||
    !ceiling ||
    !watchAlone ||
    !bare ||
    !ours ||
    !defaults ||
    !alone ||
    !ceilingAlone
  )
    throw new Error("no fold round ran");
  const rawDefaultRate = perSecond(rawDefault.messages, rawDefault.ms);
  const rawTunedRate = perSecond(rawTuned.messages, rawTuned.ms);
  const kvWatchRate = perSecond(kvWatch.messages, kvWatch.ms);
  const rawRate = Math.max(rawDefaultRate, rawTunedRate);
  const ceilingRate = perSecond(ceiling.messages, ceiling.ms);
  const bareRate = perSecond(bare.delivered, bare.ms);
  const oursRate = perSecond(ours.delivered, ours.ms);
  return {
    id: "fold",
    title: "fold throughput: watchApplied → LevelSnapshotStore vs a raw ordered consumer draining the stream",
    baseline: {
      label: `nats.js ordered consumer (${rawTunedRate >= rawDefaultRate ? `pull ${RAW_PULL}` : "default pull"})`,
      value: rawRate,
      unit: "msg/s",
    },
    ours: { label: "watchApplied → LevelDB", value: oursRate, unit: "updates/s" },
    ratio: rateRatio(oursRate, rawRate),
    details: {
      natsServer: nats.server.version,
      entries: o.entries,
      valueBytes: o.valueBytes,
      rounds: o.rounds,
      seedMs,
      rawDefaultPullRate: rawDefaultRate,
      rawPull5000Rate: rawTunedRate,
      rawKvWatchRate: kvWatchRate,
      noStoreRate: bareRate,
      ratioNoStore: rateRatio(bareRate, rawRate),
      // The watch alone (watchBatches, no fold loop): the NATS side of the library.
      watchOnlyRate: perSecond(watchAlone.messages, watchAlone.ms),
      ratioWatchOnly: rateRatio(perSecond(watchAlone.messages, watchAlone.ms), rawRate),
      watchOnlyCpuUsPerMsg: (watchAlone.cpuUs ?? 0) / watchAlone.messages,
      oursMs: ours.ms,
      // The raw drain writing raw `level` batches: the libraries composed, with no fold logic.
      rawCeilingRate: ceilingRate,
      ratioVsRawCeiling: rateRatio(oursRate, ceilingRate),
      rawCeilingCpuUsPerMsg: (ceiling.cpuUs ?? 0) / ceiling.messages,
      // Process CPU per message (all threads of this process; the nats-server's is its own).
      rawCpuUsPerMsg: (rawTuned.cpuUs ?? 0) / rawTuned.messages,
      noStoreCpuUsPerMsg: bare.cpuUs / bare.delivered,
      oursCpuUsPerMsg: ours.cpuUs / ours.delivered,
      flushes: ours.flushes,
      defaultBatchRate: perSecond(defaults.delivered, defaults.ms),
      defaultBatchFlushes: defaults.flushes,
      aloneRate: perSecond(alone.delivered, alone.ms),
      alonePeakRss: alone.peakRss,
      ...(alone.peakRssAnon !== undefined ? { alonePeakRssAnon: alone.peakRssAnon } : {}),
      ...(alone.peakRssFile !== undefined ? { alonePeakRssFile: alone.peakRssFile } : {}),
      // The raw ceiling alone in a fresh process: the RSS baseline of the fold alone.
      rawCeilingAlonePeakRss: ceilingAlone.peakRss,
      ...(ceilingAlone.peakRssAnon !== undefined ? { rawCeilingAlonePeakRssAnon: ceilingAlone.peakRssAnon } : {}),
      ...(ceilingAlone.peakRssFile !== undefined ? { rawCeilingAlonePeakRssFile: ceilingAlone.peakRssFile } : {}),
      ratioAloneRssVsRawCeiling: alone.peakRss / ceilingAlone.peakRss,
    },
    checks: [
      check("raw consumer received every message", o.entries, rawTuned.messages),
      check("kv.watch received every entry", o.entries, kvWatch.messages),
      check("the raw ceiling wrote every message", o.entries, ceiling.messages),
      check("the watch alone delivered every entry", o.entries, watchAlone.messages),
      check("watchApplied without a store delivered every entry", o.entries, bare.delivered),
      ...checks,
    ],
    memory: mem.stop(),
    wallMs: performance.now() - t0,
  };
}
