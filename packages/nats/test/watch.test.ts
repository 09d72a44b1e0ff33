import { type KvUpdate, SlipstreamError, WatchCursor } from "@slipstream/core";
import { hasNats } from "@slipstream/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NatsConnection } from "../src/index.js";
import {
  bucketName,
  connectTo,
  consumerCount,
  enc,
  type NatsServerHandle,
  nextWithin,
  quietFor,
  show,
  startNats,
  take,
} from "./helpers.js";

for (const version of ["2.9", "2.10"] as const) {
  describe.skipIf(!hasNats(version))(`watch on nats-server ${version}`, () => {
    let server: NatsServerHandle;
    let conn: NatsConnection;

    beforeAll(async () => {
      server = await startNats({ version });
      conn = await connectTo(server);
    });
    afterAll(async () => {
      await conn?.close();
      await server?.close();
    });

    it("state-sync delivers current values then live updates, in order", async () => {
      const kv = await conn.store({ name: bucketName("w") });
      await kv.writer.put("a", enc("1"));
      await kv.writer.put("b", enc("2"));
      await kv.writer.put("a", enc("3"));
      const it = kv.watcher.watch({ kind: "all" })[Symbol.asyncIterator]();
      const relist = await take(it, 2);
      expect(relist.map(show)).toEqual(["put b=2@2", "put a=3@3"]);
      await kv.writer.put("c", enc("4"));
      await kv.writer.delete("a");
      await kv.writer.purge("b");
      const live = await take(it, 3);
      expect(live.map(show)).toEqual(["put c=4@4", "delete a@5", "purge b@6"]);
      await it.return?.();
      expect(await consumerCount(conn, kv.name)).toBe(0);
    });

    it("resume delivers exactly the delta after the cursor", async () => {
      const kv = await conn.store({ name: bucketName("r"), history: 5 });
      await kv.writer.put("x.a", enc("1"));
      const cur = await kv.writer.put("x.b", enc("2"));
      await kv.writer.put("x.a", enc("3"));
      await kv.writer.delete("x.b");
      const it = kv.watcher.watch({ kind: "all" }, { from: WatchCursor.fromVersion(cur) })[Symbol.asyncIterator]();
      expect((await take(it, 2)).map(show)).toEqual(["put x.a=3@3", "delete x.b@4"]);
      expect(await quietFor(it.next(), 300)).toBe("quiet");
      await it.return?.();
    });

    it("a cursor below first_seq raises CURSOR_EXPIRED", async () => {
      const kv = await conn.store({ name: bucketName("exp"), maxBytes: 16 * 1024, discard: "old" });
      await kv.writer.put("k.first", enc("1"));
      for (let i = 0; i < 40; i++) await kv.writer.put(`k.${i}`, new Uint8Array(1000));
      const st = await kv.status();
      expect(st.firstSeq).toBeGreaterThan(2n);
      const err = await (async () => {
        for await (const _ of kv.watcher.watch({ kind: "all" }, { from: WatchCursor.fromRevision(1n) })) {
          return "delivered";
        }
        return "ended";
      })().catch((e) => e);
      expect(SlipstreamError.is(err, "CURSOR_EXPIRED")).toBe(true);
      expect(await consumerCount(conn, kv.name)).toBe(0);
    });

    it("a prefix resume replays only the delta in scope", async () => {
      const kv = await conn.store({ name: bucketName("pr") });
      await kv.writer.put("route.a", enc("1"));
      const cur = await kv.writer.put("other.x", enc("x"));
      await kv.writer.put("route.b", enc("2"));
      await kv.writer.put("other.y", enc("y"));
      await kv.writer.delete("route.a");
      const it = kv.watcher
        .watch({ kind: "prefix", prefix: "route." }, { from: WatchCursor.fromVersion(cur) })
        [Symbol.asyncIterator]();
      expect((await take(it, 2)).map(show)).toEqual(["put route.b=2@3", "delete route.a@5"]);
      expect(await quietFor(it.next(), 300)).toBe("quiet");
      await it.return?.();
    });

    it("a cursor ahead of the stream (a recreated bucket) raises CURSOR_EXPIRED", async () => {
      const kv = await conn.store({ name: bucketName("ahead") });
      await kv.writer.put("a", enc("1"));
      const it = kv.watcher.watch({ kind: "all" }, { from: WatchCursor.fromRevision(1000n) })[Symbol.asyncIterator]();
      await expect(it.next()).rejects.toMatchObject({ code: "CURSOR_EXPIRED" });
      // at the stream's last revision it is fine: nothing to deliver yet
      const ok = kv.watcher.watch({ kind: "all" }, { from: WatchCursor.fromRevision(1n) })[Symbol.asyncIterator]();
      const pending = ok.next();
      expect(await quietFor(pending, 200)).toBe("quiet");
      await kv.writer.put("b", enc("2"));
      expect(show(((await pending) as IteratorResult<KvUpdate>).value)).toBe("put b=2@2");
      await ok.return?.();
    });

    it("history-1 compaction below a cursor is reported as CURSOR_EXPIRED, never WATCH_FAILED", async () => {
      const kv = await conn.store({ name: bucketName("h1"), history: 1 });
      for (let i = 1; i <= 6; i++) await kv.writer.put("same", enc(String(i)));
      expect((await kv.status()).firstSeq).toBe(6n);
      const it = kv.watcher.watch({ kind: "all" }, { from: WatchCursor.fromRevision(1n) })[Symbol.asyncIterator]();
      await expect(it.next()).rejects.toMatchObject({ code: "CURSOR_EXPIRED" });
      // Resuming at 5 needs only 6, which is retained.
      const ok = kv.watcher.watch({ kind: "all" }, { from: WatchCursor.fromRevision(5n) })[Symbol.asyncIterator]();
      expect((await take(ok, 1)).map(show)).toEqual(["put same=6@6"]);
      await ok.return?.();
    });

    it("a cursor at revision 0 means state-sync", async () => {
      const kv = await conn.store({ name: bucketName("zero") });
      await kv.writer.put("a", enc("1"));
      await kv.writer.put("a", enc("2"));
      const it = kv.watcher.watch({ kind: "all" }, { from: WatchCursor.fromRevision(0n) })[Symbol.asyncIterator]();
      expect((await take(it, 1)).map(show)).toEqual(["put a=2@2"]);
      await it.return?.();
    });

    it("resume at 2^64-1 is refused", async () => {
      const kv = await conn.store({ name: bucketName("max") });
      const it = kv.watcher
        .watch({ kind: "all" }, { from: WatchCursor.fromRevision((1n << 64n) - 1n) })
        [Symbol.asyncIterator]();
      const err = await it.next().catch((e) => e);
      // A permanent refusal: a fold stops on it instead of re-subscribing forever.
      expect(SlipstreamError.is(err, "INVALID_ARGUMENT")).toBe(true);
    });

    it("abort ends the iteration and removes the consumer", async () => {
      const kv = await conn.store({ name: bucketName("ab") });
      await kv.writer.put("a", enc("1"));
      const ctl = new AbortController();
      const seen: string[] = [];
      const done = (async () => {
        for await (const u of kv.watcher.watch({ kind: "all" }, { signal: ctl.signal })) seen.push(show(u));
      })();
      await expect.poll(() => seen.length).toBe(1);
      expect(await consumerCount(conn, kv.name)).toBe(1);
      ctl.abort();
      await done;
      expect(await consumerCount(conn, kv.name)).toBe(0);
    });

    it("an empty prefix list watches nothing and ends at once", async () => {
      const kv = await conn.store({ name: bucketName("empty") });
      const it = kv.watcher.watch({ kind: "prefixes", prefixes: [] })[Symbol.asyncIterator]();
      expect((await nextWithin(it, 2000)).done).toBe(true);
      expect(await consumerCount(conn, kv.name)).toBe(0);
    });
  });
}
