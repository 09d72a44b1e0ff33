/**
 * Benchmark 5 — bootstrap of a new node: importRemote of a published artifact plus a resume
 * to the head, against a full replay of the bucket from NATS into a fresh LevelDB.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { LevelSnapshotStore } from "@slipstream/snapshot-leveldb";
import { tempDir } from "@slipstream/testkit";
import { ArtifactTransport, importRemote } from "@slipstream/transport";
import { FsBlobStore } from "@slipstream/transport-fs";
import { Level } from "level";
import { keyOf, valueFor } from "./data.js";
import { type FoldRun, foldToHead } from "./fold.js";
import { largestFile, quietDisk, run } from "./fsutil.js";
import { RssSampler } from "./memory.js";
import { openNats, seed, writeTail } from "./nats.js";
import type { BenchOptions } from "./options.js";
import { type BenchResult, type Check, check, timeRatio } from "./result.js";
import { type Published, runSide } from "./side-process.js";

const KEY = "bench/latest";

/** Raw `level` applying the tail of {@link writeTail} to the fold in `dir`, in slices of 1 000 (ms). */
async function rawTailApply(
  dir: string,
  entries: number,
  puts: number,
  deletes: number,
  valueBytes: number,
): Promise<number> {
  const db = new Level<Buffer, Uint8Array>(dir, { keyEncoding: "buffer", valueEncoding: "view" });
  await db.open();
  const ops: { put: boolean; key: Buffer; i: number }[] = [];
  // The fold's own key layout (snapshot-leveldb's format: "!data!" + key), so the raw
  // lookups find the imported entries.
  const dataKey = (i: number): Buffer => Buffer.from(`!data!${keyOf(i)}`, "utf8");
  for (let n = 0; n < puts; n++) ops.push({ put: true, key: dataKey(n), i: n });
  for (let n = 0; n < deletes; n++) ops.push({ put: false, key: dataKey(entries - 1 - n), i: entries - 1 - n });
  const t0 = performance.now();
  for (let i = 0; i < ops.length; i += 1000) {
    const slice = ops.slice(i, i + 1000);
    await db.hasMany(slice.map((op) => op.key));
    await db.batch(
      slice.map((op) =>
        op.put
          ? { type: "put" as const, key: op.key, value: valueFor(op.i, valueBytes, 1) }
          : { type: "del" as const, key: op.key },
      ),
    );
  }
  const ms = performance.now() - t0;
  await db.close();
  return ms;
}

/**
 * Setup: `entries` puts folded by node A (in a side process), exported and uploaded to a
 * filesystem blob store, then `delta` more changes. Then `rounds` times (best of each counts): a new node B runs
 * `importRemote` (download + verified import) and resumes from the artifact's cursor to
 * the head (ours); a new node C replays the whole bucket into a fresh store (baseline).
 * Checks that every B received exactly the delta and that B equals C.
 */
export async function benchBootstrap(o: BenchOptions): Promise<BenchResult> {
  const t0 = performance.now();
  const mem = new RssSampler();
  await using nats = await openNats({ bucket: "bench_boot", entries: o.entries, valueBytes: o.valueBytes });
  await using dir = await tempDir("slipstream-bench-");
  const w = (name: string): string => join(dir.path, name);
  mem.watchChild(nats.server.pid);

  o.log?.(`bootstrap: seeding ${o.entries} entries; node A folds, exports and uploads`);
  const seedStart = performance.now();
  const seeded = await seed(nats, o.entries, o.valueBytes);
  const seedMs = performance.now() - seedStart;
  // Node A in a side process: its fold of the whole bucket must not inflate the RSS of node B.
  const published = JSON.parse(
    await runSide({
      kind: "publish",
      natsUrl: nats.server.url,
      bucket: nats.bucket,
      head: String(seeded),
      foldDir: w("node-a"),
      artifactDir: w("artifact"),
      remoteDir: w("remote"),
      prefix: "artifacts",
      key: KEY,
    }),
  ) as Published;
  const transport = new ArtifactTransport(new FsBlobStore(w("remote")), { prefix: "artifacts" });
  const tail = await writeTail(nats, o.entries, o.delta, o.valueBytes);

  const checks: Check[] = [];
  const delivered: number[] = [];
  const perRound: string[] = [];
  let ours: { ms: number; importMs: number; resume: FoldRun } | undefined;
  let replay: FoldRun | undefined;
  // Every round of ours first, then the baseline's: a full replay grows the heap, and RSS per
  // phase should be each phase's own.
  for (let r = 0; r < o.rounds; r++) {
    o.log?.(`bootstrap: round ${r + 1}/${o.rounds}: node B imports and resumes`);
    await quietDisk();
    // One forced collection before the first round only (see RssSampler.phase).
    mem.phase("importRemote", { collect: r === 0 });
    const tb = performance.now();
    const b = await importRemote({
      transport,
      key: KEY,
      scratchDir: w("scratch-b"),
      destDir: w(`node-b-${r}`),
      open: (artifactDir, destDir, hints) => LevelSnapshotStore.import(artifactDir, destDir, hints),
    });
    const importMs = performance.now() - tb;
    const importedAt = b.cursor.revision;
    mem.phase("resume", { collect: false });
    const resume = await foldToHead(nats.kv, b, tail.head);
    delivered.push(resume.delivered);
    perRound.push(`${Math.round(importMs)}+${Math.round(resume.ms)}`);
    if (!ours || importMs + resume.ms < ours.ms) ours = { ms: importMs + resume.ms, importMs, resume };
    if (r === 0) {
      checks.push(
        check("imported cursor is the artifact's", published.cursor, String(importedAt ?? "none")),
        check("bootstrapped cursor is the stream head", tail.head, resume.cursor ?? "none"),
      );
    }
    await b.close();
    if (r > 0) await rm(w(`node-b-${r}`), { recursive: true, force: true });
  }
  // The floors run before the replay, whose heap V8 would keep, so their RSS is their own.
  // The least any bootstrap from this artifact must do on this machine: copy the payload
  // object once, hash it and make the copy durable (cp, openssl dgst -sha256, sync) — no unpacking,
  // no LevelDB, no catching up.
  mem.phase("payload-copy");
  const payload = await largestFile(w("remote"));
  let payloadCopyMs = Number.POSITIVE_INFINITY;
  for (let r = 0; r < o.rounds; r++) {
    const copy = w(`payload-copy-${r}`);
    await quietDisk();
    const t = performance.now();
    await run("cp", [payload, copy]);
    await run("openssl", ["dgst", "-sha256", copy]);
    await run("sync", [copy]);
    payloadCopyMs = Math.min(payloadCopyMs, performance.now() - t);
    await rm(copy, { force: true });
  }
  // And the least LevelDB alone needs to apply the tail exactly on a fresh import of the
  // artifact: per 1 000 changes one raw `hasMany` (what an exact entry count must know)
  // and one raw `batch()` — no NATS, no cursor, no records of ours — plus whatever
  // compaction the import's open started.
  mem.phase("raw-tail");
  let rawTailMs = Number.POSITIVE_INFINITY;
  for (let r = 0; r < o.rounds; r++) {
    const dest = w(`raw-tail-${r}`);
    await quietDisk();
    const fresh = await importRemote({
      transport,
      key: KEY,
      scratchDir: w("scratch-raw"),
      destDir: dest,
      open: (artifactDir, destDir, hints) => LevelSnapshotStore.import(artifactDir, destDir, hints),
    });
    // Closing waits for the compaction LevelDB may have started on the imported tables
    // (ours does that work while it resumes): it counts in the floor too.
    const closing = performance.now();
    await fresh.close();
    const closeMs = performance.now() - closing;
    rawTailMs = Math.min(
      rawTailMs,
      closeMs + (await rawTailApply(dest, o.entries, tail.puts, tail.deletes, o.valueBytes)),
    );
    await rm(dest, { recursive: true, force: true });
  }
  for (let r = 0; r < o.rounds; r++) {
    o.log?.(`bootstrap: round ${r + 1}/${o.rounds}: node C replays`);
    await quietDisk();
    mem.phase("baseline");
    const c = await LevelSnapshotStore.open(w(`node-c-${r}`));
    const full = await foldToHead(nats.kv, c, tail.head);
    if (!replay || full.ms < replay.ms) replay = full;
    await c.close();
    if (r > 0) await rm(w(`node-c-${r}`), { recursive: true, force: true });
  }
  if (!ours || !replay) throw new Error("no bootstrap round ran");
  mem.phase("verify");
  checks.push(
    check(
      "bootstrapped fold equals a full replay",
      "equal",
      await runSide({ kind: "compare", a: w("node-b-0"), b: w("node-c-0") }),
    ),
  );

  return {
    id: "bootstrap",
    title: "bootstrap of a new node: importRemote + resume to head vs a full replay from NATS",
    baseline: { label: `full replay (${replay.delivered} updates)`, value: replay.ms, unit: "ms" },
    ours: { label: `importRemote + resume (${o.delta} updates)`, value: ours.ms, unit: "ms" },
    ratio: timeRatio(ours.ms, replay.ms),
    details: {
      natsServer: nats.server.version,
      entries: o.entries,
      valueBytes: o.valueBytes,
      delta: o.delta,
      rounds: o.rounds,
      seedMs,
      importMs: ours.importMs,
      resumeMs: ours.resume.ms,
      // The payload copied, hashed and fsynced by cp/openssl/sync, and the speed-up a bootstrap
      // that did only that (and caught up for free) would show against the replay.
      payloadCopyMs,
      replayOverPayloadCopy: timeRatio(payloadCopyMs, replay.ms),
      rawTailApplyMs: rawTailMs,
      // The speed-up of a bootstrap that cost only these two floors.
      replayOverFloors: timeRatio(payloadCopyMs + rawTailMs, replay.ms),
      delivered: delivered.find((d) => d !== o.delta) ?? o.delta,
      deliveredPerRound: delivered.join(","),
      // importMs+resumeMs of every round, in order (the first one runs with a cold JIT).
      msPerRound: perRound.join(", "),
      replayDelivered: replay.delivered,
      payloadBytes: published.payloadBytes,
      // Node A (not timed above): waiting for its compaction backlog, then exporting.
      exporterQuiesceMs: published.quiesceMs,
      exporterQuiesced: published.quiesced ? "yes" : "no (timed out)",
      exporterExportMs: published.exportMs,
    },
    checks: [
      check("artifact published", "published", published.outcome),
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
