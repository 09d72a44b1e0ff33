// The README's "Use it" example, kept here so the build type-checks it.

import { watchApplied } from "@slipstream/fold";
import { connect } from "@slipstream/nats";
import { LevelSnapshotStore } from "@slipstream/snapshot-leveldb";

export async function readmeExample(natsUrl: string, foldDir: string): Promise<void> {
  const nc = await connect({ servers: natsUrl });
  const routes = await nc.store({ name: "routes" });
  const store = await LevelSnapshotStore.open(foldDir); // resumes from its own cursor
  const text = new TextDecoder();
  // The fold is durable: rebuild in-memory state from it, then only the delta arrives.
  const table = new Map<string, string>();
  for await (const e of store.range("route.")) table.set(e.key, text.decode(e.value));

  const watch = watchApplied({
    watcher: routes.watcher,
    reader: routes.reader, // lets it resync if retention evicted what it missed
    store,
    scope: { kind: "prefix", prefix: "route." },
    parse: (u) => u,
    apply: (batch) => {
      for (const u of batch) {
        if (u.type === "put") table.set(u.entry.key, text.decode(u.entry.value));
        else table.delete(u.key);
      }
    },
  });

  process.once("SIGTERM", async () => {
    await watch.stop(); // flushes, commits, returns the cursor
    await store.close();
    await nc.close();
  });
}
