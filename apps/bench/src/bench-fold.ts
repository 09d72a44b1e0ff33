/**
 * Benchmark 1 — fold throughput: watchApplied into LevelDB against a plain nats.js ordered
 * consumer draining the same stream.
 */
import { join } from "node:path";
import { LevelSnapshotStore } from "@slipstream/snapshot-leveldb";
import { tempDir } from "@slipstream/testkit";
import { foldToHead } from "./fold.js";
import { RssSampler } from "./memory.js";
import { openNats, rawKvWatch, rawOrderedDrain, seed } from "./nats.js";
import type { BenchOptions } from "./options.js";
import { type BenchResult, check, perSecond, rateRatio } from "./result.js";

/**
 * Seeds `entries` puts, drains them with a raw ordered consumer (the limit) and with
 * nats.js `kv.watch` (for reference), runs `watchApplied` without a store (where the watch
 * alone stands), then folds them with `watchApplied` into a fresh LevelSnapshotStore until
 * the committed cursor is the stream's last sequence (the figure).
 */
export async function benchFold(o: BenchOptions): Promise<BenchResult> {
  const t0 = performance.now();
  const mem = new RssSampler();
  await using nats = await openNats({ bucket: "bench_fold", entries: o.entries, valueBytes: o.valueBytes });
  await using dir = await tempDir("slipstream-bench-");
  mem.watchChild(nats.server.pid);
  o.log?.(`fold: seeding ${o.entries} entries`);
  const head = await seed(nats, o.entries, o.valueBytes);

  o.log?.("fold: raw ordered consumer");
  mem.phase("baseline");
  const raw = await rawOrderedDrain(nats, head);
  const watch = await rawKvWatch(nats, head);

  o.log?.("fold: watchApplied without a store (watch + batching only)");
  mem.phase("ours-no-store");
  const bare = await foldToHead(nats.kv, undefined, head);

  o.log?.("fold: watchApplied → LevelDB");
  mem.phase("ours");
  const store = await LevelSnapshotStore.open(join(dir.path, "fold"));
  const ours = await foldToHead(nats.kv, store, head);
  mem.phase("verify");
  const count = await store.count();
  const cursor = store.cursor.revision;
  await store.close();

  const rawRate = perSecond(raw.messages, raw.ms);
  const oursRate = perSecond(ours.delivered, ours.ms);
  return {
    id: "fold",
    title: "fold throughput: watchApplied → LevelSnapshotStore vs a raw ordered consumer draining the stream",
    baseline: { label: "nats.js ordered consumer", value: rawRate, unit: "msg/s" },
    ours: { label: "watchApplied → LevelDB", value: oursRate, unit: "updates/s" },
    ratio: rateRatio(oursRate, rawRate),
    details: {
      natsServer: nats.server.version,
      entries: o.entries,
      valueBytes: o.valueBytes,
      rawOrderedMs: raw.ms,
      rawKvWatchRate: perSecond(watch.messages, watch.ms),
      ratioVsKvWatch: rateRatio(oursRate, perSecond(watch.messages, watch.ms)),
      oursMs: ours.ms,
      noStoreRate: perSecond(bare.delivered, bare.ms),
      ratioNoStore: rateRatio(perSecond(bare.delivered, bare.ms), rawRate),
      flushes: ours.flushes,
    },
    checks: [
      check("raw consumer received every message", o.entries, raw.messages),
      check("kv.watch received every entry", o.entries, watch.messages),
      check("watchApplied delivered every entry", o.entries, ours.delivered),
      check("watchApplied without a store delivered every entry", o.entries, bare.delivered),
      check("fold holds every entry", o.entries, count),
      check("fold cursor is the stream head", head, cursor ?? "none"),
    ],
    memory: mem.stop(),
    wallMs: performance.now() - t0,
  };
}
