import { hasNats } from "@slipstream/testkit";
import { describe, expect, it } from "vitest";
import { bucketName, connectTo, consumerInfos, enc, show, startNats, take, useCleanups } from "./helpers.js";

const cleanups = useCleanups();

describe.skipIf(!hasNats("any"))("herd control", () => {
  it("50 watchers through a server restart: consumers return to 50, re-creations are spread, no update lost", async () => {
    const server = await startNats();
    cleanups.push(() => server.close());
    const conn = await connectTo(server, { watchStallMs: 20_000, watchRecreateSpreadMs: 2000 });
    cleanups.push(() => conn.close());
    const kv = await conn.store({ name: bucketName("herd") });
    await kv.writer.put("k.0", enc("0"));
    const n = 50;
    const its = Array.from({ length: n }, () =>
      kv.watcher.watch({ kind: "prefix", prefix: "k." })[Symbol.asyncIterator](),
    );
    cleanups.push(async () => Promise.all(its.map((it) => it.return?.())));
    for (const it of its) expect((await take(it, 1)).map(show)).toEqual(["put k.0=0@1"]);
    const before = new Set((await consumerInfos(conn, kv.name)).map((c) => c.name));
    expect(before.size).toBe(n);
    // Every watcher waits for its next update across the restart.
    const pending = its.map((it) => it.next());
    await server.kill();
    await server.restart();
    const other = await connectTo(server);
    cleanups.push(() => other.close());
    const kv2 = await other.store({ name: kv.name });
    await kv2.writer.put("k.1", enc("1"));
    const after = await Promise.all(pending);
    for (const r of after) expect(r.done ? "ended" : show(r.value)).toBe("put k.1=1@2");
    // Exactly one consumer per watcher: every one re-created, none leaked.
    const infos = await consumerInfos(other, kv.name);
    expect(infos.length).toBe(n);
    expect(infos.filter((c) => before.has(c.name))).toEqual([]);
    // Spread over the 2 s window (50 uniform draws all within 500 ms: odds below 1e-25).
    const created = infos.map((c) => Date.parse(c.created)).sort((a, b) => a - b);
    const spreadMs = (created.at(-1) as number) - (created[0] as number);
    expect(spreadMs).toBeGreaterThan(500);
    // Released watchers leave nothing behind.
    await Promise.all(its.map((it) => it.return?.()));
    expect((await consumerInfos(other, kv.name)).length).toBe(0);
  }, 120_000);

  it("refuses a negative or non-finite spread", async () => {
    const server = await startNats();
    cleanups.push(() => server.close());
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      await expect(connectTo(server, { watchRecreateSpreadMs: bad })).rejects.toMatchObject({
        code: "INVALID_ARGUMENT",
      });
    }
  });
});
