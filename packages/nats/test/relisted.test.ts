import { hasNats, waitFor } from "@slipstream/testkit";
import { describe, expect, it } from "vitest";
import { bucketName, connectTo, enc, show, startNats, take, useCleanups } from "./helpers.js";

const cleanups = useCleanups();

async function setup() {
  const server = await startNats();
  cleanups.push(() => server.close());
  const conn = await connectTo(server);
  cleanups.push(() => conn.close());
  return conn;
}

describe.skipIf(!hasNats("any"))("onRelisted", () => {
  it("is called once, after the last update of the re-list and before the first live one", async () => {
    const conn = await setup();
    const kv = await conn.store({ name: bucketName("rl") });
    for (let i = 1; i <= 300; i++) await kv.writer.put(`k.${i % 120}`, enc(String(i))); // 120 live keys
    const taken: string[] = [];
    const calls: number[] = [];
    const it = kv.watcher
      .watch({ kind: "prefix", prefix: "k." }, { onRelisted: () => calls.push(taken.length) })
      [Symbol.asyncIterator]();
    cleanups.push(async () => it.return?.());
    for (const u of await take(it, 120)) taken.push(show(u));
    await kv.writer.put("k.live", enc("x"));
    taken.push(...(await take(it, 1)).map(show));
    expect(calls).toEqual([120]);
    expect(taken.at(-1)).toBe("put k.live=x@301");
  });

  it("is called at once for an empty scope, and never for a resume", async () => {
    const conn = await setup();
    const kv = await conn.store({ name: bucketName("rl2") });
    const calls: string[] = [];
    const empty = kv.watcher.watch({ kind: "all" }, { onRelisted: () => calls.push("empty") })[Symbol.asyncIterator]();
    cleanups.push(async () => empty.return?.());
    const first = empty.next();
    // The consumer exists (and found nothing to re-list) before anything is written.
    await waitFor(() => calls.length === 1, { message: "empty re-list reported" });
    const rev = await kv.writer.put("a", enc("1"));
    expect(show((await first).value)).toBe("put a=1@1");
    expect(calls).toEqual(["empty"]);
    const { WatchCursor } = await import("@slipstream/core");
    const resumed = kv.watcher
      .watch({ kind: "all" }, { from: WatchCursor.fromVersion(rev), onRelisted: () => calls.push("resume") })
      [Symbol.asyncIterator]();
    cleanups.push(async () => resumed.return?.());
    await kv.writer.put("b", enc("2"));
    expect(show((await take(resumed, 1))[0]!)).toBe("put b=2@2");
    expect(calls).toEqual(["empty"]);
  });
});
