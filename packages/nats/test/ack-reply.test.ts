/**
 * The watch reads each message's delivery info from its reply subject itself (no strings
 * allocated). It must agree with nats.js's own parser (`JsMsg.info`) on what a real server
 * sends, and refuse what is not a JetStream ack subject.
 */
import { AckPolicy, type JsMsg, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { hasNats } from "@slipstream/testkit";
import { describe, expect, it } from "vitest";
import { ackReply, fromConsumer, readAckReply, readAckReplyOf } from "../src/ack-reply.js";
import { bucketName, connectTo, enc, startNats, useCleanups } from "./helpers.js";

function read(reply: string): ReturnType<typeof ackReply> | undefined {
  const out = ackReply();
  return readAckReply(reply, out) ? { ...out } : undefined;
}

describe("readAckReply", () => {
  it("reads the 9-token form", () => {
    const reply = "$JS.ACK.KV_b.slw_abc.1.12345.17.1700000000000000000.42";
    const r = read(reply);
    expect(r).toMatchObject({ streamSequence: 12345, deliverySequence: 17, pending: 42 });
    expect(reply.slice(r?.consumerStart, r?.consumerEnd)).toBe("slw_abc");
  });

  it("reads the form with domain and account hash, with or without trailing tokens", () => {
    for (const reply of [
      "$JS.ACK.hub.ACCHASH.KV_b.cons.2.9007199254740991.3.1700000000000000000.0.rand0m",
      "$JS.ACK._.ACCHASH.KV_b.cons.2.9007199254740991.3.1700000000000000000.0",
      "$JS.ACK.hub.ACCHASH.KV_b.cons.2.9007199254740991.3.1700000000000000000.0.rand0m.more.tokens",
    ]) {
      const r = read(reply);
      expect(r, reply).toMatchObject({ streamSequence: Number.MAX_SAFE_INTEGER, deliverySequence: 3, pending: 0 });
      expect(reply.slice(r?.consumerStart, r?.consumerEnd)).toBe("cons");
    }
  });

  it("refuses subjects that are not JetStream ack subjects, or whose numbers are not exact", () => {
    for (const reply of [
      "",
      "_INBOX.abc.def",
      "$JS.ACK.KV_b.cons.1.2.3.4", // 8 tokens
      "$JS.ACK.a.b.KV_b.cons.1.2.3.4", // 10 tokens
      "$JS.ACK.KV_b.cons.1.x2.3.4.5", // stream sequence not a number
      "$JS.ACK.KV_b.cons.1..3.4.5", // empty token
      "$JS.ACK.KV_b.cons.1.2.3.4.-5",
      "$JS.ACK.KV_b.cons.1.99999999999999999999.3.4.5", // beyond 2^53
      "$JS.ACK.KV_b..1.2.3.4.5", // no consumer
    ]) {
      expect(read(reply), reply).toBeUndefined();
    }
  });

  it("readAckReplyOf reads the short form of a known stream and consumer exactly as readAckReply does", () => {
    const prefix = "$JS.ACK.KV_b.slw_abc.";
    for (const reply of [
      "$JS.ACK.KV_b.slw_abc.1.12345.17.1700000000000000000.42",
      "$JS.ACK.KV_b.slw_abc.3.9007199254740991.1.1.0",
    ]) {
      const fast = ackReply();
      expect(readAckReplyOf(reply, prefix, fast), reply).toBe(true);
      expect(fast).toEqual(read(reply));
    }
    for (const reply of [
      "$JS.ACK.KV_b.slw_abd.1.2.3.4.5", // another consumer
      "$JS.ACK.KV_c.slw_abc.1.2.3.4.5", // another stream
      "$JS.ACK.hub.HASH.KV_b.slw_abc.1.2.3.4.5.tok", // the long form
      "$JS.ACK.KV_b.slw_abc.1.2.3.4", // a token short
      "$JS.ACK.KV_b.slw_abc.1.2.3.4.5.6", // a token long
      "$JS.ACK.KV_b.slw_abc.1.2x.3.4.5",
      "$JS.ACK.KV_b.slw_abc.1..3.4.5",
      "$JS.ACK.KV_b.slw_abc.1.2.3.4.",
      "$JS.ACK.KV_b.slw_abc.1.99999999999999999999.3.4.5",
    ]) {
      expect(readAckReplyOf(reply, prefix, ackReply()), reply).toBe(false);
    }
  });

  it("fromConsumer compares the consumer token in place", () => {
    const reply = "$JS.ACK.KV_b.slw_abc.1.5.6.7.8";
    const r = ackReply();
    expect(readAckReply(reply, r)).toBe(true);
    expect(fromConsumer(reply, r, "slw_abc")).toBe(true);
    expect(fromConsumer(reply, r, "slw_ab")).toBe(false);
    expect(fromConsumer(reply, r, "slw_abcd")).toBe(false);
    expect(fromConsumer(reply, r, "slw_abd")).toBe(false);
  });
});

describe.skipIf(!hasNats("any"))("readAckReply on a real server's messages", () => {
  const cleanups = useCleanups();

  it("agrees with nats.js's JsMsg.info for every message of a pull consumer", async () => {
    const server = await startNats();
    cleanups.push(() => server.close());
    const conn = await connectTo(server);
    cleanups.push(() => conn.close());
    const stream = bucketName("acks");
    const jsm = await jetstreamManager(conn.client);
    await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
    const js = jetstream(conn.client);
    for (let i = 0; i < 50; i++) await js.publish(`${stream}.k${i % 7}`, enc(`v${i}`));
    const consumer = await jsm.consumers.add(stream, { name: "checker", ack_policy: AckPolicy.None });
    const c = await js.consumers.get(stream, consumer.name);
    const out = ackReply();
    let seen = 0;
    for await (const m of await c.fetch({ max_messages: 50, expires: 5_000 })) {
      const reply = (m as JsMsg & { reply: string }).reply;
      expect(readAckReply(reply, out)).toBe(true);
      const fast = ackReply();
      if (readAckReplyOf(reply, `$JS.ACK.${stream}.checker.`, fast)) expect(fast).toEqual(out);
      else expect(reply.split(".").length).toBeGreaterThan(9);
      expect(out.streamSequence).toBe(m.info.streamSequence);
      expect(out.deliverySequence).toBe(m.info.deliverySequence);
      expect(out.pending).toBe(m.info.pending);
      expect(fromConsumer(reply, out, m.info.consumer)).toBe(true);
      if (++seen === 50) break;
    }
    expect(seen).toBe(50);
  });
});
