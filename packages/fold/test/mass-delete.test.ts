import { join } from "node:path";
import type { WatchCursor } from "@slipstream/core";
import { SlipstreamError } from "@slipstream/core";
import type { AppliedWatch, MassDeleteInfo } from "@slipstream/fold";
import { dumpStore, MemorySnapshotStore, watchApplied } from "@slipstream/fold";
import { tempDir, waitFor } from "@slipstream/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { LogKv } from "./helpers/log-kv.js";

const running: AppliedWatch[] = [];
afterEach(async () => {
  for (const w of running.splice(0)) await w.stop().catch(() => undefined);
});

/** A fold of `n` keys `route.<i>`, all applied; the watch that built it is stopped. */
async function foldOf(kv: LogKv, n: number): Promise<MemorySnapshotStore> {
  for (let i = 0; i < n; i++) kv.put(`route.${i}`, "v");
  const store = new MemorySnapshotStore();
  const w = watchApplied({ watcher: kv, scope: { kind: "all" }, store, parse: (u) => u, apply: () => {} });
  await waitFor(() => store.cursor.revision === kv.nextSeq - 1n, { message: "folded" });
  await w.stop();
  return store;
}

/**
 * Deletes the first `gone` of `n` keys, re-puts the survivors (so they stay live once their
 * old messages are evicted), adds one key, then lets retention evict everything before.
 */
function purgeDuringGap(kv: LogKv, gone: number, n: number): void {
  for (let i = 0; i < gone; i++) kv.del(`route.${i}`);
  const keep = kv.nextSeq;
  for (let i = gone; i < n; i++) kv.put(`route.${i}`, "v2");
  kv.put("route.fresh", "new");
  kv.evictThrough(keep - 1n);
}

function resyncWatch(kv: LogKv, store: MemorySnapshotStore, extra: object = {}): AppliedWatch {
  const w = watchApplied({
    watcher: kv,
    reader: kv,
    store,
    scope: { kind: "prefix", prefix: "route." },
    batch: { windowMs: 1 },
    parse: (u) => u,
    apply: () => {},
    ...extra,
  });
  running.push(w);
  return w;
}

describe("mass-delete guard of a resync", () => {
  it("refuses a resync that would delete most of the fold: MASS_DELETE_REFUSED, the fold unchanged", async () => {
    const kv = new LogKv();
    const store = await foldOf(kv, 300);
    const before = await dumpStore(store);
    const cursor: WatchCursor = store.cursor;
    purgeDuringGap(kv, 250, 300); // 250 of 300 vanished: over 50 % and over 100 keys
    const w = resyncWatch(kv, store);
    const err = await w.done.catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "MASS_DELETE_REFUSED")).toBe(true);
    expect((err as Error).message).toMatch(/250 of the fold's 300 keys/);
    expect(await dumpStore(store)).toEqual(before);
    expect(store.cursor.equals(cursor)).toBe(true);
    expect(w.stats.syntheticDeletes).toBe(0);
  });

  it("lets small or proportionate resyncs through", async () => {
    const kv = new LogKv();
    const store = await foldOf(kv, 300);
    purgeDuringGap(kv, 140, 300); // under 50 %
    const w = resyncWatch(kv, store);
    await waitFor(() => w.stats.syntheticDeletes === 140, { message: "deletes applied" });
    const small = new LogKv();
    const smallStore = await foldOf(small, 50);
    purgeDuringGap(small, 45, 50); // 90 %, but under minKeys
    const w2 = resyncWatch(small, smallStore);
    await waitFor(() => w2.stats.syntheticDeletes === 45, { message: "small resync applied" });
  });

  it("asks onMassDelete, which may allow it; massDelete: false turns the guard off", async () => {
    const kv = new LogKv();
    const store = await foldOf(kv, 300);
    purgeDuringGap(kv, 250, 300);
    const seen: MassDeleteInfo[] = [];
    const w = resyncWatch(kv, store, {
      massDelete: {
        onMassDelete: (info: MassDeleteInfo) => {
          seen.push(info);
          return true;
        },
      },
    });
    await waitFor(() => w.stats.syntheticDeletes === 250, { message: "allowed deletes applied" });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ deletes: 250, foldKeys: 300, liveKeys: 51 });
    expect(seen[0]?.sample.length).toBe(20);

    const kv2 = new LogKv();
    const store2 = await foldOf(kv2, 300);
    purgeDuringGap(kv2, 250, 300);
    const off = resyncWatch(kv2, store2, { massDelete: false });
    await waitFor(() => off.stats.syntheticDeletes === 250, { message: "guard off" });
  });

  it("a hook that refuses or throws keeps the fold; bad options are refused up front", async () => {
    const kv = new LogKv();
    const store = await foldOf(kv, 200);
    const before = await dumpStore(store);
    purgeDuringGap(kv, 200, 200);
    const boom = new Error("pager says no");
    const w = resyncWatch(kv, store, {
      massDelete: {
        onMassDelete: () => {
          throw boom;
        },
      },
    });
    const err = await w.done.catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "MASS_DELETE_REFUSED")).toBe(true);
    expect((err as Error).cause).toBe(boom);
    expect(await dumpStore(store)).toEqual(before);
    expect(() => resyncWatch(kv, store, { massDelete: { maxShare: 2 } })).toThrow(/maxShare/);
  });
});

describe("resync of a partial fold", () => {
  it("counts each fold key once when the watch's prefixes overlap", async () => {
    const kv = new LogKv();
    const store = await foldOf(kv, 300);
    // 160 of 300 (53 %) vanish; counting route.1* twice would make it 160 of 411 (39 %).
    purgeDuringGap(kv, 160, 300);
    const seen: MassDeleteInfo[] = [];
    const w = resyncWatch(kv, store, {
      scope: { kind: "prefixes", prefixes: ["route.", "route.1"] },
      massDelete: { onMassDelete: (info: MassDeleteInfo) => seen.push(info) < 0 },
    });
    const err = await w.done.catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "MASS_DELETE_REFUSED")).toBe(true);
    expect(seen[0]).toMatchObject({ source: "resync", deletes: 160, foldKeys: 300 });
  });

  it("a route.eu. fold imported from a whole artifact resyncs within its scope only", async () => {
    const kv = new LogKv();
    for (let i = 0; i < 100; i++) kv.put(`route.eu.${i}`, "v");
    for (let i = 0; i < 200; i++) kv.put(`route.us.${i}`, "v");
    const whole = new MemorySnapshotStore();
    const w0 = watchApplied({ watcher: kv, scope: { kind: "all" }, store: whole, parse: (u) => u, apply: () => {} });
    await waitFor(() => whole.cursor.revision === kv.nextSeq - 1n, { message: "folded" });
    await w0.stop();
    const root = await tempDir("slipstream-partial-resync-");
    try {
      await whole.exportTo(join(root.path, "artifact"));
      const eu = await MemorySnapshotStore.import(join(root.path, "artifact"), join(root.path, "eu"), {
        scope: { kind: "prefix", prefix: "route.eu." },
      });
      expect(eu.size).toBe(100);
      const before = await dumpStore(eu);
      // During the gap: 60 eu keys and every us key vanish, the rest is re-put, then evicted.
      for (let i = 0; i < 60; i++) kv.del(`route.eu.${i}`);
      for (let i = 0; i < 200; i++) kv.del(`route.us.${i}`);
      const keep = kv.nextSeq;
      for (let i = 60; i < 100; i++) kv.put(`route.eu.${i}`, "v2");
      kv.put("route.eu.fresh", "new");
      kv.evictThrough(keep - 1n);

      const seen: MassDeleteInfo[] = [];
      const scope = { kind: "prefix", prefix: "route.eu." } as const;
      const refused = resyncWatch(kv, eu, {
        scope,
        massDelete: { minKeys: 10, onMassDelete: (info: MassDeleteInfo) => seen.push(info) < 0 },
      });
      const err = await refused.done.catch((e: unknown) => e);
      expect(SlipstreamError.is(err, "MASS_DELETE_REFUSED")).toBe(true);
      // The guard saw the node's scope only: 60 of its 100 keys, not of the artifact's 300.
      expect(seen[0]).toMatchObject({ deletes: 60, foldKeys: 100, liveKeys: 41 });
      expect(await dumpStore(eu)).toEqual(before);

      const allowed = resyncWatch(kv, eu, { scope, massDelete: { minKeys: 10, onMassDelete: () => true } });
      await waitFor(() => eu.cursor.revision === kv.nextSeq - 1n && eu.size === 41, { message: "resynced" });
      expect(allowed.stats.syntheticDeletes).toBe(60);
      const keys: string[] = [];
      for await (const e of eu.range("")) keys.push(e.key);
      expect(keys.every((k) => k.startsWith("route.eu."))).toBe(true);
      expect(keys).toContain("route.eu.fresh");
      expect(keys).not.toContain("route.eu.0");
    } finally {
      await root.cleanup();
    }
  });
});
