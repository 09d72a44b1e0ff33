import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { type KvUpdate, VersionToken } from "@slipstream/core";
import { tempDir } from "@slipstream/testkit";
import { describe, expect, it } from "vitest";
import { LevelSnapshotStore } from "../src/index.js";
import { at } from "./helpers.js";

const ENTRIES = 1_000_000;
const VALUE_BYTES = 64;
const BATCH = 10_000;
// Generous: a buffering implementation holds ~1M key/value Buffers (several hundred MB).
const MAX_GROWTH = 300 * 1024 * 1024;

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

function keyOf(i: number): string {
  return `route.svc-${String(Math.floor(i / 1000)).padStart(4, "0")}.${String(i % 1000).padStart(6, "0")}`;
}

/** Incompressible (xorshift) value bytes, a pure function of i. */
function valueBytes(i: number): Uint8Array {
  const out = new Uint8Array(VALUE_BYTES);
  let x = (i * 2654435761) >>> 0 || 1;
  for (let j = 0; j < VALUE_BYTES; j++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[j] = x & 0xff;
  }
  return out;
}

/** Samples RSS and heap while `fn` runs; returns the peaks. */
async function peakDuring(fn: () => Promise<void>): Promise<{ rss: number; heap: number }> {
  let rss = process.memoryUsage.rss();
  let heap = process.memoryUsage().heapUsed;
  const timer = setInterval(() => {
    const m = process.memoryUsage();
    rss = Math.max(rss, m.rss);
    heap = Math.max(heap, m.heapUsed);
  }, 10);
  try {
    await fn();
  } finally {
    clearInterval(timer);
  }
  const m = process.memoryUsage();
  return { rss: Math.max(rss, m.rss), heap: Math.max(heap, m.heapUsed) };
}

describe("large folds", () => {
  it(`a ${ENTRIES / 1000}k-entry (~100 MB) export → import round trip streams with bounded memory`, async () => {
    await using tmp = await tempDir("slipstream-leveldb-large-");
    const source = await LevelSnapshotStore.open(join(tmp.path, "source"));
    const tFill = performance.now();
    for (let start = 0; start < ENTRIES; start += BATCH) {
      const batch: KvUpdate[] = [];
      for (let i = start; i < start + BATCH; i++) {
        batch.push({
          type: "put",
          entry: { key: keyOf(i), value: valueBytes(i), version: VersionToken.fromRevision(BigInt(i + 1)) },
        });
      }
      await source.apply(batch, at(start + BATCH));
    }
    expect(await source.count()).toBe(ENTRIES);
    console.info(`large fold: hydrated ${ENTRIES} entries in ${Math.round(performance.now() - tFill)} ms`);

    gc();
    const base = { rss: process.memoryUsage.rss(), heap: process.memoryUsage().heapUsed };
    const artifact = join(tmp.path, "artifact");
    let imported: LevelSnapshotStore | undefined;
    let payloadBytes = 0;
    let compared = 0;
    const t0 = performance.now();
    const phases: string[] = [];
    const phase = (name: string) => phases.push(`${name} ${Math.round(performance.now() - t0)} ms`);
    const peak = await peakDuring(async () => {
      const manifest = await source.exportTo(artifact);
      payloadBytes = manifest.files.reduce((n, f) => n + f.size, 0);
      expect(manifest.cursor.revision).toBe(BigInt(ENTRIES));
      phase("export");
      imported = await LevelSnapshotStore.import(artifact, join(tmp.path, "imported"));
      phase("import");
      // Walk both folds in lockstep: every entry identical, in the same order.
      const a = source.range("")[Symbol.asyncIterator]();
      const b = imported.range("")[Symbol.asyncIterator]();
      for (;;) {
        const [x, y] = await Promise.all([a.next(), b.next()]);
        if (x.done || y.done) {
          expect(x.done && y.done, "both folds end together").toBe(true);
          break;
        }
        if (x.value.key !== y.value.key || !x.value.version.equals(y.value.version)) {
          expect(y.value.key).toBe(x.value.key);
        }
        if (Buffer.compare(x.value.value, y.value.value) !== 0) expect(y.value.value).toEqual(x.value.value);
        compared++;
      }
      phase("compare");
    });
    expect(compared).toBe(ENTRIES);
    expect(imported?.cursor.revision).toBe(BigInt(ENTRIES));
    expect(await imported?.count()).toBe(ENTRIES);
    expect(
      Buffer.from((await imported?.get(keyOf(123_456)))?.value ?? []).equals(Buffer.from(valueBytes(123_456))),
    ).toBe(true);
    // The fold really is large: ~100 MB of incompressible payload.
    expect(payloadBytes).toBeGreaterThan(70 * 1024 * 1024);
    expect(peak.rss - base.rss, `RSS grew by ${Math.round((peak.rss - base.rss) / 2 ** 20)} MiB`).toBeLessThan(
      MAX_GROWTH,
    );
    expect(peak.heap - base.heap, `heap grew by ${Math.round((peak.heap - base.heap) / 2 ** 20)} MiB`).toBeLessThan(
      MAX_GROWTH,
    );
    console.info(
      `large fold: payload ${Math.round(payloadBytes / 2 ** 20)} MiB, RSS +${Math.round((peak.rss - base.rss) / 2 ** 20)} MiB, heap +${Math.round((peak.heap - base.heap) / 2 ** 20)} MiB; ${phases.join(", ")}`,
    );
    await imported?.close();
    await source.close();
  }, 240_000);
});
