/**
 * Benchmark 2 — resume after restart: a fold that stopped catches up by receiving exactly
 * the changes it missed, timed against a full re-list of the same bucket into a fresh store.
 */
import { join } from "node:path";
import { LevelSnapshotStore } from "@slipstream/snapshot-leveldb";
import { tempDir } from "@slipstream/testkit";
import { compareFolds, foldToHead } from "./fold.js";
import { RssSampler } from "./memory.js";
import { openNats, seed, writeTail } from "./nats.js";
import type { BenchOptions } from "./options.js";
import { type BenchResult, check, timeRatio } from "./result.js";

/**
 * Folds `entries` puts into LevelDB, stops and closes the store, writes `delta` changes
 * (puts and deletes of distinct keys), reopens the store and resumes to the new head.
 * Checks that exactly `delta` updates were delivered and that the resumed fold equals a
 * full state-sync of the bucket into a fresh store (the baseline, timed the same way).
 */
export async function benchResume(o: BenchOptions): Promise<BenchResult> {
  const t0 = performance.now();
  const mem = new RssSampler();
  await using nats = await openNats({ bucket: "bench_resume", entries: o.entries, valueBytes: o.valueBytes });
  await using dir = await tempDir("slipstream-bench-");
  mem.watchChild(nats.server.pid);
  o.log?.(`resume: seeding ${o.entries} entries and folding them`);
  const seeded = await seed(nats, o.entries, o.valueBytes);
  const foldDir = join(dir.path, "fold");
  const first = await LevelSnapshotStore.open(foldDir);
  const initial = await foldToHead(nats.kv, first, seeded);
  const stoppedAt = first.cursor.revision;
  await first.close();

  o.log?.(`resume: node down, ${o.delta} changes written`);
  const tail = await writeTail(nats, o.entries, o.delta, o.valueBytes);

  o.log?.("resume: reopen and resume");
  mem.phase("ours");
  const reopened = await LevelSnapshotStore.open(foldDir);
  const reopenedAt = reopened.cursor.revision;
  const resumed = await foldToHead(nats.kv, reopened, tail.head);

  o.log?.("resume: full re-list into a fresh store");
  mem.phase("baseline");
  const fresh = await LevelSnapshotStore.open(join(dir.path, "relist"));
  const relist = await foldToHead(nats.kv, fresh, tail.head);

  mem.phase("verify");
  const same = await compareFolds(reopened, fresh);
  const count = await reopened.count();
  await reopened.close();
  await fresh.close();

  return {
    id: "resume",
    title: "resume after restart: delta-only catch-up vs a full re-list of the same bucket",
    baseline: { label: "full re-list into a fresh store", value: relist.ms, unit: "ms" },
    ours: { label: `resume from cursor (${resumed.delivered} updates)`, value: resumed.ms, unit: "ms" },
    ratio: timeRatio(resumed.ms, relist.ms),
    details: {
      natsServer: nats.server.version,
      entries: o.entries,
      valueBytes: o.valueBytes,
      delta: o.delta,
      deltaPuts: tail.puts,
      deltaDeletes: tail.deletes,
      delivered: resumed.delivered,
      relistDelivered: relist.delivered,
      initialFoldMs: initial.ms,
    },
    checks: [
      check("cursor persisted across the restart", stoppedAt ?? "none", reopenedAt ?? "none"),
      check("resume delivered exactly the delta", o.delta, resumed.delivered),
      check("resumed cursor is the stream head", tail.head, resumed.cursor ?? "none"),
      check("resumed fold equals a full re-list", "equal", same),
      check("resumed fold has the live keys", o.entries - tail.deletes, count),
    ],
    memory: mem.stop(),
    wallMs: performance.now() - t0,
  };
}
