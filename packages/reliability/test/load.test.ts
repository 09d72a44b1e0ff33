/**
 * Load: 8 node processes fold one bucket into LevelDB while a publisher writes without
 * pause. At the end every fold equals the bucket, and the nodes' resident memory is flat:
 * the late samples stay within a bound of the early ones (after warm-up).
 *
 * Short in the suite (a few seconds); `SLIPSTREAM_LONG=1` writes for minutes
 * (`SLIPSTREAM_LOAD_MS`).
 */
import { join } from "node:path";
import { connect, type StoreConfig } from "@slipstream/nats";
import { hasNats, startNats, tempDir } from "@slipstream/testkit";
import { describe, expect, it } from "vitest";
import { bucketState, LONG, NodeProc, sortedValues } from "./harness.js";

const DURATION_MS = Number(process.env.SLIPSTREAM_LOAD_MS ?? (LONG ? 180_000 : 4_000));
const NODES = 8;
const KEYS = 2_000;

/** Median of a list of numbers. */
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

describe.skipIf(!hasNats())("load (8 nodes, sustained writes)", () => {
  it(`${NODES} nodes fold one bucket under ${DURATION_MS} ms of writes`, async () => {
    await using tmp = await tempDir("slipstream-load-");
    await using server = await startNats();
    const nc = await connect({ servers: server.url, timeoutMs: 10_000 });
    const bucket: StoreConfig = { name: "load", history: 1 };
    const kv = await nc.store(bucket);
    await nc.store({ name: "leases", history: 1 });
    const nodes = Array.from(
      { length: NODES },
      (_, i) =>
        new NodeProc({
          url: server.url,
          bucket,
          leases: "leases",
          blobsDir: join(tmp.path, "blobs"),
          key: "load",
          foldDir: join(tmp.path, `node-${i}`, "fold"),
          scratchDir: join(tmp.path, `node-${i}`, "scratch"),
          id: `node-${i}`,
          rssEveryMs: Math.max(250, Math.floor(DURATION_MS / 40)),
          batchMax: 500,
        }),
    );
    try {
      for (const n of nodes) await n.readyLine();
      // Sustained writes: 4 writers, values of 50..550 bytes, a delete now and then.
      let writes = 0;
      const until = Date.now() + DURATION_MS;
      const writer = async (w: number) => {
        let i = 0;
        while (Date.now() < until) {
          const key = `k.${(i * 7919 + w * 104729) % KEYS}`;
          if (i % 50 === 49) await kv.writer.delete(key);
          else await kv.writer.put(key, new TextEncoder().encode(`${w}.${i}.${"z".repeat(50 + (i % 500))}`));
          i++;
          writes++;
        }
      };
      await Promise.all([0, 1, 2, 3].map(writer));
      const last = (await kv.status()).lastSeq;
      for (const n of nodes) await n.caughtUp(last, 120_000);
      const bucketNow = await bucketState(kv);
      for (const n of nodes) expect(sortedValues(await n.dump()), `${n.cfg.id} equals the bucket`).toEqual(bucketNow);

      // Memory flat: the late quarter of each node's RSS samples against its second quarter.
      const report: string[] = [];
      for (const n of nodes) {
        const rss = n.lines.filter((l) => l.startsWith("RSS ")).map((l) => Number(l.slice(4)));
        expect(rss.length, `${n.cfg.id} sampled its RSS`).toBeGreaterThanOrEqual(4);
        const q = Math.floor(rss.length / 4);
        const early = median(rss.slice(q, 2 * q));
        const late = median(rss.slice(-q));
        report.push(`${Math.round(early / 2 ** 20)}→${Math.round(late / 2 ** 20)}`);
        expect(late, `${n.cfg.id} RSS ${early} → ${late}`).toBeLessThan(early * 1.5 + 48 * 2 ** 20);
      }
      console.log(
        `load: ${NODES} nodes, ${writes} writes in ${DURATION_MS} ms (last revision ${last}), every fold equals the bucket; RSS MiB (early→late median) ${report.join(" ")}`,
      );
    } finally {
      for (const n of nodes) await n.kill();
      await nc.close();
    }
  }, 1_800_000);
});
