/**
 * Aborts that land while a consumer is being created, and listings under concurrent writes.
 */
import { WatchCursor } from "@slipstream/core";
import { connect, type NatsConnection } from "@slipstream/nats";
import { hasNats, type NatsServerHandle, startNats, waitFor } from "@slipstream/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bucketName, consumerCount, enc } from "./helpers.js";

describe.skipIf(!hasNats("any"))("setup aborts and bounded listings", () => {
  let server: NatsServerHandle;
  let conn: NatsConnection;
  beforeAll(async () => {
    server = await startNats();
    conn = await connect({ servers: server.url, timeoutMs: 5_000 });
  });
  afterAll(async () => {
    await conn?.close();
    await server?.close();
  });

  it("a watch or listing aborted while its consumer is being created leaves no consumer", async () => {
    const kv = await conn.store({ name: bucketName("setupabort") });
    for (let i = 0; i < 20; i++) await kv.writer.put(`k.${i}`, enc(`${i}`));
    const runs: Promise<unknown>[] = [];
    for (let i = 0; i < 24; i++) {
      const ctl = new AbortController();
      setTimeout(() => ctl.abort(), i % 9);
      const from = i % 2 ? WatchCursor.fromRevision(5n) : undefined;
      const it = kv.watcher.watch({ kind: "all" }, { from, signal: ctl.signal })[Symbol.asyncIterator]();
      runs.push(
        (async () => {
          try {
            while (!(await it.next()).done) {}
          } catch {
            // aborted
          } finally {
            await it.return?.();
          }
        })(),
      );
      const lctl = new AbortController();
      setTimeout(() => lctl.abort(), i % 4);
      runs.push(
        (async () => {
          try {
            for await (const _ of kv.reader.keys(undefined, { signal: lctl.signal })) {
              // drain
            }
          } catch {
            // aborted
          }
        })(),
      );
    }
    await Promise.all(runs);
    await waitFor(async () => (await consumerCount(conn, kv.name)) === 0, {
      timeoutMs: 10_000,
      message: "every consumer created by an aborted setup is deleted",
    });
  });

  it("a listing under concurrent writes ends after the keys that existed when it started", async () => {
    const kv = await conn.store({ name: bucketName("busylist"), maxBytes: 64 * 1024 * 1024 });
    const N = 2000;
    const pending: Promise<unknown>[] = [];
    for (let i = 0; i < N; i++) {
      pending.push(kv.writer.put(`k.${i}`, enc(`v${i}`)));
      if (pending.length >= 200) await Promise.all(pending.splice(0));
    }
    await Promise.all(pending);
    let writing = true;
    const writers = Array.from({ length: 8 }, async (_, w) => {
      for (let n = 0; writing; n++) await kv.writer.put(`k.${(n * 8 + w) % N}`, enc(`w${w}-${n}`));
    });
    try {
      const keys: string[] = [];
      for await (const k of kv.reader.keys()) keys.push(k);
      // Bounded: never more results than keys existed (nothing here creates new keys).
      expect(keys.length).toBeLessThanOrEqual(N);
      expect(keys.length).toBeGreaterThan(N / 2);
    } finally {
      writing = false;
      await Promise.all(writers);
    }
  });
});
