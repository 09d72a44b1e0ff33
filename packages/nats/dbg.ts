import { startNats } from "@slipstream/testkit";
import { connect } from "./src/index.js";

const server = await startNats();
const conn = await connect({ servers: server.url, timeoutMs: 5000, reconnectTimeWaitMs: 250, watchStallMs: 8000 });
(async () => {
  for await (const s of conn.client.status()) console.log(Date.now() % 100000, "conn", s.type);
})();
const kv = await conn.store({ name: "rst" });
await kv.writer.put("a", new Uint8Array([1]));
const it = kv.watcher.watch({ kind: "all" })[Symbol.asyncIterator]();
console.log((await it.next()).value?.type);
const t0 = Date.now();
await server.restart();
console.log(Date.now() % 100000, "restarted", Date.now() - t0);
const other = await connect({ servers: server.url });
const kv2 = await other.store({ name: "rst" });
await kv2.writer.put("b", new Uint8Array([2]));
console.log(Date.now() % 100000, "written", Date.now() - t0);
const r = await it.next();
console.log(Date.now() % 100000, "got", r.value, Date.now() - t0);
await it.return?.();
await other.close();
await conn.close();
await server.close();
