import type { KvUpdate, KvWatcher, SnapshotStore, WatchOptions, WatchScope } from "@slipstream/core";
import { VersionToken, WatchCursor } from "@slipstream/core";
import type { AppliedWatch } from "@slipstream/fold";
import { MemorySnapshotStore, watchApplied } from "@slipstream/fold";
import { waitFor } from "@slipstream/testkit";
import { afterEach, describe, expect, it } from "vitest";

const ALL = { kind: "all" } as const;
const running: AppliedWatch[] = [];
afterEach(async () => {
  for (const w of running.splice(0)) await w.stop().catch(() => undefined);
});

function put(key: string, seq: number, bytes = 1): KvUpdate {
  return { type: "put", entry: { key, value: new Uint8Array(bytes), version: VersionToken.fromSequence(seq) } };
}

/** A watcher with `watchBatches` only: hands out `batches` arrays on demand, then waits. */
class BatchWatcher implements KvWatcher {
  handedOut = 0;
  single = 0;
  constructor(readonly batches: KvUpdate[][]) {}
  watch(): AsyncIterable<KvUpdate> {
    this.single++;
    throw new Error("watch() must not be used when watchBatches exists");
  }
  watchBatches(_scope: WatchScope, opts: WatchOptions = {}): AsyncIterable<readonly KvUpdate[]> {
    const self = this;
    return {
      async *[Symbol.asyncIterator]() {
        for (const b of self.batches) {
          self.handedOut++;
          yield b;
        }
        await new Promise<void>((resolve) => opts.signal?.addEventListener("abort", () => resolve(), { once: true }));
      },
    };
  }
}

describe("watchApplied over a batch watcher", () => {
  it("uses watchBatches, applies every update in order and bounds the read-ahead by value bytes", async () => {
    // 40 arrays of 10 updates, each value 1 KiB: 10 KiB per array.
    let seq = 0;
    const batches = Array.from({ length: 40 }, () => Array.from({ length: 10 }, () => put(`k${++seq}`, seq, 1024)));
    const w = new BatchWatcher(batches);
    const seen: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const v = watchApplied({
      watcher: w,
      scope: ALL,
      batch: { max: 10, windowMs: 60_000, buffer: 10_000, bufferBytes: 30 * 1024 },
      parse: (u) => u,
      apply: async (b) => {
        await gate; // hold the first apply: only the byte bound limits the read-ahead now
        for (const u of b) seen.push(u.type === "put" ? u.entry.key : u.key);
      },
    });
    running.push(v);
    await waitFor(() => w.handedOut >= 4, { message: "read-ahead filled" });
    await new Promise((r) => setTimeout(r, 50));
    // One array in the held batch, then arrays until 30 KiB are buffered: 1 + 3, and no more.
    expect(w.handedOut).toBe(4);
    release();
    await waitFor(() => seen.length === 400, { message: "all applied" });
    expect(seen).toEqual(batches.flat().map((u) => (u.type === "put" ? u.entry.key : u.key)));
    expect(w.single).toBe(0);
    await waitFor(() => v.cursor.revision === 400n, { message: "cursor at the last update" });
  });

  it("commits while the next batch is applied, in order, and moves the cursor only after each commit", async () => {
    let seq = 0;
    const w = new BatchWatcher(Array.from({ length: 3 }, () => Array.from({ length: 5 }, () => put(`k${++seq}`, seq))));
    const inner = new MemorySnapshotStore();
    const commits: { cursor: bigint | undefined; release: () => void }[] = [];
    const store: SnapshotStore = {
      backend: inner.backend,
      get cursor() {
        return inner.cursor;
      },
      apply: async (batch, cursor) => {
        await new Promise<void>((release) => commits.push({ cursor: cursor.revision, release }));
        await inner.apply(batch, cursor);
      },
      get: (k) => inner.get(k),
      range: (p) => inner.range(p),
      exportTo: (d, o) => inner.exportTo(d, o),
      close: () => inner.close(),
    };
    const applied: number[] = [];
    const reported: (bigint | undefined)[] = [];
    const v = watchApplied({
      watcher: w,
      store,
      scope: ALL,
      batch: { max: 5, windowMs: 60_000 },
      parse: (u) => u,
      apply: (b) => {
        applied.push(b.length);
      },
      onApplied: (c) => {
        reported.push(c.revision);
      },
    });
    running.push(v);
    // Batch 1 is committing (held); batch 2 gets applied meanwhile, but not committed.
    await waitFor(() => commits.length === 1 && applied.length === 2, { message: "batch 2 applied during commit 1" });
    await new Promise((r) => setTimeout(r, 30));
    expect(commits.length).toBe(1);
    expect(v.cursor.isNone).toBe(true); // nothing committed yet
    expect(reported).toEqual([]);
    commits[0]?.release();
    await waitFor(() => commits.length === 2, { message: "commit 2 starts after commit 1" });
    expect(commits.map((c) => c.cursor)).toEqual([5n, 10n]);
    expect(v.cursor.revision).toBe(5n);
    expect(reported).toEqual([5n]);
    commits[1]?.release();
    await waitFor(() => commits.length === 3, { message: "commit 3" });
    commits[2]?.release();
    await waitFor(() => v.cursor.revision === 15n, { message: "all committed" });
    expect(reported).toEqual([5n, 10n, 15n]);
    expect((await v.stop()).revision).toBe(15n);
    expect(inner.cursor.revision).toBe(15n);
    expect(WatchCursor.fromRevision(15n).equals(inner.cursor)).toBe(true);
  });
});
