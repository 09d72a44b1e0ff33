/**
 * A message lost between the server and the client (here: dropped by a fault-injection proxy
 * that parses the server's MSG/HMSG frames) must never be skipped silently. The watch sees
 * the break in its consumer's delivery sequence and re-creates the consumer from the last
 * sequence it delivered, so every update still arrives, in order.
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { hasNats } from "@slipstream/testkit";
import { describe, expect, it } from "vitest";
import {
  bucketName,
  connectTo,
  consumerCount,
  enc,
  type NatsServerHandle,
  show,
  startNats,
  take,
  useCleanups,
} from "./helpers.js";

const CRLF = Buffer.from("\r\n");

/**
 * Forwards client ↔ server bytes, except that server → client MSG/HMSG frames whose subject
 * `drop` selects are removed from the stream (once each, in the order they are listed).
 */
class DroppingProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  /** Subjects still to drop, each once. */
  readonly pending: string[];
  readonly dropped: string[] = [];

  private constructor(targetPort: number, drop: string[]) {
    this.pending = [...drop];
    this.#server = createServer((client) => {
      const upstream = tcpConnect(targetPort, "127.0.0.1");
      this.#sockets.add(client).add(upstream);
      client.pipe(upstream);
      let buf = Buffer.alloc(0);
      upstream.on("data", (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        const out: Buffer[] = [];
        for (;;) {
          const eol = buf.indexOf(CRLF);
          if (eol < 0) break;
          const line = buf.subarray(0, eol).toString("latin1");
          let frame = eol + 2;
          let subject: string | undefined;
          if (line.startsWith("MSG ") || line.startsWith("HMSG ")) {
            const parts = line.split(" ");
            subject = parts[1];
            frame += Number(parts[parts.length - 1]) + 2;
            if (buf.length < frame) break;
          }
          const i = subject === undefined ? -1 : this.pending.indexOf(subject);
          if (i >= 0) {
            this.pending.splice(i, 1);
            this.dropped.push(subject as string);
          } else {
            out.push(buf.subarray(0, frame));
          }
          buf = buf.subarray(frame);
        }
        if (out.length > 0) client.write(Buffer.concat(out));
      });
      const close = (): void => {
        client.destroy();
        upstream.destroy();
      };
      client.on("error", close).on("close", close);
      upstream.on("error", close).on("close", close);
    });
  }

  static async start(targetPort: number, drop: string[]): Promise<DroppingProxy & { url: string }> {
    const p = new DroppingProxy(targetPort, drop);
    await new Promise<void>((resolve) => p.#server.listen(0, "127.0.0.1", resolve));
    const address = p.#server.address();
    if (address === null || typeof address === "string") throw new Error("no proxy port");
    return Object.assign(p, { url: `nats://127.0.0.1:${address.port}` });
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

describe.skipIf(!hasNats("any"))("a message lost on the way to the client", () => {
  const cleanups = useCleanups();

  for (const scope of [{ kind: "all" }, { kind: "prefix", prefix: "k." }] as const) {
    it(`is re-delivered in order during a state-sync and while live (${scope.kind} watch)`, async () => {
      const server: NatsServerHandle = await startNats();
      cleanups.push(() => server.close());
      const admin = await connectTo(server);
      cleanups.push(() => admin.close());
      const name = bucketName("drop");
      const kvAdmin = await admin.store({ name });
      for (let i = 1; i <= 10; i++) await kvAdmin.writer.put(`k.${i}`, enc(String(i)));
      const port = Number(new URL(server.url).port);
      const proxy = await DroppingProxy.start(port, [`$KV.${name}.k.5`, `$KV.${name}.k.13`]);
      cleanups.push(() => proxy.close());
      const conn = await connectTo({ ...server, url: proxy.url });
      cleanups.push(() => conn.close());
      const kv = await conn.store({ name });
      const it = kv.watcher.watch(scope)[Symbol.asyncIterator]();
      const synced = await take(it, 10);
      expect(synced.map(show)).toEqual(Array.from({ length: 10 }, (_, i) => `put k.${i + 1}=${i + 1}@${i + 1}`));
      for (let i = 11; i <= 15; i++) await kvAdmin.writer.put(`k.${i}`, enc(String(i)));
      const live = await take(it, 5);
      expect(live.map(show)).toEqual(Array.from({ length: 5 }, (_, i) => `put k.${i + 11}=${i + 11}@${i + 11}`));
      // Both losses happened (the proxy dropped them) and were cured by a re-creation.
      expect(proxy.dropped).toEqual([`$KV.${name}.k.5`, `$KV.${name}.k.13`]);
      await it.return?.();
      expect(await consumerCount(admin, name)).toBe(0);
    });
  }
});
