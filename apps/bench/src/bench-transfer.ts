/**
 * Benchmark 4 — artifact round trip: export → upload → download → import through the
 * filesystem transport, against moving the same LevelDB directory with `tar` and `cp`.
 */
import { mkdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { WatchCursor } from "@slipstream/core";
import { LevelSnapshotStore } from "@slipstream/snapshot-leveldb";
import { tempDir } from "@slipstream/testkit";
import { ArtifactTransport } from "@slipstream/transport";
import { FsBlobStore } from "@slipstream/transport-fs";
import { putUpdates } from "./data.js";
import { compareFolds } from "./fold.js";
import { dirBytes, run } from "./fsutil.js";
import { RssSampler } from "./memory.js";
import type { BenchOptions } from "./options.js";
import { type BenchResult, check, timeRatio } from "./result.js";

const KEY = "bench/latest";

/** Times `fn` in ms. */
async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const value = await fn();
  return [value, performance.now() - t0];
}

/**
 * Hydrates a LevelSnapshotStore with `entries` puts (setup), then times
 * `exportTo` → `ArtifactTransport.upload` (FsBlobStore) → `download` →
 * `LevelSnapshotStore.import`, and the baseline `tar -cf` of the closed fold directory →
 * `cp` to a "remote" directory → `cp` back → `tar -xf` into a fresh directory. No NATS.
 */
export async function benchTransfer(o: BenchOptions): Promise<BenchResult> {
  const t0 = performance.now();
  const mem = new RssSampler();
  await using dir = await tempDir("slipstream-bench-");
  const w = (name: string): string => join(dir.path, name);
  o.log?.(`transfer: hydrating a fold of ${o.entries} entries`);
  const source = await LevelSnapshotStore.open(w("fold"));
  const updates = putUpdates(o.entries, o.valueBytes);
  for (let i = 0; i < updates.length; i += 1000) {
    const slice = updates.slice(i, i + 1000);
    await source.apply(slice, WatchCursor.fromRevision(BigInt(i + slice.length)));
  }
  updates.length = 0;

  o.log?.("transfer: export → upload → download → import");
  mem.phase("ours");
  const transport = new ArtifactTransport(new FsBlobStore(w("remote-ours")), { prefix: "artifacts" });
  const [manifest, exportMs] = await timed(() => source.exportTo(w("artifact")));
  const [uploaded, uploadMs] = await timed(async () => {
    const r = await transport.upload(KEY, w("artifact"));
    // Local artifacts are transient: deleted once uploaded.
    await rm(w("artifact"), { recursive: true, force: true });
    return r;
  });
  const [, downloadMs] = await timed(() => transport.download(KEY, w("download")));
  const [imported, importMs] = await timed(async () => {
    const s = await LevelSnapshotStore.import(w("download"), w("imported"));
    await rm(w("download"), { recursive: true, force: true });
    return s;
  });
  const oursMs = exportMs + uploadMs + downloadMs + importMs;
  const remoteBytes = await dirBytes(w("remote-ours"));
  const payloadBytes = manifest.files.reduce((n, f) => n + f.size, 0);

  mem.phase("verify");
  const same = await compareFolds(source, imported);
  const count = await imported.count();
  const cursor = imported.cursor.revision;
  await imported.close();
  await source.close();

  o.log?.("transfer: tar + cp + cp + tar -x of the fold directory");
  mem.phase("baseline");
  await mkdir(w("remote-raw"));
  await mkdir(w("raw-dest"));
  const [, rawMs] = await timed(async () => {
    await run("tar", ["-cf", w("fold.tar"), "-C", w("fold"), "."]);
    await run("cp", [w("fold.tar"), join(w("remote-raw"), "fold.tar")]);
    await run("cp", [join(w("remote-raw"), "fold.tar"), w("fold-copy.tar")]);
    await run("tar", ["-xf", w("fold-copy.tar"), "-C", w("raw-dest")]);
  });
  const rawTarBytes = (await stat(w("fold.tar"))).size;
  const foldDirBytes = await dirBytes(w("fold"));

  return {
    id: "transfer",
    title: "artifact round trip: export → upload → download → import (fs transport) vs tar -cf + cp + cp + tar -xf",
    baseline: { label: "tar + cp + cp + tar -x", value: rawMs, unit: "ms" },
    ours: { label: "export+upload+download+import", value: oursMs, unit: "ms" },
    ratio: timeRatio(oursMs, rawMs),
    details: {
      entries: o.entries,
      valueBytes: o.valueBytes,
      exportMs,
      uploadMs,
      downloadMs,
      importMs,
      payloadBytes,
      remoteObjectBytes: remoteBytes,
      foldDirBytes,
      rawTarBytes,
      uploadOutcome: uploaded.outcome,
    },
    checks: [
      check("upload published", "published", uploaded.outcome),
      check("imported fold holds every entry", o.entries, count),
      check("imported cursor is the exported cursor", manifest.cursor.revision ?? "none", cursor ?? "none"),
      check("imported fold equals the source", "equal", same),
    ],
    memory: mem.stop(),
    wallMs: performance.now() - t0,
  };
}
