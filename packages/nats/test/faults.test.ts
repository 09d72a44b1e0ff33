import { jetstreamManager } from "@nats-io/jetstream";
import { SlipstreamError } from "@slipstream/core";
import { hasNats, waitFor } from "@slipstream/testkit";
import { describe, expect, it } from "vitest";
import type { NatsConnection } from "../src/index.js";
import { FIRST_PULL } from "../src/watcher.js";
import {
  bucketName,
  connectTo,
  consumerCount,
  consumerInfos,
  consumerNames,
  enc,
  type NatsServerHandle,
  nextWithin,
  show,
  startNats,
  take,
  useCleanups,
} from "./helpers.js";

describe.skipIf(!hasNats("any"))("watch under faults", () => {
  const cleanups = useCleanups();
  async function setup(
    stallMs = 4000,
  ): Promise<{ server: NatsServerHandle; conn: NatsConnection; admin: NatsConnection }> {
    const server = await startNats();
    cleanups.push(() => server.close());
    const conn = await connectTo(server, { watchStallMs: stallMs });
    cleanups.push(() => conn.close());
    const admin = await connectTo(server);
    cleanups.push(() => admin.close());
    return { server, conn, admin };
  }

  it("breaking a for-await loop removes the consumer", async () => {
    const { conn, admin } = await setup();
    const kv = await conn.store({ name: bucketName("brk") });
    await kv.writer.put("a", enc("1"));
    await kv.writer.put("b", enc("2"));
    for await (const u of kv.watcher.watch({ kind: "all" })) {
      expect(show(u)).toBe("put a=1@1");
      expect(await consumerCount(admin, kv.name)).toBe(1);
      break;
    }
    expect(await consumerCount(admin, kv.name)).toBe(0);
  });

  it("close() ends running watches cleanly and removes their consumers", async () => {
    const { conn, admin } = await setup();
    const kv = await conn.store({ name: bucketName("cls") });
    await kv.writer.put("a", enc("1"));
    const seen: string[] = [];
    const runs = [kv.watcher.watch({ kind: "all" }), kv.watcher.watch({ kind: "prefix", prefix: "a" })].map(
      async (w) => {
        for await (const u of w) seen.push(show(u));
        return "ended";
      },
    );
    await waitFor(() => seen.length === 2, { timeoutMs: 5000, message: "both watches delivered" });
    expect(await consumerCount(admin, kv.name)).toBe(2);
    await conn.close();
    expect(await Promise.all(runs)).toEqual(["ended", "ended"]);
    expect(await consumerCount(admin, kv.name)).toBe(0);
    expect(conn.isHealthy).toBe(false);
    const err = await conn.store({ name: kv.name }).catch((e) => e);
    expect(SlipstreamError.is(err, "NOT_CONNECTED")).toBe(true);
  });

  it("an idle watch is kept alive by heartbeats well past watchStallMs (and a benign purge does not trip the floor probe)", async () => {
    const { conn, admin } = await setup(2500);
    const kv = await conn.store({ name: bucketName("idle") });
    await kv.writer.put("a", enc("1"));
    const it = kv.watcher.watch({ kind: "all" })[Symbol.asyncIterator]();
    await take(it, 1);
    const pending = it.next();
    // Everything was delivered, so emptying the stream (first_seq = 2) loses nothing.
    const jsm = await jetstreamManager(admin.client);
    await jsm.streams.purge(`KV_${kv.name}`);
    await new Promise((r) => setTimeout(r, 5500));
    await kv.writer.put("b", enc("2"));
    const r = await pending;
    expect(r.done ? "ended" : show(r.value)).toBe("put b=2@2");
    await it.return?.();
  });

  it("floor probe: revisions evicted before delivery, with nothing after them, end an idle watch with CURSOR_EXPIRED", async () => {
    const { conn, admin } = await setup(2000);
    const kv = await conn.store({ name: bucketName("probe") });
    await kv.writer.put("seed", enc("0"));
    const it = kv.watcher.watch({ kind: "all" })[Symbol.asyncIterator]();
    await take(it, 1);
    const kvAdmin = await admin.store({ name: kv.name });
    // Complete the first pull batch, then hold: nothing is pulled while we do not ask.
    const n = FIRST_PULL;
    for (let i = 2; i <= n; i++) await kvAdmin.writer.put(`k.${i}`, enc("x"));
    await take(it, n - 1);
    for (let i = n + 1; i <= n + 3; i++) await kvAdmin.writer.put(`k.${i}`, enc("x"));
    const jsm = await jetstreamManager(admin.client);
    await jsm.streams.purge(`KV_${kv.name}`); // n+1..n+3 are gone, and nothing follows them
    expect((await kv.status()).firstSeq).toBe(BigInt(n + 4));
    await expect(nextWithin(it, 15_000)).rejects.toMatchObject({ code: "CURSOR_EXPIRED" });
  });

  it("back-pressure: a watch whose caller is slow buffers a bounded batch, not the whole bucket", async () => {
    const { conn, admin } = await setup();
    // 6 000 values of 4 KiB: 24 MiB in the bucket, far more than the two pulls of about
    // 1 MiB a watch keeps open.
    const n = 6_000;
    const kv = await conn.store({ name: bucketName("bp"), maxBytes: 64 * 1024 * 1024 });
    const value = new Uint8Array(4096).fill(120);
    for (let i = 0; i < n; i += 1000) {
      await Promise.all(Array.from({ length: 1000 }, (_, j) => kv.writer.put(`k.${i + j}`, value)));
    }
    const it = kv.watcher.watch({ kind: "all" })[Symbol.asyncIterator]();
    await take(it, 1);
    await new Promise((r) => setTimeout(r, 500));
    const [ci] = await consumerInfos(admin, kv.name);
    // Delivered to the client so far: the first pull (256) and one more of about 1 MiB
    // (~250 of these), nowhere near the 6 000 in the bucket.
    expect(ci?.delivered.consumer_seq).toBeGreaterThan(0);
    expect(ci?.delivered.consumer_seq).toBeLessThanOrEqual(1024);
    // And it all still arrives, in order.
    const rest = await take(it, n - 1);
    const revs = rest.map((u) => (u.type === "put" ? u.entry.version.revision! : 0n));
    expect(revs.every((r, i) => r === BigInt(i + 2))).toBe(true);
    await it.return?.();
  });

  it("close() during a listing ends it with NOT_CONNECTED; twenty watches close without a consumer left", async () => {
    const { conn, admin } = await setup();
    const kv = await conn.store({ name: bucketName("many") });
    for (let i = 0; i < 30; i++) await kv.writer.put(`k.${i}`, enc("x"));
    const watches = Array.from({ length: 20 }, (_, i) =>
      (async () => {
        let n = 0;
        for await (const _ of kv.watcher.watch(i % 2 ? { kind: "all" } : { kind: "prefix", prefix: "k.1" })) n++;
        return n;
      })(),
    );
    await waitFor(async () => (await consumerCount(admin, kv.name)) === 20, {
      timeoutMs: 10_000,
      message: "20 watch consumers",
    });
    const listing = (async () => {
      for await (const _ of kv.reader.scan("k.")) await new Promise((r) => setTimeout(r, 50));
      return "completed";
    })().catch((e) => e);
    await waitFor(async () => (await consumerCount(admin, kv.name)) === 21, {
      timeoutMs: 10_000,
      message: "listing consumer",
    });
    await conn.close();
    const counts = await Promise.all(watches);
    expect(counts.every((n) => n > 0)).toBe(true);
    expect(await listing).toMatchObject({ code: "NOT_CONNECTED" });
    // close() deletes the consumers on its way out; the server may apply the last delete a
    // moment after the client is gone. Nothing may be left (the inactivity backstop is 120 s, far beyond this).
    await waitFor(async () => (await consumerCount(admin, kv.name)) === 0, {
      timeoutMs: 5_000,
      message: "no consumer left after close()",
    });
    expect(await consumerCount(admin, kv.name)).toBe(0);
  });

  for (const [version, how] of [
    ["2.10", "restart"],
    ["2.9", "restart"],
    ["any", "kill then restart"],
  ] as const) {
    it.skipIf(!hasNats(version))(
      `a ${how} of the server (${version}): the watch resumes without a gap, writes made while it was away included`,
      async () => {
        const server = await startNats({ version });
        cleanups.push(() => server.close());
        const conn = await connectTo(server, { watchStallMs: 8000 });
        cleanups.push(() => conn.close());
        const kv = await conn.store({ name: bucketName("rst") });
        for (let i = 1; i <= 3; i++) await kv.writer.put(`k.${i}`, enc(String(i)));
        const it = kv.watcher.watch({ kind: "prefix", prefix: "k." })[Symbol.asyncIterator]();
        expect((await take(it, 3)).map(show)).toEqual(["put k.1=1@1", "put k.2=2@2", "put k.3=3@3"]);
        if (how === "kill then restart") await server.kill();
        await server.restart();
        // Write from a fresh connection, possibly before the watcher's client is back.
        const other = await connectTo(server);
        cleanups.push(() => other.close());
        const kv2 = await other.store({ name: kv.name });
        for (let i = 4; i <= 6; i++) await kv2.writer.put(`k.${i}`, enc(String(i)));
        const after = await take(it, 3, 20_000);
        expect(after.map(show)).toEqual(["put k.4=4@4", "put k.5=5@5", "put k.6=6@6"]);
        await kv2.writer.put("k.7", enc("7"));
        expect((await take(it, 1)).map(show)).toEqual(["put k.7=7@7"]);
        await it.return?.();
        expect(await consumerCount(other, kv.name)).toBe(0);
      },
    );
  }

  it("a server that stays down ends the watch with WATCH_FAILED (never a silent stall)", async () => {
    const { server, conn } = await setup(2000);
    const kv = await conn.store({ name: bucketName("dead") });
    await kv.writer.put("a", enc("1"));
    const it = kv.watcher.watch({ kind: "all" })[Symbol.asyncIterator]();
    await take(it, 1);
    await server.kill();
    const err = await it.next().then(
      () => "no error",
      (e) => e,
    );
    expect(SlipstreamError.is(err, "WATCH_FAILED")).toBe(true);
  });

  it("a bucket deleted under a live watch ends it with WATCH_FAILED; a watch on a deleted bucket fails too", async () => {
    const { conn, admin } = await setup();
    const kv = await conn.store({ name: bucketName("del") });
    await kv.writer.put("a", enc("1"));
    const it = kv.watcher.watch({ kind: "all" })[Symbol.asyncIterator]();
    await take(it, 1);
    const jsm = await jetstreamManager(admin.client);
    await jsm.streams.delete(`KV_${kv.name}`);
    await expect(it.next()).rejects.toMatchObject({ code: "WATCH_FAILED" });
    const again = kv.watcher.watch({ kind: "all" })[Symbol.asyncIterator]();
    await expect(again.next()).rejects.toMatchObject({ code: "WATCH_FAILED" });
  });

  it("health follows server death and recovery", async () => {
    const { server, conn } = await setup();
    expect(conn.isHealthy).toBe(true);
    await server.kill();
    await waitFor(() => !conn.isHealthy, { timeoutMs: 15_000, message: "unhealthy after kill" });
    await server.restart();
    await waitFor(() => conn.isHealthy, { timeoutMs: 15_000, message: "healthy after restart" });
  });

  it("operations against a dead server time out with TIMEOUT", async () => {
    const server = await startNats();
    cleanups.push(() => server.close());
    const conn = await connectTo(server, { timeoutMs: 800 });
    cleanups.push(() => conn.close());
    const kv = await conn.store({ name: bucketName("to") });
    await server.kill();
    const err = await kv.reader.get("a").catch((e) => e);
    expect(SlipstreamError.is(err, "TIMEOUT")).toBe(true);
    const err2 = await kv.writer.put("a", enc("1")).catch((e) => e);
    expect(SlipstreamError.is(err2, "TIMEOUT")).toBe(true);
  });

  for (const scope of [{ kind: "all" }, { kind: "prefix", prefix: "k." }] as const) {
    it(`after a consumer re-creation, retention overrun ends a ${scope.kind} watch with CURSOR_EXPIRED`, async () => {
      const { conn, admin } = await setup();
      const kv = await conn.store({ name: bucketName("floor") });
      for (let i = 1; i <= 3; i++) await kv.writer.put(`k.${i}`, enc(String(i)));
      const it = kv.watcher.watch(scope)[Symbol.asyncIterator]();
      await take(it, 3);
      // Take the consumer away, write, and let "retention" (a purge below seq 6) evict 4 and 5
      // before the ordered consumer re-creates itself at 4: the server would start it at 6.
      const jsm = await jetstreamManager(admin.client);
      const [name] = await consumerNames(admin, kv.name);
      await jsm.consumers.delete(`KV_${kv.name}`, name!);
      const kvAdmin = await admin.store({ name: kv.name });
      for (let i = 4; i <= 7; i++) await kvAdmin.writer.put(`k.${i}`, enc(String(i)));
      await jsm.streams.purge(`KV_${kv.name}`, { seq: 6 });
      expect((await kv.status()).firstSeq).toBe(6n);
      const err = await (async () => {
        for (;;) {
          const r = await it.next();
          if (r.done) return "ended";
          if (show(r.value).includes("@6")) return "gapped delivery";
        }
      })().catch((e) => e);
      expect(SlipstreamError.is(err, "CURSOR_EXPIRED")).toBe(true);
      expect(await consumerCount(admin, kv.name)).toBe(0);
    });
  }

  it("live floor guard on the same consumer: a jump past the retained floor ends with CURSOR_EXPIRED", async () => {
    const { conn, admin } = await setup();
    const kv = await conn.store({ name: bucketName("floor2") });
    await kv.writer.put("seed", enc("0"));
    const it = kv.watcher.watch({ kind: "all" })[Symbol.asyncIterator]();
    await take(it, 1); // state-sync done: the watch is live at revision 1
    // Fill the rest of the first pull batch exactly, so no pull is outstanding while we hold.
    const kvAdmin = await admin.store({ name: kv.name });
    const n = FIRST_PULL;
    for (let i = 2; i <= n; i++) await kvAdmin.writer.put(`k.${i}`, enc("x"));
    const got = await take(it, n - 1);
    expect(show(got[n - 2]!)).toBe(`put k.${n}=x@${n}`);
    for (let i = n + 1; i <= n + 6; i++) await kvAdmin.writer.put(`k.${i}`, enc("x"));
    const jsm = await jetstreamManager(admin.client);
    await jsm.streams.purge(`KV_${kv.name}`, { seq: n + 5 }); // retention "evicts" n+1..n+4
    const names = await consumerNames(admin, kv.name);
    await expect(it.next()).rejects.toMatchObject({ code: "CURSOR_EXPIRED" });
    expect(names.length).toBe(1); // the same consumer all along: the live guard, not a re-creation
    expect(await consumerCount(admin, kv.name)).toBe(0);
  });

  it("live floor guard: a benign interior gap passes", async () => {
    const { conn, admin } = await setup();
    const kv = await conn.store({ name: bucketName("benign") });
    for (let i = 1; i <= 3; i++) await kv.writer.put(`k.${i}`, enc(String(i)));
    const it = kv.watcher.watch({ kind: "all" })[Symbol.asyncIterator]();
    await take(it, 3);
    const jsm = await jetstreamManager(admin.client);
    const [name] = await consumerNames(admin, kv.name);
    await jsm.consumers.delete(`KV_${kv.name}`, name!);
    const kvAdmin = await admin.store({ name: kv.name });
    for (let i = 4; i <= 7; i++) await kvAdmin.writer.put(`k.${i}`, enc(String(i)));
    // Remove 5 from the middle: the stream still holds everything after 3, so the gap 4 → 6 is benign.
    await jsm.streams.deleteMessage(`KV_${kv.name}`, 5);
    const got = await take(it, 3, 20_000);
    expect(got.map(show)).toEqual(["put k.4=4@4", "put k.6=6@6", "put k.7=7@7"]);
    await it.return?.();
  });
});

describe.skipIf(!hasNats("any"))("a client that gives up", () => {
  it("a connection that closes by itself fails running watches with WATCH_FAILED", async () => {
    const server = await startNats();
    try {
      const conn = await connectTo(server, { maxReconnectAttempts: 1, reconnectTimeWaitMs: 100, watchStallMs: 60_000 });
      const kv = await conn.store({ name: bucketName("gone") });
      await kv.writer.put("a", enc("1"));
      const it = kv.watcher.watch({ kind: "all" })[Symbol.asyncIterator]();
      await take(it, 1);
      await server.kill();
      await expect(it.next()).rejects.toMatchObject({ code: "WATCH_FAILED" });
      expect(conn.isHealthy).toBe(false);
      await conn.close();
    } finally {
      await server.close();
    }
  });
});
