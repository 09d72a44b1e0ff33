import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { ExportManifest, ExportOptions, KvUpdate } from "@slipstream/core";
import { SlipstreamError, VersionToken, WatchCursor } from "@slipstream/core";
import type { AppliedWatch } from "@slipstream/fold";
import { DEFAULT_EXPORT_QUIESCE_MS, dumpStore, MemorySnapshotStore, watchApplied } from "@slipstream/fold";
import { tempDir, waitFor } from "@slipstream/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { FlakyStore } from "./helpers/flaky-store.js";
import { describeUpdate, LogKv, recordingLogger } from "./helpers/log-kv.js";

const ALL = { kind: "all" } as const;
const FAST_RETRY = { resubscribeInitialMs: 1, resubscribeMaxMs: 5, commitInitialMs: 1, commitMaxMs: 5 };

const running: AppliedWatch[] = [];
afterEach(async () => {
  for (const w of running.splice(0)) await w.stop().catch(() => {});
});

function track(w: AppliedWatch): AppliedWatch {
  running.push(w);
  return w;
}

function rev(c: WatchCursor): bigint | undefined {
  return c.revision;
}

describe("watchApplied batching and ordering", () => {
  it("flushes when a batch reaches max, and the rest on stop", async () => {
    const kv = new LogKv();
    for (let i = 1; i <= 7; i++) kv.put(`k${i}`, `v${i}`);
    const batches: string[][] = [];
    const w = track(
      watchApplied({
        watcher: kv,
        scope: ALL,
        batch: { max: 3, windowMs: 60_000 },
        parse: describeUpdate,
        apply: (b) => {
          batches.push(b);
        },
      }),
    );
    await waitFor(() => batches.length === 2, { message: "two full batches" });
    expect(batches.map((b) => b.length)).toEqual([3, 3]);
    expect(rev(w.cursor)).toBe(6n);
    expect(await w.stop()).toEqual(WatchCursor.fromRevision(7n));
    expect(batches.map((b) => b.length)).toEqual([3, 3, 1]);
    expect(batches.flat()).toEqual([1, 2, 3, 4, 5, 6, 7].map((i) => `put k${i}=v${i}@${i}`));
  });

  it("flushes when the window closes", async () => {
    const kv = new LogKv();
    const batches: string[][] = [];
    const w = track(
      watchApplied({
        watcher: kv,
        scope: ALL,
        batch: { windowMs: 20, max: 100 },
        parse: describeUpdate,
        apply: (b) => void batches.push(b),
      }),
    );
    kv.put("a", "1");
    kv.put("b", "2");
    await waitFor(() => batches.length === 1, { message: "window flush" });
    expect(batches[0]).toEqual(["put a=1@1", "put b=2@2"]);
    expect(rev(w.cursor)).toBe(2n);
  });

  it("flushes what is pending on stop, and stop with nothing received returns the resume cursor", async () => {
    const kv = new LogKv();
    const applied: string[] = [];
    const cursors: WatchCursor[] = [];
    const idle = watchApplied({
      watcher: kv,
      scope: ALL,
      parse: describeUpdate,
      apply: (b) => void applied.push(...b),
      onApplied: (c) => void cursors.push(c),
    });
    expect((await idle.stop()).isNone).toBe(true);
    expect(applied).toEqual([]);
    expect(cursors).toEqual([]);

    const w = track(
      watchApplied({
        watcher: kv,
        scope: ALL,
        batch: { windowMs: 60_000 },
        parse: describeUpdate,
        apply: (b) => void applied.push(...b),
      }),
    );
    kv.put("a", "1");
    kv.put("b", "2");
    await waitFor(() => kv.delivered >= 2, { message: "both delivered" });
    expect(applied).toEqual([]); // still pending: the window is a minute
    expect(rev(await w.stop())).toBe(2n);
    expect(applied).toEqual(["put a=1@1", "put b=2@2"]);
    expect(rev(await w.done)).toBe(2n);
  });

  it("the cursor moves only after apply returns (apply sees the previous cursor)", async () => {
    const kv = new LogKv();
    for (let i = 1; i <= 4; i++) kv.put(`k${i}`, "v");
    const seen: (bigint | undefined)[] = [];
    const onApplied: bigint[] = [];
    let w: AppliedWatch | undefined;
    w = track(
      watchApplied({
        watcher: kv,
        scope: ALL,
        batch: { max: 2, windowMs: 60_000 },
        parse: (u) => u,
        apply: async () => {
          await new Promise((r) => setTimeout(r, 5));
          seen.push(w?.cursor.revision);
        },
        onApplied: (c) => void onApplied.push(c.revision as bigint),
      }),
    );
    await waitFor(() => onApplied.length === 2, { message: "two flushes" });
    expect(seen).toEqual([undefined, 2n]);
    expect(onApplied).toEqual([2n, 4n]);
  });

  it("parse-rejected updates advance the cursor and reach the store, apply is never called with an empty batch", async () => {
    const kv = new LogKv();
    for (let i = 1; i <= 7; i++) kv.put(`k${i}`, "v");
    const store = new MemorySnapshotStore();
    let applyCalls = 0;
    const w = track(
      watchApplied({
        watcher: kv,
        scope: ALL,
        store,
        batch: { max: 3, windowMs: 5 },
        parse: () => undefined,
        apply: () => void applyCalls++,
      }),
    );
    await waitFor(() => rev(w.cursor) === 7n, { message: "cursor 7" });
    expect(applyCalls).toBe(0);
    expect(store.cursor.revision).toBe(7n);
    expect(store.size).toBe(7);
  });

  it("mixed parse: only accepted updates are applied, all count for the cursor", async () => {
    const kv = new LogKv();
    kv.put("keep.1", "a");
    kv.put("skip.1", "b");
    kv.put("keep.2", "c");
    kv.put("skip.2", "d");
    const applied: string[] = [];
    const w = track(
      watchApplied({
        watcher: kv,
        scope: ALL,
        batch: { windowMs: 5 },
        parse: (u) => (describeUpdate(u).includes("skip") ? undefined : describeUpdate(u)),
        apply: (b) => void applied.push(...b),
      }),
    );
    await waitFor(() => rev(w.cursor) === 4n, { message: "cursor 4" });
    expect(applied).toEqual(["put keep.1=a@1", "put keep.2=c@3"]);
  });

  it("an unknown-version update does not move or clobber the cursor (put@5, unknown ⇒ 5, both applied)", async () => {
    const entry = (v: VersionToken): KvUpdate => ({
      type: "put",
      entry: { key: "k", value: new Uint8Array([1]), version: v },
    });
    const watcher = {
      async *watch() {
        yield entry(VersionToken.fromRevision(5n));
        yield entry(VersionToken.unknown());
        await new Promise(() => {}); // stays open
      },
    };
    const applied: KvUpdate[] = [];
    const store = new MemorySnapshotStore();
    const w = track(
      watchApplied({
        watcher,
        scope: ALL,
        store,
        batch: { windowMs: 5 },
        parse: (u) => u,
        apply: (b) => void applied.push(...b),
      }),
    );
    await waitFor(() => applied.length === 2, { message: "both applied" });
    expect(rev(w.cursor)).toBe(5n);
    expect(store.cursor.revision).toBe(5n);
    expect(rev(await w.stop())).toBe(5n);
  });

  it("commits each flush to the store with its cursor; onApplied sees the committed cursor", async () => {
    const kv = new LogKv();
    kv.put("a", "1");
    kv.put("b", "2");
    kv.del("a");
    const store = new MemorySnapshotStore();
    const atCallback: string[] = [];
    const w = track(
      watchApplied({
        watcher: kv,
        scope: ALL,
        store,
        batch: { windowMs: 5 },
        parse: (u) => u,
        apply: () => {},
        onApplied: (c) => void atCallback.push(`${c.revision}:${store.cursor.revision}`),
      }),
    );
    await waitFor(() => rev(w.cursor) === 3n, { message: "cursor 3" });
    expect(atCallback.at(-1)).toBe("3:3");
    expect((await dumpStore(store)).entries.map((e) => e[0])).toEqual(["b"]);
  });

  it("resumes from the store cursor when resume is absent, delta only (all and prefix scopes)", async () => {
    const kv = new LogKv();
    kv.put("node.a", "1");
    kv.put("node.b", "2");
    kv.put("svc.x", "3");
    kv.put("node.c", "4");
    const store = new MemorySnapshotStore();
    await store.apply([], WatchCursor.fromRevision(2n));
    const applied: string[] = [];
    const w = track(
      watchApplied({
        watcher: kv,
        scope: ALL,
        store,
        batch: { windowMs: 5 },
        parse: describeUpdate,
        apply: (b) => void applied.push(...b),
      }),
    );
    await waitFor(() => rev(w.cursor) === 4n, { message: "cursor 4" });
    expect(kv.calls[0]?.from?.revision).toBe(2n);
    expect(applied).toEqual(["put svc.x=3@3", "put node.c=4@4"]);
    await w.stop();

    const prefixed: string[] = [];
    const p = track(
      watchApplied({
        watcher: kv,
        scope: { kind: "prefix", prefix: "node." },
        resume: WatchCursor.fromRevision(1n),
        batch: { windowMs: 5 },
        parse: describeUpdate,
        apply: (b) => void prefixed.push(...b),
      }),
    );
    await waitFor(() => rev(p.cursor) === 4n, { message: "prefix cursor 4" });
    expect(prefixed).toEqual(["put node.b=2@2", "put node.c=4@4"]);
  });

  it("warns when resume is ahead of the store's cursor", async () => {
    const kv = new LogKv();
    const store = new MemorySnapshotStore();
    await store.apply([], WatchCursor.fromRevision(3n));
    const { logger, lines } = recordingLogger();
    const w = watchApplied({
      watcher: kv,
      scope: ALL,
      store,
      logger,
      resume: WatchCursor.fromRevision(9n),
      parse: (u) => u,
      apply: () => {},
    });
    expect(lines.filter((l) => l.level === "warn" && l.msg.includes("ahead of the store")).length).toBe(1);
    expect((await w.stop()).revision).toBe(9n);
    const quiet = recordingLogger();
    const v = watchApplied({
      watcher: kv,
      scope: ALL,
      store,
      logger: quiet.logger,
      resume: WatchCursor.fromRevision(2n),
      parse: (u) => u,
      apply: () => {},
    });
    expect(quiet.lines.filter((l) => l.level === "warn")).toEqual([]);
    await v.stop();
  });

  it("a slow apply slows the watch: no more than batch + buffer updates are pulled ahead of apply", async () => {
    const kv = new LogKv();
    for (let i = 1; i <= 50; i++) kv.put(`k${i}`, "v");
    const releases: (() => void)[] = [];
    let applied = 0;
    track(
      watchApplied({
        watcher: kv,
        scope: ALL,
        batch: { max: 5, buffer: 3, windowMs: 60_000 },
        parse: (u) => u,
        apply: async (b) => {
          if (releases.length < 2) await new Promise<void>((r) => releases.push(r));
          applied += b.length;
        },
      }),
    );
    await waitFor(() => releases.length === 1 && kv.delivered === 8, { message: "first apply running, buffer full" });
    await new Promise((r) => setTimeout(r, 50));
    expect(kv.delivered).toBe(8); // 5 in the batch being applied + 3 buffered, nothing more
    releases[0]?.();
    await waitFor(() => releases.length === 2 && kv.delivered === 13, { message: "second apply running" });
    await new Promise((r) => setTimeout(r, 20));
    expect(applied).toBe(5);
    expect(kv.delivered).toBe(13);
    releases[1]?.();
    await waitFor(() => applied === 50, { message: "the rest applied" });
  });
});

describe("watchApplied failures", () => {
  it("apply throwing stops the watch with that error and commits nothing for that batch", async () => {
    const kv = new LogKv();
    kv.put("a", "1");
    kv.put("b", "2");
    const store = new MemorySnapshotStore();
    await store.apply([], WatchCursor.fromRevision(0n));
    const boom = new Error("apply exploded");
    const onApplied: WatchCursor[] = [];
    const w = watchApplied({
      watcher: kv,
      scope: ALL,
      store,
      resume: WatchCursor.none(),
      batch: { windowMs: 5 },
      parse: (u) => u,
      apply: () => {
        throw boom;
      },
      onApplied: (c) => void onApplied.push(c),
    });
    await expect(w.done).rejects.toBe(boom);
    expect(store.cursor.revision).toBe(0n);
    expect(store.size).toBe(0);
    expect(onApplied).toEqual([]);
    expect(w.cursor.isNone).toBe(true);
    await expect(w.stop()).rejects.toBe(boom);
  });

  it("a failed store commit is retried and never leaves a hole", async () => {
    const kv = new LogKv();
    const store = new FlakyStore(new MemorySnapshotStore());
    store.failNext = 3;
    const applied: string[] = [];
    const { logger, lines } = recordingLogger();
    const w = track(
      watchApplied({
        watcher: kv,
        scope: ALL,
        store,
        logger,
        retry: FAST_RETRY,
        batch: { windowMs: 5 },
        parse: describeUpdate,
        apply: (b) => void applied.push(...b),
      }),
    );
    kv.put("a", "1");
    kv.put("b", "2");
    await waitFor(() => store.cursor.revision === 2n, { message: "committed after retries" });
    kv.put("c", "3");
    await waitFor(() => store.cursor.revision === 3n, { message: "next commit" });
    expect(w.stats.commitFailures).toBe(3);
    expect(store.attempts.filter((a) => a.failed).length).toBe(3);
    // The failed raw batch was committed again (not dropped): every key is in the store.
    expect((await dumpStore(store)).entries.map((e) => e[0])).toEqual(["a", "b", "c"]);
    expect(applied).toEqual(["put a=1@1", "put b=2@2", "put c=3@3"]);
    expect(lines.some((l) => l.level === "warn" && l.msg.includes("commit failed"))).toBe(true);
  });

  it("16 consecutive store failures stop the watch with the error, the store cursor stays", async () => {
    const kv = new LogKv();
    kv.put("a", "1");
    const store = new FlakyStore(new MemorySnapshotStore());
    store.failAlways = true;
    const w = watchApplied({
      watcher: kv,
      scope: ALL,
      store,
      retry: FAST_RETRY,
      batch: { windowMs: 1 },
      parse: (u) => u,
      apply: () => {},
    });
    await expect(w.done).rejects.toSatisfy((e) => SlipstreamError.is(e, "BACKEND"));
    expect(store.attempts.length).toBe(16);
    expect(store.cursor.isNone).toBe(true);
  });

  it("a watch that ends re-subscribes from the applied cursor, without a gap or a duplicate", async () => {
    const kv = new LogKv();
    kv.put("a", "1");
    kv.put("b", "2");
    const applied: string[] = [];
    const { logger, lines } = recordingLogger();
    const w = track(
      watchApplied({
        watcher: kv,
        scope: ALL,
        logger,
        retry: FAST_RETRY,
        batch: { windowMs: 5 },
        parse: describeUpdate,
        apply: (b) => void applied.push(...b),
      }),
    );
    await waitFor(() => rev(w.cursor) === 2n, { message: "cursor 2" });
    kv.endAll();
    kv.put("c", "3"); // written while no watch is open
    await waitFor(() => rev(w.cursor) === 3n, { message: "cursor 3 after re-subscribe" });
    kv.failAll(new SlipstreamError("CONNECTION_FAILED", "connection lost"));
    kv.put("d", "4");
    await waitFor(() => rev(w.cursor) === 4n, { message: "cursor 4 after failure" });
    expect(applied).toEqual(["put a=1@1", "put b=2@2", "put c=3@3", "put d=4@4"]);
    expect(w.stats.resubscribes).toBe(2);
    expect(kv.calls.map((c) => c.from?.revision)).toEqual([undefined, 2n, 3n]);
    expect(lines.filter((l) => l.msg.includes("re-subscribing")).length).toBe(2);
  });

  it("a watch that ends flushes its pending batch before re-subscribing from it", async () => {
    const kv = new LogKv();
    const batches: string[][] = [];
    const w = track(
      watchApplied({
        watcher: kv,
        scope: ALL,
        retry: FAST_RETRY,
        batch: { windowMs: 60_000 },
        parse: describeUpdate,
        apply: (b) => void batches.push(b),
      }),
    );
    kv.put("a", "1");
    kv.put("b", "2");
    await waitFor(() => kv.delivered === 2, { message: "delivered" });
    expect(batches).toEqual([]); // the window is a minute
    kv.endAll();
    await waitFor(() => kv.calls.length === 2, { message: "re-subscribed" });
    expect(batches).toEqual([["put a=1@1", "put b=2@2"]]);
    expect(kv.calls[1]?.from?.revision).toBe(2n);
    expect(rev(w.cursor)).toBe(2n);
  });

  it("INVALID_ARGUMENT from the watcher is fatal", async () => {
    const kv = new LogKv();
    const w = watchApplied({ watcher: kv, scope: ALL, retry: FAST_RETRY, parse: (u) => u, apply: () => {} });
    await waitFor(() => kv.calls.length === 1, { message: "subscribed" });
    kv.failAll(new SlipstreamError("INVALID_ARGUMENT", "bad subject"));
    await expect(w.done).rejects.toSatisfy((e) => SlipstreamError.is(e, "INVALID_ARGUMENT"));
  });

  it("an abort signal stops the watch like stop()", async () => {
    const kv = new LogKv();
    const ctl = new AbortController();
    const applied: string[] = [];
    const w = watchApplied({
      watcher: kv,
      scope: ALL,
      signal: ctl.signal,
      batch: { windowMs: 60_000 },
      parse: describeUpdate,
      apply: (b) => void applied.push(...b),
    });
    kv.put("a", "1");
    await waitFor(() => kv.delivered === 1, { message: "delivered" });
    ctl.abort();
    expect(rev(await w.done)).toBe(1n);
    expect(applied).toEqual(["put a=1@1"]);
  });

  it("an empty prefix list watches nothing and still stops cleanly", async () => {
    const kv = new LogKv();
    kv.put("a", "1");
    const w = watchApplied({
      watcher: kv,
      scope: { kind: "prefixes", prefixes: [] },
      parse: (u) => u,
      apply: () => {},
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(kv.calls).toEqual([]);
    expect((await w.stop()).isNone).toBe(true);
  });

  it("rejects bad options up front", () => {
    const kv = new LogKv();
    expect(() =>
      watchApplied({ watcher: kv, scope: ALL, batch: { max: 0 }, parse: (u) => u, apply: () => {} }),
    ).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
    expect(() => watchApplied({ watcher: kv, scope: ALL, parse: (u: KvUpdate) => u } as never)).toThrow(TypeError);
  });
});

describe("watchApplied user callbacks, stop and dispose", () => {
  it("parse throwing stops the watch with that error; nothing of the batch is committed", async () => {
    const kv = new LogKv();
    kv.put("a", "1");
    kv.put("bad", "2");
    const store = new MemorySnapshotStore();
    const boom = new Error("cannot parse");
    const applied: string[] = [];
    const w = watchApplied({
      watcher: kv,
      scope: ALL,
      store,
      batch: { windowMs: 60_000 },
      parse: (u) => {
        if (describeUpdate(u).includes("bad")) throw boom;
        return describeUpdate(u);
      },
      apply: (b) => void applied.push(...b),
    });
    await expect(w.done).rejects.toBe(boom);
    expect(applied).toEqual([]);
    expect(store.cursor.isNone).toBe(true);
  });

  it("onApplied throwing stops the watch after the commit", async () => {
    const kv = new LogKv();
    kv.put("a", "1");
    const store = new MemorySnapshotStore();
    const boom = new Error("callback failed");
    const w = watchApplied({
      watcher: kv,
      scope: ALL,
      store,
      batch: { windowMs: 1 },
      parse: (u) => u,
      apply: () => {},
      onApplied: () => {
        throw boom;
      },
    });
    await expect(w.done).rejects.toBe(boom);
    expect(store.cursor.revision).toBe(1n); // committed before the callback ran
  });

  it("stop during a commit failure streak waits for the retry and commits", async () => {
    const kv = new LogKv();
    const store = new FlakyStore(new MemorySnapshotStore());
    const w = watchApplied({
      watcher: kv,
      scope: ALL,
      store,
      retry: { ...FAST_RETRY, commitInitialMs: 20, commitMaxMs: 20 },
      batch: { windowMs: 60_000 },
      parse: (u) => u,
      apply: () => {},
    });
    kv.put("a", "1");
    kv.put("b", "2");
    await waitFor(() => kv.delivered === 2, { message: "delivered" });
    store.failNext = 2;
    expect(rev(await w.stop())).toBe(2n);
    expect(store.cursor.revision).toBe(2n);
    expect(store.attempts.map((a) => a.failed)).toEqual([true, true, false]);
  });

  it("await using stops the watch and flushes", async () => {
    const kv = new LogKv();
    const applied: string[] = [];
    {
      await using w = watchApplied({
        watcher: kv,
        scope: ALL,
        batch: { windowMs: 60_000 },
        parse: describeUpdate,
        apply: (b) => void applied.push(...b),
      });
      kv.put("a", "1");
      await waitFor(() => kv.delivered === 1, { message: "delivered" });
      expect(w.stats.received).toBe(1);
    }
    expect(applied).toEqual(["put a=1@1"]);
    expect(kv.feeds.size).toBe(0); // the subscription was released
  });
});

describe("watchApplied resync after an expired cursor", () => {
  async function seededStore(kv: LogKv): Promise<MemorySnapshotStore> {
    // A fold that applied everything up to the current head.
    const store = new MemorySnapshotStore();
    const w = watchApplied({
      watcher: kv,
      scope: ALL,
      store,
      batch: { windowMs: 1 },
      parse: (u) => u,
      apply: () => {},
    });
    await waitFor(() => store.cursor.revision === kv.nextSeq - 1n, { message: "seeded" });
    await w.stop();
    return store;
  }

  it("deletes vanished keys before the re-list put of the same key; the fold converges", async () => {
    const kv = new LogKv();
    kv.put("node.a", "1"); // 1
    kv.put("node.b", "2"); // 2
    kv.put("node.gone", "3"); // 3
    kv.put("other.x", "4"); // 4 (outside the scope below, deleted during the gap)
    const store = await seededStore(kv);
    expect(store.cursor.revision).toBe(4n);
    // The gap: deletes, a delete-then-recreate, then retention evicts the head of the log
    // (node.b's only message goes too, so it is re-put to stay alive).
    kv.del("node.gone"); // 5
    kv.del("node.a"); // 6
    kv.put("node.a", "again"); // 7
    kv.del("other.x"); // 8
    kv.put("node.b", "2b"); // 9
    kv.put("node.c", "new"); // 10
    kv.evictThrough(6n);
    const applied: string[] = [];
    const w = track(
      watchApplied({
        watcher: kv,
        reader: kv,
        store,
        scope: { kind: "prefix", prefix: "node." },
        batch: { windowMs: 1 },
        parse: describeUpdate,
        apply: (b) => void applied.push(...b),
      }),
    );
    await waitFor(() => rev(w.cursor) === 10n, { message: "converged at 10" });
    expect(w.stats.resyncs).toBe(1);
    expect(w.stats.syntheticDeletes).toBe(1);
    // node.gone vanished during the gap: its synthetic delete comes first, then the re-list.
    expect(applied).toEqual(["delete node.gone@?", "put node.a=again@7", "put node.b=2b@9", "put node.c=new@10"]);
    expect(kv.calls.slice(-2).map((c) => c.from?.revision)).toEqual([4n, undefined]);
    expect((await dumpStore(store)).entries.map((e) => [e[0], Buffer.from(e[1] as string, "hex").toString()])).toEqual([
      ["node.a", "again"],
      ["node.b", "2b"],
      ["node.c", "new"],
      ["other.x", "4"], // out of scope: untouched by a prefix-scoped resync
    ]);
  });

  it("a key deleted and recreated after the listing gets its synthetic delete before the re-list put", async () => {
    const kv = new LogKv();
    kv.put("k.a", "1");
    kv.put("k.b", "2");
    const store = await seededStore(kv);
    kv.del("k.a"); // 3
    kv.put("filler", "x"); // 4
    kv.evictThrough(3n);
    // Recreate k.a right after the live listing (keys() runs first, then the flush/diff).
    const realKeys = kv.keys.bind(kv);
    kv.keys = async function* (prefix?: string) {
      yield* realKeys(prefix);
      kv.put("k.a", "back"); // 5
    };
    const order: string[] = [];
    const w = track(
      watchApplied({
        watcher: kv,
        reader: kv,
        store,
        scope: ALL,
        batch: { windowMs: 1 },
        parse: describeUpdate,
        apply: (b) => void order.push(...b),
      }),
    );
    await waitFor(() => rev(w.cursor) === 5n, { message: "cursor 5" });
    expect(order.indexOf("delete k.a@?")).toBeGreaterThanOrEqual(0);
    expect(order.indexOf("delete k.a@?")).toBeLessThan(order.indexOf("put k.a=back@5"));
    expect(Buffer.from(((await store.get("k.a")) as { value: Uint8Array }).value).toString()).toBe("back");
  });

  it("retention overrunning a live state-sync watch (CURSOR_EXPIRED mid-stream) triggers a resync", async () => {
    const kv = new LogKv();
    kv.put("a", "1");
    kv.put("b", "2");
    const store = new MemorySnapshotStore();
    const w = track(
      watchApplied({
        watcher: kv,
        reader: kv,
        store,
        retry: FAST_RETRY,
        scope: ALL,
        batch: { windowMs: 1 },
        parse: (u) => u,
        apply: () => {},
      }),
    );
    await waitFor(() => rev(w.cursor) === 2n, { message: "cursor 2" });
    // What the failing watch would have delivered is overrun: the test drops it by failing first.
    kv.failAll(new SlipstreamError("CURSOR_EXPIRED", "retention overran the watch"));
    kv.del("a"); // 3
    kv.put("b", "2b"); // 4
    kv.put("c", "3"); // 5
    kv.evictThrough(3n);
    await waitFor(() => rev(w.cursor) === 5n, { message: "converged at 5" });
    expect(w.stats.resyncs).toBe(1);
    expect(await store.get("a")).toBeUndefined();
    expect((await dumpStore(store)).entries.map((e) => e[0])).toEqual(["b", "c"]);
  });

  it("an expired state-sync that delivered nothing re-subscribes with backoff instead of resyncing", async () => {
    const kv = new LogKv();
    kv.onWatch = (n) => {
      if (n === 1) queueMicrotask(() => kv.failAll(new SlipstreamError("CURSOR_EXPIRED", "odd server")));
    };
    const store = new MemorySnapshotStore();
    const w = track(
      watchApplied({
        watcher: kv,
        reader: kv,
        store,
        retry: FAST_RETRY,
        scope: ALL,
        batch: { windowMs: 1 },
        parse: (u) => u,
        apply: () => {},
      }),
    );
    await waitFor(() => w.stats.resubscribes === 1, { message: "re-subscribed" });
    expect(w.stats.resyncs).toBe(0);
    kv.put("a", "1");
    await waitFor(() => rev(w.cursor) === 1n, { message: "cursor 1" });
  });

  it("synthetic deletes are applied in batches of at most max, deduplicated across overlapping prefixes", async () => {
    const kv = new LogKv();
    for (let i = 0; i < 7; i++) kv.put(`p.q.${i}`, "v");
    const store = await seededStore(kv);
    for (let i = 0; i < 7; i++) kv.del(`p.q.${i}`);
    kv.put("p.keep", "v");
    kv.evictThrough(kv.nextSeq - 2n);
    const batches: string[][] = [];
    const w = track(
      watchApplied({
        watcher: kv,
        reader: kv,
        store,
        scope: { kind: "prefixes", prefixes: ["p.", "p.q."] },
        batch: { windowMs: 1, max: 3 },
        parse: describeUpdate,
        apply: (b) => void batches.push(b),
      }),
    );
    await waitFor(() => rev(w.cursor) === kv.nextSeq - 1n, { message: "caught up" });
    const deletes = batches.flat().filter((d) => d.startsWith("delete"));
    expect(deletes).toEqual([0, 1, 2, 3, 4, 5, 6].map((i) => `delete p.q.${i}@?`));
    expect(Math.max(...batches.map((b) => b.length))).toBeLessThanOrEqual(3);
    expect(w.stats.syntheticDeletes).toBe(7);
    expect((await dumpStore(store)).entries.map((e) => e[0])).toEqual(["p.keep"]);
  });

  it("a resync failure stops the watch (never a warning)", async () => {
    const kv = new LogKv();
    kv.put("a", "1");
    const store = await seededStore(kv);
    kv.put("b", "2");
    kv.evictThrough(2n);
    kv.keysError = new SlipstreamError("TIMEOUT", "keys timed out");
    const callsBefore = kv.calls.length;
    const w = watchApplied({ watcher: kv, reader: kv, store, scope: ALL, parse: (u) => u, apply: () => {} });
    await expect(w.done).rejects.toSatisfy(
      (e) => SlipstreamError.is(e, "WATCH_FAILED") && /resync/.test((e as Error).message),
    );
    expect(store.cursor.revision).toBe(1n);
    expect(kv.calls.length).toBe(callsBefore + 1); // the expired resume only; never the re-list
  });

  it("without a reader, expiry falls back to the re-list and logs which keys may be stale", async () => {
    const kv = new LogKv();
    kv.put("a", "1");
    kv.put("b", "2");
    const store = await seededStore(kv);
    kv.del("a"); // 3
    kv.put("c", "3"); // 4
    kv.evictThrough(3n);
    const { logger, lines } = recordingLogger();
    const w = track(
      watchApplied({
        watcher: kv,
        store,
        logger,
        scope: ALL,
        batch: { windowMs: 1 },
        parse: (u) => u,
        apply: () => {},
      }),
    );
    await waitFor(() => rev(w.cursor) === 4n, { message: "cursor 4" });
    const warn = lines.find((l) => l.msg.includes("may be stale"));
    expect(warn?.attrs?.keys).toEqual(["a", "b"]);
    expect(await store.get("a")).toBeDefined(); // stale, as warned
    expect(w.stats.resyncs).toBe(1);
  });
});

describe("watchApplied exports", () => {
  it("requestExport flushes the pending batch first: the artifact cursor is the applied cursor", async () => {
    await using dir = await tempDir("slipstream-fold-export-");
    const kv = new LogKv();
    const store = new MemorySnapshotStore();
    const applied: string[] = [];
    const w = track(
      watchApplied({
        watcher: kv,
        scope: ALL,
        store,
        batch: { windowMs: 60_000 },
        parse: describeUpdate,
        apply: (b) => void applied.push(...b),
      }),
    );
    kv.put("a", "1");
    kv.put("b", "2");
    await waitFor(() => kv.delivered === 2, { message: "delivered" });
    const manifest = await w.requestExport(join(dir.path, "artifact"));
    expect(manifest.cursor.revision).toBe(2n);
    expect(rev(w.cursor)).toBe(2n);
    expect(applied).toEqual(["put a=1@1", "put b=2@2"]);
    const imported = await MemorySnapshotStore.import(join(dir.path, "artifact"), join(dir.path, "imported"));
    expect(await dumpStore(imported)).toEqual(await dumpStore(store));
    // With nothing pending the export still runs at the same cursor.
    const again = await w.requestExport(join(dir.path, "artifact2"));
    expect(again.cursor.revision).toBe(2n);
  });

  it("requestExport waits for the store to quiesce while the watch goes on applying, then exports", async () => {
    await using dir = await tempDir("slipstream-fold-export-");
    const kv = new LogKv();
    const events: string[] = [];
    // A store whose background work ends only once revision 3 is committed: the export
    // waits for it, and the watch must keep applying meanwhile for it to end at all.
    class Busy extends MemorySnapshotStore {
      async quiesce(opts?: { timeoutMs?: number; signal?: AbortSignal }): Promise<boolean> {
        events.push(`quiesce ${opts?.timeoutMs}`);
        await waitFor(() => (this.cursor.revision ?? 0n) >= 3n, { message: "applied while quiescing" });
        events.push("quiet");
        return true;
      }
      override exportTo(destDir: string, opts?: ExportOptions): Promise<ExportManifest> {
        events.push(`export quiesceMs=${String(opts?.quiesceMs)}`);
        return super.exportTo(destDir, opts);
      }
    }
    const store = new Busy();
    const w = track(
      watchApplied({ watcher: kv, scope: ALL, store, batch: { windowMs: 1 }, parse: (u) => u, apply: () => {} }),
    );
    kv.put("a", "1");
    await waitFor(() => rev(w.cursor) === 1n, { message: "first flush" });
    const exporting = w.requestExport(join(dir.path, "artifact"));
    kv.put("b", "2");
    kv.put("c", "3");
    const manifest = await exporting;
    expect(events).toEqual([`quiesce ${DEFAULT_EXPORT_QUIESCE_MS}`, "quiet", "export quiesceMs=undefined"]);
    expect(manifest.cursor.revision).toBe(3n);

    // quiesceMs: 0 exports at once; a bad value is refused before anything runs.
    events.length = 0;
    await w.requestExport(join(dir.path, "now"), { quiesceMs: 0 });
    expect(events).toEqual(["export quiesceMs=undefined"]);
    await expect(w.requestExport(join(dir.path, "bad"), { quiesceMs: -1 })).rejects.toSatisfy((e) =>
      SlipstreamError.is(e, "INVALID_ARGUMENT"),
    );
    expect(events).toEqual(["export quiesceMs=undefined"]);
  });

  it("export errors reach the caller only; the watch goes on", async () => {
    await using dir = await tempDir("slipstream-fold-export-");
    const kv = new LogKv();
    const noStore = track(watchApplied({ watcher: kv, scope: ALL, parse: (u) => u, apply: () => {} }));
    await expect(noStore.requestExport(join(dir.path, "x"))).rejects.toSatisfy((e) => SlipstreamError.is(e, "BACKEND"));

    const store = new MemorySnapshotStore();
    const w = track(
      watchApplied({ watcher: kv, scope: ALL, store, batch: { windowMs: 1 }, parse: (u) => u, apply: () => {} }),
    );
    const occupied = join(dir.path, "occupied");
    await mkdir(occupied);
    await writeFile(join(occupied, "stray"), "x");
    await expect(w.requestExport(occupied)).rejects.toSatisfy((e) => SlipstreamError.is(e, "ARTIFACT_INVALID"));
    expect(await readdir(occupied)).toEqual(["stray"]);
    kv.put("a", "1");
    await waitFor(() => rev(w.cursor) === 1n, { message: "still watching" });
    expect(rev(await w.stop())).toBe(1n);
    await expect(w.requestExport(join(dir.path, "late"))).rejects.toSatisfy((e) => SlipstreamError.is(e, "BACKEND"));
  });

  it("exports between flushes of a busy stream carry exactly the applied cursor", async () => {
    await using dir = await tempDir("slipstream-fold-export-");
    const kv = new LogKv();
    const store = new MemorySnapshotStore();
    const w = track(
      watchApplied({
        watcher: kv,
        scope: ALL,
        store,
        batch: { windowMs: 1, max: 7 },
        parse: (u) => u,
        apply: () => {},
      }),
    );
    await waitFor(() => kv.calls.length === 1, { message: "subscribed" });
    const writing = (async () => {
      for (let i = 1; i <= 300; i++) {
        kv.put(`k${i % 13}`, `v${i}`);
        if (i % 10 === 0) await new Promise((r) => setImmediate(r));
      }
    })();
    await waitFor(() => (w.cursor.revision ?? 0n) >= 50n, { message: "streaming" });
    const manifests = await Promise.all([1, 2, 3].map((i) => w.requestExport(join(dir.path, `a${i}`))));
    await writing;
    for (const [i, m] of manifests.entries()) {
      const cursor = m.cursor.revision as bigint;
      expect(cursor >= 50n).toBe(true);
      const imported = await MemorySnapshotStore.import(join(dir.path, `a${i + 1}`), join(dir.path, `i${i + 1}`));
      // The artifact is exactly the log folded up to its cursor: never data ahead of or behind it.
      const expected = new Map<string, string>();
      for (const msg of kv.log) if (msg.seq <= cursor) expected.set(msg.key, new TextDecoder().decode(msg.value));
      const got = new Map<string, string>();
      for await (const e of imported.range("")) got.set(e.key, new TextDecoder().decode(e.value));
      expect(got).toEqual(expected);
    }
    await waitFor(() => rev(w.cursor) === 300n, { message: "all applied" });
  });
});
