/**
 * Benchmark 5 — bootstrap of a new node: importRemote of a published artifact plus a resume
 * to the head, against a full replay of the bucket from NATS into a fresh LevelDB.
 */
import { join } from "node:path";
import { LevelSnapshotStore } from "@slipstream/snapshot-leveldb";
import { tempDir } from "@slipstream/testkit";
import { ArtifactTransport, importRemote } from "@slipstream/transport";
import { FsBlobStore } from "@slipstream/transport-fs";
import { compareFolds, foldToHead } from "./fold.js";
import { RssSampler } from "./memory.js";
import { openNats, seed, writeTail } from "./nats.js";
import type { BenchOptions } from "./options.js";
import { type BenchResult, check, timeRatio } from "./result.js";

const KEY = "bench/latest";

/**
 * Setup: `entries` puts folded by node A, exported and uploaded to a filesystem blob store,
 * then `delta` more changes. Ours: node B runs `importRemote` (download + verified import)
 * and resumes from the artifact's cursor to the head. Baseline: node C replays the whole
 * bucket into a fresh store. Checks that B received exactly the delta and equals C.
 */
export async function benchBootstrap(o: BenchOptions): Promise<BenchResult> {
  const t0 = performance.now();
  const mem = new RssSampler();
  await using nats = await openNats({ bucket: "bench_boot", entries: o.entries, valueBytes: o.valueBytes });
  await using dir = await tempDir("slipstream-bench-");
  const w = (name: string): string => join(dir.path, name);
  mem.watchChild(nats.server.pid);

  o.log?.(`bootstrap: seeding ${o.entries} entries; node A folds, exports and uploads`);
  const seeded = await seed(nats, o.entries, o.valueBytes);
  const a = await LevelSnapshotStore.open(w("node-a"));
  await foldToHead(nats.kv, a, seeded);
  const transport = new ArtifactTransport(new FsBlobStore(w("remote")), { prefix: "artifacts" });
  const manifest = await a.exportTo(w("artifact"));
  const uploaded = await transport.upload(KEY, w("artifact"));
  await a.close();
  const tail = await writeTail(nats, o.entries, o.delta, o.valueBytes);

  o.log?.("bootstrap: node B imports the artifact and resumes");
  mem.phase("ours");
  const tb = performance.now();
  const b = await importRemote({
    transport,
    key: KEY,
    scratchDir: w("scratch-b"),
    destDir: w("node-b"),
    open: (artifactDir, destDir) => LevelSnapshotStore.import(artifactDir, destDir),
  });
  const importMs = performance.now() - tb;
  const importedAt = b.cursor.revision;
  const resumed = await foldToHead(nats.kv, b, tail.head);
  const oursMs = importMs + resumed.ms;

  o.log?.("bootstrap: node C replays the bucket from NATS");
  mem.phase("baseline");
  const c = await LevelSnapshotStore.open(w("node-c"));
  const replay = await foldToHead(nats.kv, c, tail.head);

  mem.phase("verify");
  const same = await compareFolds(b, c);
  await b.close();
  await c.close();

  return {
    id: "bootstrap",
    title: "bootstrap of a new node: importRemote + resume to head vs a full replay from NATS",
    baseline: { label: `full replay (${replay.delivered} updates)`, value: replay.ms, unit: "ms" },
    ours: { label: `importRemote + resume (${resumed.delivered} updates)`, value: oursMs, unit: "ms" },
    ratio: timeRatio(oursMs, replay.ms),
    details: {
      natsServer: nats.server.version,
      entries: o.entries,
      valueBytes: o.valueBytes,
      delta: o.delta,
      importMs,
      resumeMs: resumed.ms,
      delivered: resumed.delivered,
      replayDelivered: replay.delivered,
      payloadBytes: manifest.files.reduce((n, f) => n + f.size, 0),
    },
    checks: [
      check("artifact published", "published", uploaded.outcome),
      check("imported cursor is the artifact's", manifest.cursor.revision ?? "none", importedAt ?? "none"),
      check("resume delivered exactly the delta", o.delta, resumed.delivered),
      check("bootstrapped cursor is the stream head", tail.head, resumed.cursor ?? "none"),
      check("bootstrapped fold equals a full replay", "equal", same),
    ],
    memory: mem.stop(),
    wallMs: performance.now() - t0,
  };
}
