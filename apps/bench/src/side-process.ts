/**
 * Setup and verification steps run in a short-lived child process, so the RSS sampled in
 * the benchmark process belongs to the phases being measured: hydrating a fold or walking
 * two folds side by side grows V8's heap, and V8 does not hand that memory back.
 */
import { fork } from "node:child_process";
import { rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { jetstream } from "@nats-io/jetstream";
import { connect as rawConnect } from "@nats-io/transport-node";
import { WatchCursor } from "@slipstream/core";
import { DEFAULT_EXPORT_QUIESCE_MS } from "@slipstream/fold";
import { connect } from "@slipstream/nats";
import { LevelSnapshotStore } from "@slipstream/snapshot-leveldb";
import { ArtifactTransport } from "@slipstream/transport";
import { FsBlobStore } from "@slipstream/transport-fs";
import { putUpdates } from "./data.js";
import { compareFolds, foldToHead } from "./fold.js";
import { RssSampler } from "./memory.js";
import { rawFoldCeiling } from "./nats.js";

/** A step a side process runs. */
export type SideTask =
  | { readonly kind: "hydrate"; readonly dir: string; readonly entries: number; readonly valueBytes: number }
  | { readonly kind: "compare"; readonly a: string; readonly b: string }
  | {
      /** The fold alone in a fresh process: its RSS is the fold's own (no drains before it). */
      readonly kind: "fold";
      readonly natsUrl: string;
      readonly bucket: string;
      readonly head: string;
      readonly foldDir: string;
    }
  | {
      /**
       * The raw ceiling ({@link rawFoldCeiling}: nats.js drain + raw `level` batches) alone in
       * a fresh process: the RSS the two libraries reach composed, to set the fold's against.
       */
      readonly kind: "ceiling";
      readonly natsUrl: string;
      readonly stream: string;
      readonly head: string;
      readonly dir: string;
    }
  | {
      /** Node A of the bootstrap benchmark: fold the bucket to `head`, export, upload, delete the local artifact. */
      readonly kind: "publish";
      readonly natsUrl: string;
      readonly bucket: string;
      readonly head: string;
      readonly foldDir: string;
      readonly artifactDir: string;
      readonly remoteDir: string;
      readonly prefix: string;
      readonly key: string;
    };

/** What a "publish" side task answers (JSON). */
export interface Published {
  readonly cursor: string;
  readonly outcome: string;
  readonly payloadBytes: number;
  /** Node A waiting for its fold to quiesce before the export (ms), and whether it did. */
  readonly quiesceMs: number;
  readonly quiesced: boolean;
  /** Node A's exportTo after that (ms). */
  readonly exportMs: number;
}

/** What a "fold" or "ceiling" side task answers (JSON). */
export interface FoldAlone {
  readonly delivered: number;
  readonly ms: number;
  readonly cpuUs: number;
  /** Peak RSS of the child over the fold (after connecting), with its anonymous / file-backed split. */
  readonly peakRss: number;
  readonly peakRssAnon?: number;
  readonly peakRssFile?: number;
}

/** Runs `task` in a child process; resolves with its answer (compare: "equal" or the first difference). */
export function runSide(task: SideTask): Promise<string> {
  const script = fileURLToPath(import.meta.url);
  return new Promise((resolve, reject) => {
    const child = fork(script, ["--side-task"], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    let answer: { ok: boolean; value: string } | undefined;
    child.on("message", (m: { ok: boolean; value: string }) => {
      answer = m;
    });
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      if (!answer) reject(new Error(`side process (${task.kind}) exited (${signal ?? code}) without an answer`));
      else if (answer.ok) resolve(answer.value);
      else reject(new Error(answer.value));
    });
    child.send(task);
  });
}

/** The answer of a fold-like side task, from its run and its sampler (phase `phase`). */
function aloneAnswer(run: { delivered: number; ms: number; cpuUs: number }, mem: RssSampler, phase: string): string {
  const m = mem.stop();
  const anon = m.peakRssAnonByPhase?.[phase];
  const file = m.peakRssFileByPhase?.[phase];
  const answer: FoldAlone = {
    delivered: run.delivered,
    ms: run.ms,
    cpuUs: run.cpuUs,
    peakRss: m.peakRssByPhase[phase] ?? m.peakRss,
    ...(anon !== undefined ? { peakRssAnon: anon } : {}),
    ...(file !== undefined ? { peakRssFile: file } : {}),
  };
  return JSON.stringify(answer);
}

async function run(task: SideTask): Promise<string> {
  if (task.kind === "ceiling") {
    const raw = await rawConnect({ servers: task.natsUrl, name: "slipstream-bench-ceiling" });
    try {
      const mem = new RssSampler();
      mem.phase("ceiling");
      const r = await rawFoldCeiling({ js: jetstream(raw), stream: task.stream }, BigInt(task.head), task.dir);
      return aloneAnswer({ delivered: r.messages, ms: r.ms, cpuUs: r.cpuUs }, mem, "ceiling");
    } finally {
      await rm(task.dir, { recursive: true, force: true });
      await raw.close();
    }
  }
  if (task.kind === "fold") {
    const conn = await connect({ servers: task.natsUrl, name: "slipstream-bench-fold" });
    try {
      const kv = await conn.store({ name: task.bucket });
      const mem = new RssSampler();
      mem.phase("fold");
      const store = await LevelSnapshotStore.open(task.foldDir);
      try {
        return aloneAnswer(await foldToHead(kv, store, BigInt(task.head)), mem, "fold");
      } finally {
        await store.close();
        await rm(task.foldDir, { recursive: true, force: true });
      }
    } finally {
      await conn.close();
    }
  }
  if (task.kind === "publish") {
    const conn = await connect({ servers: task.natsUrl, name: "slipstream-bench-node-a" });
    try {
      const kv = await conn.store({ name: task.bucket });
      const a = await LevelSnapshotStore.open(task.foldDir);
      try {
        await foldToHead(kv, a, BigInt(task.head));
        // As a fleet's exporter does (AppliedWatch.requestExport, through runExportRound):
        // wait for the fold's compaction backlog first, so importers do not inherit it.
        const tq = performance.now();
        const quiesced = await a.quiesce({ timeoutMs: DEFAULT_EXPORT_QUIESCE_MS });
        const quiesceMs = performance.now() - tq;
        const te = performance.now();
        const manifest = await a.exportTo(task.artifactDir);
        const exportMs = performance.now() - te;
        const transport = new ArtifactTransport(new FsBlobStore(task.remoteDir), { prefix: task.prefix });
        const uploaded = await transport.upload(task.key, task.artifactDir);
        await rm(task.artifactDir, { recursive: true, force: true });
        const answer: Published = {
          cursor: String(manifest.cursor.revision ?? "none"),
          outcome: uploaded.outcome,
          payloadBytes: manifest.files.reduce((n, f) => n + f.size, 0),
          quiesceMs,
          quiesced,
          exportMs,
        };
        return JSON.stringify(answer);
      } finally {
        await a.close();
      }
    } finally {
      await conn.close();
    }
  }
  if (task.kind === "hydrate") {
    const store = await LevelSnapshotStore.open(task.dir);
    try {
      for (let i = 0; i < task.entries; i += 1000) {
        const slice = putUpdates(Math.min(1000, task.entries - i), task.valueBytes, i);
        await store.apply(slice, WatchCursor.fromRevision(BigInt(i + slice.length)));
      }
    } finally {
      await store.close();
    }
    return String(task.entries);
  }
  const a = await LevelSnapshotStore.open(task.a);
  const b = await LevelSnapshotStore.open(task.b);
  try {
    return await compareFolds(a, b);
  } finally {
    await a.close();
    await b.close();
  }
}

if (process.argv[2] === "--side-task") {
  process.once("message", (task: SideTask) => {
    void run(task).then(
      (value) => process.send?.({ ok: true, value }, () => process.disconnect?.()),
      (err: unknown) =>
        process.send?.({ ok: false, value: err instanceof Error ? (err.stack ?? err.message) : String(err) }, () =>
          process.disconnect?.(),
        ),
    );
  });
}
