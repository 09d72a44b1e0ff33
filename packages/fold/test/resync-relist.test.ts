import type { AppliedWatch } from "@slipstream/fold";
import { dumpStore, MemorySnapshotStore, watchApplied } from "@slipstream/fold";
import { waitFor } from "@slipstream/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { LogKv } from "./helpers/log-kv.js";

const running: AppliedWatch[] = [];
afterEach(async () => {
  for (const w of running.splice(0)) await w.stop().catch(() => undefined);
});

/** A fold of a@1, b@2, c@3 whose cursor (3) then expires: x@4 is evicted, b@5 a@6 c@7 live. */
async function expiredFold(kv: LogKv): Promise<MemorySnapshotStore> {
  kv.put("k.a", "a1");
  kv.put("k.b", "b1");
  kv.put("k.c", "c1");
  const store = new MemorySnapshotStore();
  const w = watchApplied({ watcher: kv, scope: { kind: "all" }, store, parse: (u) => u, apply: () => {} });
  await waitFor(() => store.cursor.revision === 3n, { message: "folded" });
  await w.stop();
  kv.put("k.x", "x"); // 4
  kv.put("k.b", "b2"); // 5
  kv.put("k.a", "a2"); // 6
  kv.put("k.c", "c2"); // 7
  kv.evictThrough(4n); // the fold's cursor 3 has expired
  return store;
}

function resync(kv: LogKv, store: MemorySnapshotStore): AppliedWatch {
  const w = watchApplied({
    watcher: kv,
    reader: kv,
    store,
    scope: { kind: "prefix", prefix: "k." },
    batch: { windowMs: 1 },
    parse: (u) => u,
    apply: () => {},
  });
  running.push(w);
  return w;
}

const view = async (store: MemorySnapshotStore) =>
  (await dumpStore(store)).entries.map(
    ([k, v, ver]) => `${k}=${Buffer.from(v ?? "", "hex").toString()}@${BigInt(`0x${ver || "0"}`)}`,
  );

describe("resync: a key evicted between the listing and the re-list", () => {
  it("is deleted once the re-list has ended, instead of keeping an older value forever", async () => {
    const kv = new LogKv();
    const store = await expiredFold(kv);
    // Retention goes on while the resync runs: k.b (live at 5 when listed) is evicted
    // before the re-list reaches it.
    kv.afterKeys = () => kv.evictThrough(5n);
    const w = resync(kv, store);
    await waitFor(() => w.cursor.revision === 7n && w.stats.resyncs === 1 && w.stats.syntheticDeletes === 1, {
      message: "re-listed and finished",
    });
    expect(await view(store)).toEqual(["k.a=a2@6", "k.c=c2@7"]);
    // A later put of the key comes after the resync's delete, as a live update.
    kv.put("k.b", "b3"); // 8
    await waitFor(() => store.cursor.revision === 8n, { message: "live put" });
    expect(await view(store)).toEqual(["k.a=a2@6", "k.b=b3@8", "k.c=c2@7"]);
  });

  it("deletes nothing more when nothing vanished meanwhile", async () => {
    const kv = new LogKv();
    const store = await expiredFold(kv);
    const w = resync(kv, store);
    await waitFor(() => w.cursor.revision === 7n && w.stats.resyncs === 1, { message: "re-listed" });
    await new Promise((r) => setTimeout(r, 30));
    expect(w.stats.syntheticDeletes).toBe(0);
    expect(await view(store)).toEqual(["k.a=a2@6", "k.b=b2@5", "k.c=c2@7"]);
  });
});
