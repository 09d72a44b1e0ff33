/**
 * Benchmark 4 — artifact round trip: export → upload → download → import through the
 * filesystem transport, against moving the same LevelDB directory with `tar` and `cp`.
 */
import { mkdir, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { ExportManifest } from "@slipstream/core";
import { LevelSnapshotStore } from "@slipstream/snapshot-leveldb";
import { tempDir } from "@slipstream/testkit";
import { ArtifactTransport } from "@slipstream/transport";
import { FsBlobStore } from "@slipstream/transport-fs";
import { dirBytes, quietDisk, run } from "./fsutil.js";
import { RssSampler } from "./memory.js";
import type { BenchOptions } from "./options.js";
import { type BenchResult, type Check, check, timeRatio } from "./result.js";
import { runSide } from "./side-process.js";

const KEY = "bench/latest";

/** Times `fn` in ms. */
async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const value = await fn();
  return [value, performance.now() - t0];
}

/** One timed round trip of ours. */
interface OursRound {
  ms: number;
  exportMs: number;
  uploadMs: number;
  downloadMs: number;
  importMs: number;
}

/**
 * Hydrates a LevelSnapshotStore with `entries` puts (setup). Then `rounds` times (best of
 * each counts): times `exportTo` → `ArtifactTransport.upload` (FsBlobStore) → `download` →
 * `LevelSnapshotStore.import` with `transfer: "move"` (ours; RSS is sampled per phase), and, with the store closed, `tar -cf` of the fold
 * directory → `cp` to a "remote" directory → `cp` back → `tar -xf` into a fresh directory
 * (the baseline). No NATS.
 */
export async function benchTransfer(o: BenchOptions): Promise<BenchResult> {
  const t0 = performance.now();
  const mem = new RssSampler();
  await using dir = await tempDir("slipstream-bench-");
  const w = (name: string): string => join(dir.path, name);
  o.log?.(`transfer: hydrating a fold of ${o.entries} entries`);
  // In a side process: the setup must not inflate the RSS of the timed phases.
  await runSide({ kind: "hydrate", dir: w("fold"), entries: o.entries, valueBytes: o.valueBytes });
  let source = await LevelSnapshotStore.open(w("fold"));
  const transport = new ArtifactTransport(new FsBlobStore(w("remote-ours")), { prefix: "artifacts" });

  const checks: Check[] = [];
  let ours: OursRound | undefined;
  // export+upload+download+import of every round, in order (the first one runs with a cold JIT).
  const perRound: string[] = [];
  let rawMs = Number.POSITIVE_INFINITY;
  let rawDurableMs = Number.POSITIVE_INFINITY;
  let manifest: ExportManifest | undefined;
  let outcome = "";
  for (let r = 0; r < o.rounds; r++) {
    o.log?.(`transfer: round ${r + 1}/${o.rounds}`);
    const artifact = w(`artifact-${r}`);
    const download = w(`download-${r}`);
    await quietDisk();
    // One forced collection before the first round only (see RssSampler.phase).
    mem.phase("export", { collect: r === 0 });
    const [m, exportMs] = await timed(() => source.exportTo(artifact));
    mem.phase("upload", { collect: false });
    const [uploaded, uploadMs] = await timed(async () => {
      const res = await transport.upload(KEY, artifact);
      // Local artifacts are transient: deleted once uploaded.
      await rm(artifact, { recursive: true, force: true });
      return res;
    });
    mem.phase("download", { collect: false });
    const [, downloadMs] = await timed(() => transport.download(KEY, download));
    mem.phase("import", { collect: false });
    const [imported, importMs] = await timed(async () => {
      // The download is private scratch (deleted right after) whose every file `download`
      // hashed against this manifest and fsynced as it wrote it: its files move into the fold
      // without a second hashing pass or fsync, as `importRemote` does.
      const s = await LevelSnapshotStore.import(download, w(`imported-${r}`), {
        transfer: "move",
        hashesVerified: true,
        durable: true,
      });
      await rm(download, { recursive: true, force: true });
      return s;
    });
    const round = { ms: exportMs + uploadMs + downloadMs + importMs, exportMs, uploadMs, downloadMs, importMs };
    perRound.push([exportMs, uploadMs, downloadMs, importMs].map((x) => Math.round(x)).join("+"));
    if (!ours || round.ms < ours.ms) ours = round;
    manifest = m;
    outcome = uploaded.outcome;
    if (r === 0) {
      mem.phase("verify", { collect: false });
      checks.push(
        check("upload published", "published", uploaded.outcome),
        check("imported fold holds every entry", o.entries, await imported.count()),
        check(
          "imported cursor is the exported cursor",
          m.cursor.revision ?? "none",
          imported.cursor.revision ?? "none",
        ),
      );
    }
    await imported.close();
    await source.close();
    if (r === 0) {
      // Walking both folds grows the heap: compared in a side process.
      checks.push(
        check(
          "imported fold equals the source",
          "equal",
          await runSide({ kind: "compare", a: w("fold"), b: w(`imported-${r}`) }),
        ),
      );
    }
    await rm(w(`imported-${r}`), { recursive: true, force: true });

    await quietDisk();
    mem.phase("baseline");
    const remote = w(`remote-raw-${r}`);
    const dest = w(`raw-dest-${r}`);
    await mkdir(remote);
    await mkdir(dest);
    const [, ms] = await timed(async () => {
      await run("tar", ["-cf", w(`fold-${r}.tar`), "-C", w("fold"), "."]);
      await run("cp", [w(`fold-${r}.tar`), join(remote, "fold.tar")]);
      await run("cp", [join(remote, "fold.tar"), w(`fold-copy-${r}.tar`)]);
      await run("tar", ["-xf", w(`fold-copy-${r}.tar`), "-C", dest]);
    });
    rawMs = Math.min(rawMs, ms);
    for (const p of [remote, dest, w(`fold-copy-${r}.tar`)]) await rm(p, { recursive: true, force: true });

    // The same four commands, with the two copies that must survive a crash made durable
    // (the remote object and the new fold's files: `sync FILE…` fsyncs each), as ours does.
    await mkdir(remote);
    await mkdir(dest);
    await quietDisk();
    mem.phase("durable-baseline");
    const [, durable] = await timed(async () => {
      await run("tar", ["-cf", w(`fold-d-${r}.tar`), "-C", w("fold"), "."]);
      await run("cp", [w(`fold-d-${r}.tar`), join(remote, "fold.tar")]);
      await run("sync", [join(remote, "fold.tar")]);
      await run("cp", [join(remote, "fold.tar"), w(`fold-copy-${r}.tar`)]);
      await run("tar", ["-xf", w(`fold-copy-${r}.tar`), "-C", dest]);
      await run(
        "sync",
        (await readdir(dest)).map((f) => join(dest, f)),
      );
    });
    rawDurableMs = Math.min(rawDurableMs, durable);
    for (const p of [remote, dest, w(`fold-copy-${r}.tar`), w(`fold-d-${r}.tar`)]) {
      await rm(p, { recursive: true, force: true });
    }
    source = await LevelSnapshotStore.open(w("fold"));
  }
  await source.close();
  if (!ours || !manifest) throw new Error("no transfer round ran");
  const rawTarBytes = (await stat(w("fold-0.tar"))).size;
  const remoteBytes = await dirBytes(w("remote-ours"));

  return {
    id: "transfer",
    title: "artifact round trip: export → upload → download → import (fs transport) vs tar -cf + cp + cp + tar -xf",
    baseline: { label: "tar + cp + cp + tar -x", value: rawMs, unit: "ms" },
    ours: { label: "export+upload+download+import", value: ours.ms, unit: "ms" },
    ratio: timeRatio(ours.ms, rawMs),
    details: {
      entries: o.entries,
      valueBytes: o.valueBytes,
      rounds: o.rounds,
      exportMs: ours.exportMs,
      uploadMs: ours.uploadMs,
      downloadMs: ours.downloadMs,
      importMs: ours.importMs,
      msPerRound: perRound.join(", "),
      // The baseline with the remote object and the new fold fsynced, and ours against it.
      rawDurableMs,
      ratioVsDurable: timeRatio(ours.ms, rawDurableMs),
      payloadBytes: manifest.files.reduce((n, f) => n + f.size, 0),
      remoteStoreBytes: remoteBytes,
      foldDirBytes: await dirBytes(w("fold")),
      rawTarBytes,
      lastUploadOutcome: outcome,
    },
    checks,
    memory: mem.stop(),
    wallMs: performance.now() - t0,
  };
}
