import { SlipstreamError, WatchCursor } from "@slipstream/core";
import { ExportLease } from "@slipstream/lease";
import { connect, type NatsConnection, type NatsKvStore } from "@slipstream/nats";
import { type NatsServerHandle, startNats } from "@slipstream/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let server: NatsServerHandle;
let conn: NatsConnection;
let bucketNo = 0;

beforeAll(async () => {
  server = await startNats();
  conn = await connect({ servers: server.url });
});
afterAll(async () => {
  await conn?.close();
  await server?.close();
});

async function bucket(): Promise<NatsKvStore> {
  bucketNo += 1;
  return conn.store({ name: `lease_${bucketNo}`, history: 1 });
}

function lease(kv: NatsKvStore, holderId: string, clock?: () => number): ExportLease {
  return new ExportLease({ reader: kv.reader, writer: kv.writer, key: "export.edge.us-east", holderId, clock });
}

describe("ExportLease on a real NATS KV", () => {
  it("exactly one of 8 concurrent candidates wins", async () => {
    const kv = await bucket();
    for (let round = 0; round < 3; round++) {
      const key = `round.${round}`;
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          new ExportLease({ reader: kv.reader, writer: kv.writer, key, holderId: `node-${i}` }).tryAcquire(60_000),
        ),
      );
      const winners = results.filter((g) => g !== undefined);
      expect(winners).toHaveLength(1);
      const rec = await new ExportLease({ reader: kv.reader, writer: kv.writer, key, holderId: "observer" }).current();
      expect(rec?.holder).toBe(winners[0]?.record.holder);
    }
  });

  it("a held lease blocks the next candidate, even after the guard is dropped", async () => {
    const kv = await bucket();
    const a = await lease(kv, "node-a").tryAcquire(60_000);
    expect(a).toBeDefined();
    await a?.[Symbol.asyncDispose]();
    expect(await lease(kv, "node-b").tryAcquire(60_000)).toBeUndefined();
    expect((await lease(kv, "node-b").current())?.holder).toBe("node-a");
  });

  it("an expired lease is taken over, and only by one of several candidates", async () => {
    const kv = await bucket();
    let now = 1_000_000;
    const clock = () => now;
    expect(await lease(kv, "node-a", clock).tryAcquire(1_000)).toBeDefined();
    now += 999;
    expect(await lease(kv, "node-b", clock).tryAcquire(1_000)).toBeUndefined();
    now += 2;
    const takeovers = await Promise.all(
      ["node-b", "node-c", "node-d", "node-e"].map((h) => lease(kv, h, clock).tryAcquire(1_000)),
    );
    const winners = takeovers.filter((g) => g !== undefined);
    expect(winners).toHaveLength(1);
    expect((await lease(kv, "x").current())?.holder).toBe(winners[0]?.record.holder);
  });

  it("expiry by the real clock allows takeover", async () => {
    const kv = await bucket();
    expect(await lease(kv, "node-a").tryAcquire(300)).toBeDefined();
    await new Promise((r) => setTimeout(r, 350));
    expect(await lease(kv, "node-b").tryAcquire(60_000)).toBeDefined();
    expect((await lease(kv, "x").current())?.holder).toBe("node-b");
  });

  it("complete() records the exported cursor; abandon() lets the next candidate in at once", async () => {
    const kv = await bucket();
    const g = await lease(kv, "node-a").tryAcquire(600_000);
    expect(await g?.complete(WatchCursor.fromRevision(42n))).toBe(true);
    const rec = await lease(kv, "x").current();
    expect(rec?.completedCursor?.toHex()).toBe("000000000000002a");
    expect(rec?.holder).toBe("node-a");
    expect(await lease(kv, "node-b").tryAcquire(600_000)).toBeUndefined();
    expect(await g?.abandon()).toBe(true);
    expect(await lease(kv, "x").current()).toBeUndefined();
    const b = await lease(kv, "node-b").tryAcquire(600_000);
    expect(b).toBeDefined();
    expect((await lease(kv, "x").current())?.holder).toBe("node-b");
  });

  it("complete() after a takeover loses the CAS quietly and does not clobber the new holder", async () => {
    const kv = await bucket();
    let now = 5_000_000;
    const clock = () => now;
    const a = await lease(kv, "node-a", clock).tryAcquire(1_000);
    now += 5_000;
    const b = await lease(kv, "node-b", clock).tryAcquire(1_000);
    expect(b).toBeDefined();
    expect(await a?.complete(WatchCursor.fromRevision(7n))).toBe(false);
    const rec = await lease(kv, "x").current();
    expect(rec?.holder).toBe("node-b");
    expect(rec?.completedCursor).toBeUndefined();
    // A stale holder's abandon cannot delete the new holder's lease either.
    expect(await a?.abandon()).toBe(false);
    expect((await lease(kv, "x").current())?.holder).toBe("node-b");
  });

  it("garbage in the lease key is taken over; current() reports it with BACKEND", async () => {
    const kv = await bucket();
    await kv.writer.put("export.edge.us-east", new TextEncoder().encode("garbage"));
    const err = await lease(kv, "x")
      .current()
      .catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "BACKEND")).toBe(true);
    expect((err as Error).message).toMatch(/unparseable/);
    expect(await lease(kv, "node-a").tryAcquire(60_000)).toBeDefined();
    expect((await lease(kv, "x").current())?.holder).toBe("node-a");
  });

  it("a deleted lease key is won by create", async () => {
    const kv = await bucket();
    await lease(kv, "node-a").tryAcquire(60_000);
    await kv.writer.delete("export.edge.us-east");
    expect(await lease(kv, "node-b").tryAcquire(60_000)).toBeDefined();
  });

  it("refuses bad options", async () => {
    expect(
      () => new ExportLease({ reader: undefined as never, writer: undefined as never, key: "k", holderId: "a" }),
    ).toThrow(TypeError);
    const kv = await bucket();
    await expect(lease(kv, "a").tryAcquire(0)).rejects.toSatisfy((e: unknown) =>
      SlipstreamError.is(e, "INVALID_ARGUMENT"),
    );
  });
});
