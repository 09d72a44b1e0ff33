// Prints the route keys the README example's durable fold holds, as JSON.
import { LevelSnapshotStore } from "@slipstream/snapshot-leveldb";

const dir = process.argv[2];
if (!dir) throw new TypeError("usage: verify <foldDir>");
const store = await LevelSnapshotStore.open(dir);
const text = new TextDecoder();
const out: Record<string, string> = {};
for await (const e of store.range("route.")) out[e.key] = text.decode(e.value);
await store.close();
console.log(JSON.stringify(out));
