/**
 * One node of the demo's fleet, run as its own OS process (forked by the conductor). It
 * keeps a LevelDB fold of the bucket with watchApplied, reports a live line, and answers
 * the conductor's commands (reach a revision, race for the export lease, digest, stop).
 * The conductor may also SIGKILL it: the fold's data and cursor commit together, so the
 * next process resumes from what was durably applied.
 */
import { type KvUpdate, type SnapshotStore, VersionToken, WatchCursor } from "@slipstream/core";
import { type AppliedWatch, watchApplied } from "@slipstream/fold";
import { ExportLease } from "@slipstream/lease";
import { connect } from "@slipstream/nats";
import { LevelSnapshotStore } from "@slipstream/snapshot-leveldb";
import { importRemote, runExportRound } from "@slipstream/transport";
import { digestOrdered } from "./digest.js";
import type { Command, NodeConfig, NodeMessage } from "./protocol.js";
import { openTransport } from "./transports.js";

const LIVE_EVERY_MS = 250;

function send(m: NodeMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) return resolve();
    process.send(m, undefined, {}, () => resolve());
  });
}

function rev(c: WatchCursor): bigint {
  return c.revision ?? 0n;
}

async function run(config: NodeConfig, commands: AsyncIterator<Command>): Promise<void> {
  const nc = await connect({ servers: config.natsUrl, name: `slipstream-demo-${config.name}` });
  const kv = await nc.store({ name: config.bucket });
  const leases = await nc.store({ name: config.leaseBucket });
  const { transport, close: closeTransport } = openTransport(config.transport, config.security);

  let store: LevelSnapshotStore;
  let bootstrapMs: number | undefined;
  if (config.start.kind === "bootstrap") {
    const t = performance.now();
    store = await importRemote({
      transport,
      key: config.artifactKey,
      scratchDir: config.scratchDir,
      destDir: config.dir,
      open: (artifact, dest, hints) => LevelSnapshotStore.import(artifact, dest, hints),
      onProgress: (progress) => void send({ type: "transfer", progress }),
    });
    bootstrapMs = performance.now() - t;
  } else {
    store = await LevelSnapshotStore.open(config.dir);
  }
  if (process.env.SLIPSTREAM_DEMO_FAULT === `stray-key:${config.name}`) {
    // Fault injection for the demo's own test: a key the bucket never had, so this fold's
    // digest must differ and the demo must exit non-zero.
    const stray = { key: "route.stray", value: new TextEncoder().encode("{}"), version: VersionToken.fromRevision(1n) };
    await store.apply([{ type: "put", entry: stray }], store.cursor);
  }
  await send({ type: "started", cursor: String(rev(store.cursor)), keys: await store.count(), bootstrapMs });

  // Revisions to reach: resolved from onApplied (cursor after apply) or right away.
  const waiting: { revision: bigint; done: () => void }[] = [];
  const checkWaiting = (cursor: WatchCursor) => {
    for (let i = waiting.length - 1; i >= 0; i--) {
      const w = waiting[i];
      if (w && rev(cursor) >= w.revision) {
        waiting.splice(i, 1);
        w.done();
      }
    }
  };
  const watch: AppliedWatch = watchApplied<KvUpdate>({
    watcher: kv.watcher,
    reader: kv.reader, // lets it resync when retention has evicted what it needs
    store: store as SnapshotStore,
    scope: { kind: "all" },
    batch: { windowMs: 20, max: 2000 },
    parse: (u) => u,
    apply: () => {}, // the store is the state this node serves
    onApplied: (cursor) => checkWaiting(cursor),
  });
  watch.done.catch(async (err: unknown) => {
    await send({ type: "failed", error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    process.exit(1);
  });

  // The live line: applied/s, cursor, and lag behind the bucket's last revision.
  let lastApplied = 0;
  let lastAt = performance.now();
  let head = 0n;
  const live = setInterval(() => {
    void (async () => {
      try {
        head = (await kv.status()).lastSeq;
      } catch {
        // the live line is best-effort; the watch reports its own failures
      }
      const now = performance.now();
      const applied = watch.stats.received;
      const ratePerSec = ((applied - lastApplied) * 1000) / Math.max(1, now - lastAt);
      lastApplied = applied;
      lastAt = now;
      await send({ type: "live", cursor: String(rev(watch.cursor)), head: String(head), applied, ratePerSec });
    })();
  }, LIVE_EVERY_MS);

  for (let next = await commands.next(); !next.done; next = await commands.next()) {
    const c = next.value;
    if (c.cmd === "reach") {
      const revision = BigInt(c.revision);
      await new Promise<void>((resolve) => {
        waiting.push({ revision, done: resolve });
        checkWaiting(watch.cursor);
      });
      await send({
        type: "reached",
        revision: c.revision,
        cursor: String(rev(watch.cursor)),
        received: watch.stats.received,
      });
    } else if (c.cmd === "export") {
      const lease = new ExportLease({
        reader: leases.reader,
        writer: leases.writer,
        key: config.leaseKey,
        holderId: config.name,
      });
      const round = await runExportRound({
        lease,
        ttlMs: config.leaseTtlMs,
        fold: watch,
        transport,
        key: config.artifactKey,
        scratchDir: config.scratchDir,
        onProgress: (progress) => void send({ type: "transfer", progress }),
      });
      if (round.outcome === "skipped") await send({ type: "exported", outcome: "skipped" });
      else
        await send({
          type: "exported",
          outcome: round.outcome,
          cursor: String(rev(round.cursor)),
          files: round.manifest.files.length,
          bytes: round.manifest.files.reduce((n, f) => n + f.size, 0),
        });
    } else if (c.cmd === "digest") {
      const { keys, digest } = await digestOrdered(store.range(""));
      const { received, resyncs, syntheticDeletes } = watch.stats;
      await send({
        type: "digest",
        cursor: String(rev(watch.cursor)),
        keys,
        digest,
        stats: { received, resyncs, syntheticDeletes },
      });
    } else if (c.cmd === "stop") {
      break;
    }
  }
  clearInterval(live);
  const final = await watch.stop();
  await store.close();
  closeTransport();
  await nc.close();
  await send({ type: "stopped", cursor: String(rev(final ?? WatchCursor.none())) });
}

/** Commands from the conductor as an async iterator (the first one is the config). */
function commandStream(): AsyncIterator<Command> {
  const queue: Command[] = [];
  let wake: (() => void) | undefined;
  let closed = false;
  process.on("message", (m: Command) => {
    queue.push(m);
    wake?.();
  });
  process.on("disconnect", () => {
    closed = true;
    wake?.();
  });
  return {
    async next(): Promise<IteratorResult<Command>> {
      while (queue.length === 0 && !closed) await new Promise<void>((r) => (wake = r));
      const c = queue.shift();
      return c ? { value: c, done: false } : { value: undefined, done: true };
    },
  };
}

await send({ type: "hello" });
const commands = commandStream();
const first = await commands.next();
if (first.done || first.value.cmd !== "config") {
  process.exit(2);
} else {
  try {
    await run(first.value.config, commands);
    process.disconnect?.();
  } catch (err) {
    await send({ type: "failed", error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    process.exit(1);
  }
}
