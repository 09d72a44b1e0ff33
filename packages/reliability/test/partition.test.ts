/**
 * Partitions: a TCP proxy (a test double for fault injection) between a folding node and
 * its nats-server stalls the link (bytes stop flowing, sockets stay open), drops it
 * (every socket destroyed) and heals it. The watch must come back on its own: no stuck
 * iterator, no gap (every revision applied once, in order), recovery within a bound.
 *
 * `SLIPSTREAM_LONG=1` runs more cycles (`SLIPSTREAM_PARTITIONS`).
 */

import { type KvUpdate, updateVersion } from "@slipstream/core";
import { MemorySnapshotStore, watchApplied } from "@slipstream/fold";
import { connect } from "@slipstream/nats";
import { hasNats, startNats, waitFor } from "@slipstream/testkit";
import { describe, expect, it } from "vitest";
import { bucketState, LONG, TcpProxy } from "./harness.js";

const CYCLES = Number(process.env.SLIPSTREAM_PARTITIONS ?? (LONG ? 12 : 1));
/** How long the node may take to catch up after the link heals. */
const RECOVERY_BOUND_MS = 30_000;
const text = new TextDecoder();

describe.skipIf(!hasNats())("partitions (TCP proxy between node and server)", () => {
  it(`${CYCLES} cycle(s) of stall → heal and stall → drop → heal`, async () => {
    await using server = await startNats();
    const proxy = await TcpProxy.start(server.port);
    const direct = await connect({ servers: server.url, timeoutMs: 5_000 });
    const viaProxy = await connect({
      servers: proxy.url,
      timeoutMs: 2_000,
      watchStallMs: 1_500,
      reconnectTimeWaitMs: 100,
      watchRecreateSpreadMs: 100,
    });
    const kv = await direct.store({ name: "part", history: 10 });
    const kvP = await viaProxy.store({ name: "part", history: 10 });
    const store = new MemorySnapshotStore();
    const revs: bigint[] = [];
    const watch = watchApplied<KvUpdate>({
      watcher: kvP.watcher,
      reader: kvP.reader,
      store,
      scope: { kind: "all" },
      retry: { resubscribeMaxMs: 1_000 },
      parse: (u) => u,
      apply: (batch) => {
        for (const u of batch) revs.push(updateVersion(u).revision ?? -1n);
      },
    });
    let failed: unknown;
    watch.done.catch((e: unknown) => {
      failed = e;
    });
    let n = 0;
    const write = async (count: number) => {
      for (let i = 0; i < count; i++, n++) {
        if (n % 7 === 3) await kv.writer.delete(`k.${n % 40}`);
        else await kv.writer.put(`k.${n % 40}`, new TextEncoder().encode(`v${n}`));
      }
    };
    const recoveries: number[] = [];
    const healAndWait = async (what: string) => {
      proxy.heal();
      const t0 = Date.now();
      const last = (await kv.status()).lastSeq;
      await waitFor(() => (watch.cursor.revision ?? 0n) >= last || failed !== undefined, {
        timeoutMs: RECOVERY_BOUND_MS,
        message: `${what}: the watch did not catch up to ${last} (at ${watch.cursor})`,
      });
      expect(failed, `${what}: the watch must not fail`).toBeUndefined();
      recoveries.push(Date.now() - t0);
    };

    try {
      await write(50);
      await waitFor(async () => (watch.cursor.revision ?? 0n) >= (await kv.status()).lastSeq, { timeoutMs: 15_000 });
      for (let c = 0; c < CYCLES; c++) {
        // A black hole longer than the watch's stall bound, then the link comes back.
        proxy.stall();
        await write(30);
        await new Promise((r) => setTimeout(r, 2_500));
        await healAndWait(`cycle ${c} stall`);
        // A black hole, then every socket reset, writes meanwhile, then the link comes back.
        proxy.stall();
        await write(20);
        await new Promise((r) => setTimeout(r, 2_000));
        proxy.drop();
        await write(20);
        await new Promise((r) => setTimeout(r, 500));
        await healAndWait(`cycle ${c} stall+drop`);
      }
      const last = (await kv.status()).lastSeq;
      // No gap, no duplicate, in order: exactly revisions 1..last were applied.
      expect(revs).toEqual(Array.from({ length: Number(last) }, (_, i) => BigInt(i + 1)));
      const fold = new Map<string, string>();
      for await (const e of store.range("")) fold.set(e.key, text.decode(e.value));
      expect(new Map([...fold].sort(([a], [b]) => (a < b ? -1 : 1)))).toEqual(await bucketState(kv));
      console.log(
        `partitions: ${CYCLES} cycle(s), ${recoveries.length} heals, recovery ms ${JSON.stringify(recoveries)}, resubscribes ${watch.stats.resubscribes}`,
      );
    } finally {
      await watch.stop().catch(() => {});
      await viaProxy.close();
      await direct.close();
      await proxy.close();
    }
  }, 600_000);
});
