import { jetstreamManager } from "@nats-io/jetstream";
import { SlipstreamError, WatchCursor } from "@slipstream/core";
import { hasNats } from "@slipstream/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NatsConnection } from "../src/index.js";
import { bucketName, connectTo, enc, type NatsServerHandle, startNats } from "./helpers.js";

describe.skipIf(!hasNats("any"))("bucket status times, lookup without create, retention horizon", () => {
  let server: NatsServerHandle;
  let conn: NatsConnection;
  beforeAll(async () => {
    server = await startNats();
    conn = await connectTo(server);
  });
  afterAll(async () => {
    await conn?.close();
    await server?.close();
  });

  it("store({ create: false }) refuses an absent bucket and creates nothing", async () => {
    const name = bucketName("absent");
    const err = await conn.store({ name }, { create: false }).catch((e) => e);
    expect(SlipstreamError.is(err, "INVALID_ARGUMENT")).toBe(true);
    expect(String(err.message)).toMatch(/does not exist/);
    const jsm = await jetstreamManager(conn.client);
    const names: string[] = [];
    for await (const s of jsm.streams.names()) names.push(s);
    expect(names).not.toContain(`KV_${name}`);
    // an existing bucket is found
    await conn.store({ name });
    const kv = await conn.store({ name }, { create: false });
    expect(kv.name).toBe(name);
  });

  it("status reports the first and last publish times and the count limit", async () => {
    const kv = await conn.store({ name: bucketName("times") });
    expect((await kv.status()).firstTime).toBeUndefined();
    const before = Date.now();
    await kv.writer.put("a", enc("1"));
    await kv.writer.put("b", enc("2"));
    const st = await kv.status();
    expect(st.maxMsgs).toBe(-1);
    expect(st.firstTime).toBeInstanceOf(Date);
    expect(st.firstTime?.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(st.lastTime?.getTime()).toBeGreaterThanOrEqual(st.firstTime?.getTime() ?? 0);
  });

  it("the horizon of a cursor on a bounded log shrinks as messages are published, then expires", async () => {
    const kv = await conn.store({ name: bucketName("hz"), maxBytes: 32 * 1024, discard: "old" });
    for (let i = 0; i < 5; i++) await kv.writer.put(`k.${i}`, new Uint8Array(1000));
    const cursor = WatchCursor.fromRevision(3n);
    const h1 = await kv.horizon(cursor);
    expect(h1.state).toBe("ok");
    expect(h1.behind).toBe(2n);
    expect(h1.slackMessages).toBe(3);
    expect(h1.limitedBy).toEqual(["max_bytes"]);
    const remaining = h1.messagesRemaining as number;
    expect(remaining).toBeGreaterThan(3);
    // Publish exactly the predicted number of same-size messages: the cursor can still resume.
    for (let i = 0; i < remaining; i++) await kv.writer.put(`n.${i}`, new Uint8Array(1000));
    const h2 = await kv.horizon(cursor);
    expect(h2.state).toBe("ok");
    expect(h2.messagesRemaining).toBeLessThanOrEqual(1);
    // A few more evict revision 4: expired, exactly as a resume would find it.
    for (let i = 0; i < 3; i++) await kv.writer.put(`m.${i}`, new Uint8Array(1000));
    const h3 = await kv.horizon(cursor);
    expect(h3.state).toBe("expired");
    const st = await kv.status();
    expect(st.firstSeq).toBeGreaterThan(4n);
  });

  it("an age limit dates the horizon from the publish time of revision + 1", async () => {
    const kv = await conn.store({ name: bucketName("age"), maxAgeMs: 3_600_000 });
    await kv.writer.put("a", enc("1"));
    const t0 = Date.now();
    await kv.writer.put("b", enc("2"));
    await kv.writer.put("c", enc("3"));
    const h = await kv.horizon(WatchCursor.fromRevision(1n));
    expect(h.limitedBy).toEqual(["max_age"]);
    expect(h.timeIsLowerBound).toBe(false);
    const expires = h.expiresAt?.getTime() as number;
    expect(expires).toBeGreaterThanOrEqual(t0 - 1000 + 3_600_000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 3_600_000);
    expect(h.timeRemainingMs).toBeGreaterThan(3_500_000);
    // Caught up: nothing needed yet, no clock running.
    expect((await kv.horizon(WatchCursor.fromRevision(3n))).timeRemainingMs).toBeUndefined();
    // revision 2 rewritten (history 1): revision + 1 is gone, the first message dates a lower bound.
    await kv.writer.put("b", enc("again"));
    const lb = await kv.horizon(WatchCursor.fromRevision(1n));
    expect(lb.timeIsLowerBound).toBe(true);
  });
});
