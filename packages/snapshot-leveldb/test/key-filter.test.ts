import { join } from "node:path";
import type { KvUpdate } from "@slipstream/core";
import { tempDir } from "@slipstream/testkit";
import { describe, expect, it } from "vitest";
import { LevelSnapshotStore } from "../src/index.js";
import { KeyFilter } from "../src/key-filter.js";
import { at, del, keysOf, put, seededRandom } from "./helpers.js";

describe("KeyFilter", () => {
  it("never answers no for a key it was given, through growth", () => {
    const f = new KeyFilter(true);
    const keys = Array.from({ length: 50_000 }, (_, i) => `route.svc-${i % 997}.${i}`);
    for (const k of keys) f.add(k);
    for (const k of keys) expect(f.mightContain(k)).toBe(true);
    expect(f.size).toBeGreaterThan(49_000); // 32-bit fingerprints: a few collisions at most
    // Keys never added are mostly "no" (that is the point of it).
    let maybes = 0;
    for (let i = 0; i < 10_000; i++) if (f.mightContain(`other.${i}`)) maybes++;
    expect(maybes).toBeLessThan(10);
  });

  it("addIfNew adds a new key in one probe and refuses one it may hold", () => {
    const f = new KeyFilter(true);
    expect(f.addIfNew("a")).toBe(true);
    expect(f.addIfNew("a")).toBe(false);
    expect(f.mightContain("a")).toBe(true);
    expect(f.addIfNew("b")).toBe(true);
    expect(f.size).toBe(2);
    expect(new KeyFilter(false).addIfNew("a")).toBe(false);
  });

  it("answers maybe for everything when incomplete or past its cap", () => {
    const incomplete = new KeyFilter(false);
    expect(incomplete.mightContain("a")).toBe(true);
    const capped = new KeyFilter(true, 3000);
    for (let i = 0; i < 2000; i++) capped.add(`k${i}`);
    expect(capped.complete).toBe(true);
    expect(capped.mightContain("absent")).toBe(false);
    for (let i = 2000; i < 5000; i++) capped.add(`k${i}`);
    expect(capped.complete).toBe(false);
    expect(capped.mightContain("absent")).toBe(true);
  });
});

describe("entry count through the no-read fast path", () => {
  it("stays exact across fresh batches, in-batch repeats, put-then-delete, and a reopen", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const dir = join(tmp.path, "fold");
    const store = await LevelSnapshotStore.open(dir);
    // Fresh keys only (no read needed).
    await store.apply([put("a", "1", 1), put("b", "1", 2), del("never", 3)], at(3));
    expect(await store.count()).toBe(2);
    // A repeat in the middle of a batch of otherwise fresh keys.
    await store.apply([put("c", "1", 4), put("d", "1", 5), put("c", "2", 6), put("e", "1", 7)], at(7));
    expect(await store.count()).toBe(5);
    // Delete then put of a fresh key, put then delete of a fresh key, overwrite of an old one.
    await store.apply([del("f", 8), put("f", "1", 9), put("g", "1", 10), del("g", 11), put("a", "2", 12)], at(12));
    expect(await store.count()).toBe(6);
    expect(await keysOf(store)).toEqual(["a", "b", "c", "d", "e", "f"]);
    await store.close();
    // Reopened non-empty: every key is looked up.
    const again = await LevelSnapshotStore.open(dir);
    await again.apply([put("a", "3", 13), put("h", "1", 14), del("b", 15), del("zz", 16)], at(16));
    expect(await again.count()).toBe(6);
    expect(await again.count()).toBe((await keysOf(again)).length);
    await again.close();
  });

  it("stays exact through a random workload that mixes fresh and known keys", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const store = await LevelSnapshotStore.open(join(tmp.path, "fold"));
    const rand = seededRandom(99);
    let rev = 0;
    let fresh = 0;
    for (let b = 0; b < 80; b++) {
      const batch = [];
      const n = 1 + rand(60);
      for (let i = 0; i < n; i++) {
        rev++;
        // Mostly new keys (hydration-like), some repeats of recent ones, some deletes.
        const key = rand(4) === 0 ? `k.${rand(fresh + 1)}` : `k.${fresh++}`;
        batch.push(rand(5) === 0 ? del(key, rev) : put(key, `v${rev}`, rev));
      }
      await store.apply(batch, at(rev));
      expect(await store.count()).toBe((await keysOf(store)).length);
    }
    await store.close();
  });

  it("stays exact when a reopened fold looks up a long mixed batch (parallel halves)", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const dir = join(tmp.path, "fold");
    const store = await LevelSnapshotStore.open(dir);
    await store.apply(
      Array.from({ length: 2000 }, (_, i) => put(`k.${i}`, "1", i + 1)),
      at(2000),
    );
    await store.close();
    // Reopened: the key filter is incomplete, so all 1 200 keys go to one lookup, long enough
    // to run as two halves. Shuffled, so each half mixes present and absent keys.
    const rand = seededRandom(7);
    const ops: Array<(rev: number) => KvUpdate> = [
      ...Array.from({ length: 600 }, (_, i) => (rev: number) => put(`k.${i}`, "2", rev)), // present: +0
      ...Array.from({ length: 300 }, (_, i) => (rev: number) => put(`n.${i}`, "1", rev)), // absent: +300
      ...Array.from({ length: 200 }, (_, i) => (rev: number) => del(`k.${1000 + i}`, rev)), // present: −200
      ...Array.from({ length: 100 }, (_, i) => (rev: number) => del(`x.${i}`, rev)), // absent: ±0
    ];
    for (let i = ops.length - 1; i > 0; i--) {
      const j = rand(i + 1);
      [ops[i], ops[j]] = [ops[j] as (typeof ops)[number], ops[i] as (typeof ops)[number]];
    }
    const again = await LevelSnapshotStore.open(dir);
    await again.apply(
      ops.map((op, i) => op(2001 + i)),
      at(2000 + ops.length),
    );
    expect(await again.count()).toBe(2100);
    expect((await keysOf(again)).length).toBe(2100);
    await again.close();
  });
});

describe("records written through the shared scratch buffer", () => {
  it("keep each entry's own key, version and value within one batch (sizes growing past the scratch)", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const store = await LevelSnapshotStore.open(join(tmp.path, "fold"));
    const big = "x".repeat(200_000); // larger than the 64 KiB scratch: it grows mid-batch
    await store.apply([put("a", "1", 1), put("b", big, 2), put("c", "three", 3), put("a", "4", 4)], at(4));
    const e = await store.getMany(["a", "b", "c"]);
    expect(e.map((x) => x && Buffer.from(x.value).toString().slice(0, 5))).toEqual(["4", "xxxxx", "three"]);
    expect(e[1]?.value.length).toBe(200_000);
    expect(e.map((x) => x?.version.revision)).toEqual([4n, 2n, 3n]);
    await store.close();
  });
});
