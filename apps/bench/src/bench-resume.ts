/**
 * Benchmark 2 — resume after restart: a fold that stopped catches up by receiving exactly
 * the changes it missed, timed against a full re-list of the same bucket into a fresh store.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { LevelSnapshotStore } from "@slipstream/snapshot-leveldb";
import { tempDir } from "@slipstream/testkit";
import { compareFolds, type FoldRun, foldToHead } from "./fold.js";
import { RssSampler } from "./memory.js";
import { openNats, seed, writeTail } from "./nats.js";
import type { BenchOptions } from "./options.js";
import { type BenchResult, type Check, check, timeRatio } from "./result.js";

/**
 * Folds `entries` puts into LevelDB and closes the store. Then, `rounds` times: writes
 * `delta` changes (puts and deletes of distinct keys) while the node is down, reopens the
 * store and resumes to the new head (ours), and state-syncs the whole bucket into a fresh
 * store (the baseline), both timed from the `watchApplied` call until the committed cursor
 * is the head; the best of each counts. Checks that every resume delivered exactly `delta`
 * updates and that the resumed fold equals the re-listed one.
 */
export async function benchResume(o: BenchOptions): Promise<BenchResult> {
  const t0 = performance.now();
  const mem = new RssSampler();
  await using nats = await openNats({ bucket: "bench_resume", entries: o.entries, valueBytes: o.valueBytes });
  await using dir = await tempDir("slipstream-bench-");
  mem.watchChild(nats.server.pid);
  o.log?.(`resume: seeding ${o.entries} entries and folding them`);
  const seedStart = performance.now();
  const seeded = await seed(nats, o.entries, o.valueBytes);
  const seedMs = performance.now() - seedStart;
  const foldDir = join(dir.path, "fold");
  const first = await LevelSnapshotStore.open(foldDir);
  const initial = await foldToHead(nats.kv, first, seeded);
  let stoppedAt = first.cursor.revision;
  await first.close();

  const checks: Check[] = [];
  const delivered: number[] = [];
  let resumed: FoldRun | undefined;
  let relist: FoldRun | undefined;
  let tail = { puts: 0, deletes: 0, head: seeded };
  for (let r = 0; r < o.rounds; r++) {
    const last = r === o.rounds - 1;
    o.log?.(`resume: round ${r + 1}/${o.rounds}: node down, ${o.delta} changes written, then resume and re-list`);
    tail = await writeTail(nats, o.entries, o.delta, o.valueBytes);

    // One forced collection before the first round only (see RssSampler.phase).
    mem.phase("ours", { collect: r === 0 });
    const reopened = await LevelSnapshotStore.open(foldDir);
    const reopenedAt = reopened.cursor.revision;
    const run = await foldToHead(nats.kv, reopened, tail.head);
    delivered.push(run.delivered);
    if (!resumed || run.ms < resumed.ms) resumed = run;

    mem.phase("baseline", { collect: false });
    const relistDir = join(dir.path, `relist-${r}`);
    const fresh = await LevelSnapshotStore.open(relistDir);
    const full = await foldToHead(nats.kv, fresh, tail.head);
    if (!relist || full.ms < relist.ms) relist = full;

    if (r === 0 || last) {
      mem.phase("verify", { collect: false });
      checks.push(
        check(`round ${r + 1}: cursor persisted across the restart`, stoppedAt ?? "none", reopenedAt ?? "none"),
        check(`round ${r + 1}: resumed cursor is the stream head`, tail.head, run.cursor ?? "none"),
        check(`round ${r + 1}: resumed fold equals a full re-list`, "equal", await compareFolds(reopened, fresh)),
        check(`round ${r + 1}: resumed fold has the live keys`, o.entries - tail.deletes, await reopened.count()),
      );
    }
    stoppedAt = reopened.cursor.revision;
    await reopened.close();
    await fresh.close();
    await rm(relistDir, { recursive: true, force: true });
  }
  if (!resumed || !relist) throw new Error("no resume round ran");

  return {
    id: "resume",
    title: "resume after restart: delta-only catch-up vs a full re-list of the same bucket",
    baseline: { label: "full re-list into a fresh store", value: relist.ms, unit: "ms" },
    ours: { label: `resume from cursor (${o.delta} updates)`, value: resumed.ms, unit: "ms" },
    ratio: timeRatio(resumed.ms, relist.ms),
    details: {
      natsServer: nats.server.version,
      entries: o.entries,
      valueBytes: o.valueBytes,
      delta: o.delta,
      rounds: o.rounds,
      seedMs,
      deltaPuts: tail.puts,
      deltaDeletes: tail.deletes,
      delivered: delivered.find((d) => d !== o.delta) ?? o.delta,
      deliveredPerRound: delivered.join(","),
      relistDelivered: relist.delivered,
      initialFoldMs: initial.ms,
    },
    checks: [
      check(
        "resume delivered exactly the delta (every round)",
        o.delta,
        delivered.find((d) => d !== o.delta) ?? o.delta,
      ),
      ...checks,
    ],
    memory: mem.stop(),
    wallMs: performance.now() - t0,
  };
}
