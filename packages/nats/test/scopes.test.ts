import { WatchCursor } from "@slipstream/core";
import { hasNats } from "@slipstream/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NatsConnection } from "../src/index.js";
import {
  bucketName,
  connectTo,
  consumerCount,
  consumerInfos,
  enc,
  type NatsServerHandle,
  quietFor,
  show,
  startNats,
  take,
} from "./helpers.js";

/** The same scope behaviour on both server lines; only the consumer layout differs. */
for (const version of ["2.9", "2.10"] as const) {
  describe.skipIf(!hasNats(version))(`watch scopes on nats-server ${version}`, () => {
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

    it("capabilities report the server's multi-filter support", () => {
      expect(conn.capabilities.serverVersion?.startsWith(`${version}.`)).toBe(true);
      expect(conn.capabilities.multiFilterWatch).toBe(version === "2.10");
      expect(conn.capabilities).toMatchObject({
        cas: true,
        streamingWatch: true,
        prefixWatch: true,
        purge: true,
        globalOrdering: false,
      });
    });

    it("a prefix watch filters by subject token", async () => {
      const kv = await conn.store({ name: bucketName("p") });
      await kv.writer.put("node.a", enc("1"));
      await kv.writer.put("nodes.x", enc("no"));
      await kv.writer.put("node.b.c", enc("2"));
      const it = kv.watcher.watch({ kind: "prefix", prefix: "node." })[Symbol.asyncIterator]();
      expect((await take(it, 2)).map(show)).toEqual(["put node.a=1@1", "put node.b.c=2@3"]);
      await kv.writer.put("nodes.y", enc("no"));
      await kv.writer.put("node.d", enc("3"));
      expect((await take(it, 1)).map(show)).toEqual(["put node.d=3@5"]);
      await it.return?.();
    });

    it("several prefixes share ONE consumer; other keys never arrive", async () => {
      const kv = await conn.store({ name: bucketName("m") });
      await kv.writer.put("vpcA.1", enc("a"));
      await kv.writer.put("vpcC.1", enc("c"));
      await kv.writer.put("vpcB.1", enc("b"));
      const it = kv.watcher.watch({ kind: "prefixes", prefixes: ["vpcA.", "vpcB."] })[Symbol.asyncIterator]();
      expect((await take(it, 2)).map(show)).toEqual(["put vpcA.1=a@1", "put vpcB.1=b@3"]);
      expect(await consumerCount(conn, kv.name)).toBe(1);
      const [ci] = await consumerInfos(conn, kv.name);
      if (version === "2.10") {
        // Filtered server-side: two subjects on one consumer.
        expect([...(ci?.config.filter_subjects ?? [])].sort()).toEqual([
          `$KV.${kv.name}.vpcA.>`,
          `$KV.${kv.name}.vpcB.>`,
        ]);
      } else {
        // 2.9 fallback: one consumer on the whole bucket, narrowed client-side.
        expect(ci?.config.filter_subject).toBe(`$KV.${kv.name}.>`);
      }
      await kv.writer.put("vpcC.2", enc("c"));
      await kv.writer.put("vpcB.2", enc("b2"));
      expect((await take(it, 1)).map(show)).toEqual(["put vpcB.2=b2@5"]);
      const pending = it.next();
      expect(await quietFor(pending, 300)).toBe("quiet");
      await it.return?.();
      expect(await consumerCount(conn, kv.name)).toBe(0);
    });

    it("overlapping and byte prefixes are accepted (a. covers a.b.; 'x' is a byte prefix)", async () => {
      const kv = await conn.store({ name: bucketName("o") });
      await kv.writer.put("a.b.1", enc("1"));
      await kv.writer.put("a.2", enc("2"));
      await kv.writer.put("xy", enc("3"));
      await kv.writer.put("z", enc("4"));
      const it = kv.watcher.watch({ kind: "prefixes", prefixes: ["a.", "a.b.", "x"] })[Symbol.asyncIterator]();
      expect((await take(it, 3)).map(show)).toEqual(["put a.b.1=1@1", "put a.2=2@2", "put xy=3@3"]);
      expect(await consumerCount(conn, kv.name)).toBe(1);
      await it.return?.();
    });

    it("multi-prefix resume replays only the delta", async () => {
      const kv = await conn.store({ name: bucketName("mr") });
      await kv.writer.put("vpcA.1", enc("a"));
      const cur = await kv.writer.put("vpcB.1", enc("b"));
      await kv.writer.put("vpcC.1", enc("c"));
      await kv.writer.put("vpcA.2", enc("a2"));
      await kv.writer.delete("vpcB.1");
      const it = kv.watcher
        .watch({ kind: "prefixes", prefixes: ["vpcA.", "vpcB."] }, { from: WatchCursor.fromVersion(cur) })
        [Symbol.asyncIterator]();
      expect((await take(it, 2)).map(show)).toEqual(["put vpcA.2=a2@4", "delete vpcB.1@5"]);
      expect(await quietFor(it.next(), 300)).toBe("quiet");
      await it.return?.();
    });

    it("state-sync covers the seed-then-watch race: writes between seed and watch are delivered", async () => {
      const kv = await conn.store({ name: bucketName("race") });
      await kv.writer.put("blackhole.1", enc("1"));
      const scanned = [];
      for await (const e of kv.reader.scan("blackhole.")) scanned.push(e);
      // A write lands after the seed listing, before the watch starts.
      await kv.writer.put("blackhole.2", enc("2"));
      const it = kv.watcher.watch({ kind: "prefix", prefix: "blackhole." })[Symbol.asyncIterator]();
      expect((await take(it, 2)).map(show)).toEqual(["put blackhole.1=1@1", "put blackhole.2=2@2"]);
      await kv.writer.put("blackhole.3", enc("3"));
      expect((await take(it, 1)).map(show)).toEqual(["put blackhole.3=3@3"]);
      await it.return?.();
      // Resuming from the scan's revision yields the gap write first.
      const rit = kv.watcher
        .watch({ kind: "prefix", prefix: "blackhole." }, { from: WatchCursor.fromVersion(scanned[0]!.version) })
        [Symbol.asyncIterator]();
      expect((await take(rit, 1)).map(show)).toEqual(["put blackhole.2=2@2"]);
      await rit.return?.();
    });

    it("a cursor below first_seq raises CURSOR_EXPIRED for prefix scopes too", async () => {
      const kv = await conn.store({ name: bucketName("pe"), maxBytes: 16 * 1024, discard: "old" });
      await kv.writer.put("p.first", enc("1"));
      for (let i = 0; i < 40; i++) await kv.writer.put(`p.${i}`, new Uint8Array(1000));
      expect((await kv.status()).firstSeq).toBeGreaterThan(2n);
      const it = kv.watcher
        .watch({ kind: "prefixes", prefixes: ["p.", "q."] }, { from: WatchCursor.fromRevision(1n) })
        [Symbol.asyncIterator]();
      await expect(it.next()).rejects.toMatchObject({ code: "CURSOR_EXPIRED" });
      expect(await consumerCount(conn, kv.name)).toBe(0);
    });
  });
}
