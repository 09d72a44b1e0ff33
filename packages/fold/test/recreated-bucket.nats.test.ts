/**
 * watchApplied when the bucket under a fold is deleted and recreated (its revisions start
 * again from 1, below the fold's cursor), and when the connection is closed under it.
 */
import { randomBytes } from "node:crypto";
import type { KvReader } from "@slipstream/core";
import { SlipstreamError } from "@slipstream/core";
import { MemoryBacking, MemorySnapshotStore, watchApplied } from "@slipstream/fold";
import { connect, type NatsConnection } from "@slipstream/nats";
import { hasNats, type NatsServerHandle, startNats, waitFor } from "@slipstream/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const FAST_RETRY = { resubscribeInitialMs: 20, resubscribeMaxMs: 200, commitInitialMs: 5, commitMaxMs: 20 };

async function live(reader: KvReader): Promise<string[]> {
  const out: string[] = [];
  for await (const e of reader.scan()) out.push(`${e.key}=${dec(e.value)}`);
  return out.sort();
}

async function folded(store: MemorySnapshotStore): Promise<string[]> {
  const out: string[] = [];
  for await (const e of store.range("")) out.push(`${e.key}=${dec(e.value)}`);
  return out.sort();
}

describe.skipIf(!hasNats("any"))("watchApplied and a recreated bucket", () => {
  let server: NatsServerHandle;
  let nc: NatsConnection;

  beforeAll(async () => {
    server = await startNats();
    nc = await connect({ servers: server.url, timeoutMs: 5_000 });
  });
  afterAll(async () => {
    await nc?.close();
    await server?.close();
  });

  it("resyncs to the new bucket and never resumes past updates it has not applied", async () => {
    const name = `recreated_${randomBytes(3).toString("hex")}`;
    const kv = await nc.store({ name });
    for (let i = 0; i < 10; i++) await kv.writer.put(`old.${i}`, enc(`v${i}`));
    const backing = new MemoryBacking();
    let store = new MemorySnapshotStore({ backing });
    // A node restart: close the store, reopen it from the same backing, fold again.
    const restart = async (w: { stop(): Promise<unknown> }) => {
      await w.stop();
      await store.close();
      store = new MemorySnapshotStore({ backing });
    };
    const fold = () =>
      watchApplied({
        watcher: kv.watcher,
        reader: kv.reader,
        store,
        scope: { kind: "all" },
        batch: { windowMs: 5 },
        retry: FAST_RETRY,
        parse: (u) => u,
        apply: () => {},
      });
    let w = fold();
    await waitFor(() => w.cursor.revision === 10n, { timeoutMs: 10_000, message: "first fold reached 10" });
    await restart(w);

    // The bucket is deleted and recreated: revisions start again at 1.
    await nc.client.request(`$JS.API.STREAM.DELETE.KV_${name}`, new Uint8Array(0));
    const again = await nc.store({ name });
    for (let i = 0; i < 3; i++) await again.writer.put(`new.${i}`, enc(`n${i}`));

    w = fold();
    await waitFor(async () => (await folded(store)).join() === (await live(again.reader)).join(), {
      timeoutMs: 10_000,
      message: "resync converged on the recreated bucket",
    });
    expect(w.stats.resyncs).toBe(1);
    expect(w.cursor.revision).toBe(3n);
    await restart(w);

    // Writes while the node is down, with revisions below the old cursor of 10 and above it.
    for (let i = 3; i < 15; i++) await again.writer.put(`new.${i}`, enc(`n${i}`));
    w = fold();
    await waitFor(() => w.cursor.revision === 15n, { timeoutMs: 10_000, message: "resume reached 15" });
    await w.stop();
    expect(await folded(store)).toEqual(await live(again.reader));
    await store.close();
  });

  it("a connection closed under it ends the watch with NOT_CONNECTED instead of retrying forever", async () => {
    const own = await connect({ servers: server.url, timeoutMs: 5_000 });
    const kv = await own.store({ name: `closed_${randomBytes(3).toString("hex")}` });
    await kv.writer.put("a", enc("1"));
    const w = watchApplied({
      watcher: kv.watcher,
      scope: { kind: "all" },
      retry: FAST_RETRY,
      parse: (u) => u,
      apply: () => {},
    });
    await waitFor(() => w.cursor.revision === 1n, { timeoutMs: 10_000, message: "watch applied a" });
    await own.close();
    const err = await w.done.catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "NOT_CONNECTED"), String(err)).toBe(true);
    expect(w.stats.resubscribes).toBeLessThanOrEqual(2);
  });
});
