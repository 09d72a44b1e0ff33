import { collect, SlipstreamError, VersionToken } from "@slipstream/core";
import { hasNats } from "@slipstream/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NatsConnection, NatsKvStore } from "../src/index.js";
import { bucketName, connectTo, consumerCount, dec, enc, type NatsServerHandle, startNats } from "./helpers.js";

for (const version of ["2.9", "2.10"] as const) {
  describe.skipIf(!hasNats(version))(`reader and writer on nats-server ${version}`, () => {
    let server: NatsServerHandle;
    let conn: NatsConnection;
    let kv: NatsKvStore;

    beforeAll(async () => {
      server = await startNats({ version });
      conn = await connectTo(server);
      kv = await conn.store({ name: bucketName("crud"), history: 5 });
    });
    afterAll(async () => {
      await conn?.close();
      await server?.close();
    });

    it("put then get round-trips with the revision as version", async () => {
      const v = await kv.writer.put("node.a", enc("one"));
      const e = await kv.reader.get("node.a");
      expect(e && dec(e.value)).toBe("one");
      expect(e?.version.equals(v)).toBe(true);
      expect(v.revision).toBeGreaterThan(0n);
    });

    it("get of a missing key is undefined", async () => {
      expect(await kv.reader.get("nope.nothing")).toBeUndefined();
      expect(await kv.reader.entry("nope.nothing")).toBeUndefined();
    });

    it("create conflicts on a live key with ALREADY_EXISTS", async () => {
      await kv.writer.create("c.live", enc("x"));
      const err = await kv.writer.create("c.live", enc("y")).catch((e) => e);
      expect(SlipstreamError.is(err, "ALREADY_EXISTS")).toBe(true);
      expect(dec((await kv.reader.get("c.live"))!.value)).toBe("x");
    });

    it("create succeeds after a plain delete and after a purge", async () => {
      await kv.writer.put("c.del", enc("x"));
      await kv.writer.delete("c.del");
      await kv.writer.create("c.del", enc("again"));
      expect(dec((await kv.reader.get("c.del"))!.value)).toBe("again");
      await kv.writer.purge("c.del");
      await kv.writer.create("c.del", enc("third"));
      expect(dec((await kv.reader.get("c.del"))!.value)).toBe("third");
    });

    it("create conflicts after deleteWithVersion (an empty-value tombstone is a put)", async () => {
      const v = await kv.writer.put("c.tomb", enc("x"));
      await kv.writer.deleteWithVersion("c.tomb", v);
      const err = await kv.writer.create("c.tomb", enc("y")).catch((e) => e);
      expect(SlipstreamError.is(err, "ALREADY_EXISTS")).toBe(true);
    });

    it("update is CAS: succeeds at the current version, REVISION_MISMATCH when stale", async () => {
      const v1 = await kv.writer.put("u.k", enc("1"));
      const v2 = await kv.writer.update("u.k", enc("2"), v1);
      expect(v2.revision).toBeGreaterThan(v1.revision!);
      const err = await kv.writer.update("u.k", enc("3"), v1).catch((e) => e);
      expect(SlipstreamError.is(err, "REVISION_MISMATCH")).toBe(true);
      expect(dec((await kv.reader.get("u.k"))!.value)).toBe("2");
    });

    it("update with a token that is not an 8-byte revision is INVALID_ARGUMENT", async () => {
      await kv.writer.put("u.bad", enc("1"));
      const bad = VersionToken.fromBytes(new Uint8Array([1, 2, 3]));
      const err = await kv.writer.update("u.bad", enc("2"), bad).catch((e) => e);
      expect(SlipstreamError.is(err, "INVALID_ARGUMENT")).toBe(true);
      const err2 = await kv.writer.deleteWithVersion("u.bad", VersionToken.unknown()).catch((e) => e);
      expect(SlipstreamError.is(err2, "INVALID_ARGUMENT")).toBe(true);
    });

    it("delete removes a key; get and entry hide the marker", async () => {
      await kv.writer.put("d.k", enc("1"));
      await kv.writer.delete("d.k");
      expect(await kv.reader.get("d.k")).toBeUndefined();
      expect(await kv.reader.entry("d.k")).toBeUndefined();
    });

    it("deleteWithVersion is CAS-gated; entry shows the empty tombstone with its version", async () => {
      const v = await kv.writer.put("dv.k", enc("1"));
      const wrong = VersionToken.fromRevision(999_999n);
      const err = await kv.writer.deleteWithVersion("dv.k", wrong).catch((e) => e);
      expect(SlipstreamError.is(err, "REVISION_MISMATCH")).toBe(true);
      const t = await kv.writer.deleteWithVersion("dv.k", v);
      expect(await kv.reader.get("dv.k")).toBeUndefined();
      const raw = await kv.reader.entry("dv.k");
      expect(raw?.value.length).toBe(0);
      expect(raw?.version.equals(t)).toBe(true);
      // The tombstone's version is usable for a takeover CAS (what the lease does).
      await kv.writer.update("dv.k", enc("taken"), raw!.version);
      expect(dec((await kv.reader.get("dv.k"))!.value)).toBe("taken");
    });

    it("deleteWithVersion on a missing key is REVISION_MISMATCH", async () => {
      const err = await kv.writer.deleteWithVersion("dv.missing", VersionToken.fromRevision(1n)).catch((e) => e);
      expect(SlipstreamError.is(err, "REVISION_MISMATCH")).toBe(true);
    });

    it("purge removes the key and its history", async () => {
      const name = bucketName("purge");
      const store = await conn.store({ name, history: 10 });
      await store.writer.put("p.k", enc("1"));
      await store.writer.put("p.k", enc("2"));
      await store.writer.put("p.k", enc("3"));
      await store.writer.purge("p.k");
      expect(await store.reader.get("p.k")).toBeUndefined();
      const st = await store.status();
      expect(st.messages).toBe(1); // only the purge marker is left
    });

    it("scan returns the last value per key and skips deletes and tombstones", async () => {
      const store = await conn.store({ name: bucketName("scan"), history: 3 });
      await store.writer.put("s.a", enc("a1"));
      await store.writer.put("s.b", enc("b1"));
      await store.writer.put("s.a", enc("a2"));
      await store.writer.put("s.c", enc("c1"));
      await store.writer.delete("s.c");
      const vt = await store.writer.put("s.t", enc("t"));
      await store.writer.deleteWithVersion("s.t", vt);
      await store.writer.put("other.x", enc("x"));
      const entries = await collect(store.reader.scan("s."));
      expect(entries.map((e) => `${e.key}=${dec(e.value)}`).sort()).toEqual(["s.a=a2", "s.b=b1"]);
      // scan versions are live revisions, usable for CAS
      const a = entries.find((e) => e.key === "s.a")!;
      await store.writer.update("s.a", enc("a3"), a.version);
      expect((await collect(store.reader.keys("s."))).sort()).toEqual(["s.a", "s.b"]);
      expect((await collect(store.reader.keys())).sort()).toEqual(["other.x", "s.a", "s.b"]);
      expect((await collect(store.reader.scan(""))).length).toBe(3);
      expect(await consumerCount(conn, store.name)).toBe(0);
    });

    it("prefixes are byte prefixes: 'node' matches node.x and nodes.y, 'node.' only node.x", async () => {
      const store = await conn.store({ name: bucketName("pfx") });
      for (const k of ["node", "node.x", "nodes.y", "no.z", "node.a.b"]) await store.writer.put(k, enc(k));
      expect((await collect(store.reader.keys("node."))).sort()).toEqual(["node.a.b", "node.x"]);
      expect((await collect(store.reader.keys("node"))).sort()).toEqual(["node", "node.a.b", "node.x", "nodes.y"]);
      expect((await collect(store.reader.keys("node.a"))).sort()).toEqual(["node.a.b"]);
    });

    it("scan and keys cover buckets larger than max_ack_pending (1500 keys)", async () => {
      const store = await conn.store({ name: bucketName("big"), maxBytes: 8 * 1024 * 1024 });
      const writes: Promise<unknown>[] = [];
      for (let i = 0; i < 1500; i++) writes.push(store.writer.put(`k.${String(i).padStart(5, "0")}`, enc(`v${i}`)));
      await Promise.all(writes);
      const keys = await collect(store.reader.keys("k."));
      expect(keys.length).toBe(1500);
      expect(new Set(keys).size).toBe(1500);
      const entries = await collect(store.reader.scan());
      expect(entries.length).toBe(1500);
      expect(await consumerCount(conn, store.name)).toBe(0);
    });

    it("an aborted scan rejects with ABORTED and removes its consumer", async () => {
      const store = await conn.store({ name: bucketName("abt") });
      for (let i = 0; i < 20; i++) await store.writer.put(`a.${i}`, enc("x"));
      const ctl = new AbortController();
      const err = await (async () => {
        for await (const _ of store.reader.scan("a.", { signal: ctl.signal })) ctl.abort();
      })().catch((e) => e);
      expect(SlipstreamError.is(err, "ABORTED")).toBe(true);
      expect(await consumerCount(conn, store.name)).toBe(0);
    });

    it("concurrent get-or-create of one bucket is safe", async () => {
      const name = bucketName("race");
      const stores = await Promise.all(Array.from({ length: 16 }, () => conn.store({ name, history: 2 })));
      expect(new Set(stores.map((s) => s.name)).size).toBe(1);
      await stores[3]!.writer.put("k", enc("v"));
      expect(dec((await stores[11]!.reader.get("k"))!.value)).toBe("v");
      expect((await stores[0]!.status()).history).toBe(2);
    });

    it("a fired signal makes reader and writer calls reject with ABORTED", async () => {
      const ctl = new AbortController();
      ctl.abort();
      for (const op of [
        () => kv.writer.put("ab.k", enc("v"), { signal: ctl.signal }),
        () => kv.reader.get("ab.k", { signal: ctl.signal }),
        () => kv.writer.delete("ab.k", { signal: ctl.signal }),
      ]) {
        const err = await op().catch((e) => e);
        expect(SlipstreamError.is(err, "ABORTED")).toBe(true);
      }
      expect(await kv.reader.get("ab.k")).toBeUndefined();
    });

    it("a value larger than the server's max_payload is INVALID_ARGUMENT", async () => {
      const err = await kv.writer.put("big.value", new Uint8Array(2 * 1024 * 1024)).catch((e) => e);
      expect(SlipstreamError.is(err, "INVALID_ARGUMENT")).toBe(true);
    });

    it("an early break from scan removes its consumer", async () => {
      const store = await conn.store({ name: bucketName("brk") });
      for (let i = 0; i < 50; i++) await store.writer.put(`b.${i}`, enc("x"));
      let n = 0;
      for await (const _ of store.reader.scan("b.")) {
        if (++n === 3) break;
      }
      expect(n).toBe(3);
      expect(await consumerCount(conn, store.name)).toBe(0);
    });
  });
}
