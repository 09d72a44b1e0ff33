/**
 * Our side of the NATS benchmarks: `watchApplied` into a SnapshotStore until the applied
 * cursor reaches a given head, and a full comparison of two folds.
 */
import type { KvUpdate, SnapshotStore } from "@slipstream/core";
import { type BatchOptions, watchApplied } from "@slipstream/fold";
import type { NatsKvStore } from "@slipstream/nats";

/** Batching used by every fold in the benchmarks (max 1000 updates or 20 ms per flush). */
export const FOLD_BATCH = { max: 1000, windowMs: 20, buffer: 2000 } as const;

/** What {@link foldToHead} measured. */
export interface FoldRun {
  /** Updates delivered to `apply` (= received from the watch). */
  readonly delivered: number;
  /** From the `watchApplied` call until the committed cursor reached `head` (ms). */
  readonly ms: number;
  /** Same as `delivered`, so a FoldRun compares with a raw drain. */
  readonly messages: number;
  /** The applied cursor when the watch was stopped. */
  readonly cursor: bigint | undefined;
  /** Flushes (store commits) that it took. */
  readonly flushes: number;
  /** Process CPU time over `ms` (all threads: LevelDB's included), µs. */
  readonly cpuUs: number;
}

/**
 * Runs `watchApplied` over the whole bucket into `store` (resuming from `store.cursor`, so a
 * fresh store means a full state-sync) until the cursor committed to the store is ≥ `head`,
 * then stops the watch. The store stays open. `batch` defaults to {@link FOLD_BATCH}.
 * Without a store it is a state-sync with a no-op apply (the watch and batching alone).
 */
export async function foldToHead(
  kv: NatsKvStore,
  store: SnapshotStore | undefined,
  head: bigint,
  batch: BatchOptions = FOLD_BATCH,
  timeoutMs = 300_000,
): Promise<FoldRun> {
  let delivered = 0;
  let reached!: () => void;
  const atHead = new Promise<void>((resolve) => {
    reached = resolve;
  });
  if ((store?.cursor.revision ?? 0n) >= head) reached();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const watch = watchApplied<KvUpdate>({
    watcher: kv.watcher,
    reader: kv.reader,
    ...(store ? { store } : {}),
    scope: { kind: "all" },
    batch,
    parse: (u) => u,
    apply: (batch) => {
      delivered += batch.length;
    },
    onApplied: (c) => {
      if ((c.revision ?? 0n) >= head) reached();
    },
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      atHead,
      // A fatal watch error ends the race early instead of waiting for the deadline.
      watch.done.then(() => {
        throw new Error(`the watch ended before reaching revision ${head}`);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`fold did not reach revision ${head} within ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]);
  } catch (err) {
    await watch.stop().catch(() => undefined);
    throw err;
  } finally {
    clearTimeout(timer);
  }
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  const final = await watch.stop();
  return {
    delivered,
    messages: delivered,
    ms,
    cursor: final.revision,
    flushes: watch.stats.flushes,
    cpuUs: cpu.user + cpu.system,
  };
}

/**
 * The watch alone: `kv.watcher.watchBatches` over the whole bucket (a state-sync) drained
 * until an update at `head` arrives, with no fold loop, batching or store behind it — the
 * NATS side of the library against the raw drain.
 */
export async function watchToHead(
  kv: NatsKvStore,
  head: bigint,
): Promise<{ messages: number; ms: number; cpuUs: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let n = 0;
  for await (const batch of kv.watcher.watchBatches({ kind: "all" })) {
    n += batch.length;
    const last = batch[batch.length - 1] as KvUpdate;
    const version = last.type === "put" ? last.entry.version : last.version;
    if ((version.revision ?? 0n) >= head) break;
  }
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { messages: n, ms, cpuUs: c.user + c.system };
}

/**
 * Compares two folds entry by entry (key, value bytes, version) in key order.
 * @returns `"equal"` or a description of the first difference
 */
export async function compareFolds(a: SnapshotStore, b: SnapshotStore): Promise<string> {
  const ia = a.range("")[Symbol.asyncIterator]();
  const ib = b.range("")[Symbol.asyncIterator]();
  let n = 0;
  try {
    for (;;) {
      const [ra, rb] = await Promise.all([ia.next(), ib.next()]);
      if (ra.done || rb.done) {
        if (ra.done && rb.done) return "equal";
        return `entry ${n}: one fold ends, the other has ${ra.done ? rb.value?.key : ra.value?.key}`;
      }
      const x = ra.value;
      const y = rb.value;
      if (x.key !== y.key) return `entry ${n}: key ${x.key} vs ${y.key}`;
      if (Buffer.compare(x.value, y.value) !== 0) return `entry ${n} (${x.key}): values differ`;
      if (!x.version.equals(y.version)) return `entry ${n} (${x.key}): versions differ`;
      n++;
    }
  } finally {
    await ia.return?.();
    await ib.return?.();
  }
}
