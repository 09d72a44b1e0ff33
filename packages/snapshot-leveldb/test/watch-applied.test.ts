import { join } from "node:path";
import { type KvUpdate, type KvWatcher, WatchCursor, type WatchOptions, type WatchScope } from "@slipstream/core";
import { watchApplied } from "@slipstream/fold";
import { tempDir, waitFor } from "@slipstream/testkit";
import { describe, expect, it } from "vitest";
import { LevelSnapshotStore } from "../src/index.js";
import { del, dump, put } from "./helpers.js";

/** A scripted watch: everything after `from`, then idle until aborted. Records each `from`. */
class ScriptedWatcher implements KvWatcher {
  readonly froms: string[] = [];
  delivered = 0;
  constructor(readonly log: KvUpdate[]) {}
  watch(_scope: WatchScope, opts: WatchOptions = {}): AsyncIterable<KvUpdate> {
    const after = opts.from?.revision ?? 0n;
    this.froms.push(opts.from?.toHex() ?? "");
    const log = this.log;
    const self = this;
    return {
      async *[Symbol.asyncIterator]() {
        for (const u of log) {
          const v = u.type === "put" ? u.entry.version : u.version;
          if ((v.revision ?? 0n) > after) {
            self.delivered++;
            yield u;
          }
        }
        await new Promise<void>((resolve) => {
          if (opts.signal?.aborted) resolve();
          opts.signal?.addEventListener("abort", () => resolve(), { once: true });
        });
      },
    };
  }
}

function log(from: number, to: number): KvUpdate[] {
  const out: KvUpdate[] = [];
  for (let r = from; r <= to; r++)
    out.push(r % 5 === 0 ? del(`route.${(r - 3) % 17}`, r) : put(`route.${r % 17}`, `v${r}`, r));
  return out;
}

describe("LevelSnapshotStore under watchApplied", () => {
  it("commits each flush with its cursor, exports between flushes, and resumes delta-only after reopen and after import", async () => {
    await using tmp = await tempDir("slipstream-leveldb-watch-");
    const dir = join(tmp.path, "fold");
    const first = new ScriptedWatcher(log(1, 500));
    let store = await LevelSnapshotStore.open(dir);
    let watch = watchApplied({
      watcher: first,
      store,
      scope: { kind: "all" },
      batch: { windowMs: 5, max: 64 },
      parse: (u) => u,
      apply: () => {},
    });
    await waitFor(() => store.cursor.revision === 500n, { message: "store reaches cursor 500" });
    const artifact = join(tmp.path, "artifact");
    const manifest = await watch.requestExport(artifact);
    expect(manifest.cursor.revision).toBe(500n);
    expect((await watch.stop()).revision).toBe(500n);
    expect(first.froms).toEqual([""]);
    const expected = await dump(store);
    await store.close();

    // Restart: the watch resumes after the persisted cursor and receives only the delta.
    const second = new ScriptedWatcher(log(1, 520));
    store = await LevelSnapshotStore.open(dir);
    expect(store.cursor.revision).toBe(500n);
    expect(await dump(store)).toEqual(expected);
    watch = watchApplied({ watcher: second, store, scope: { kind: "all" }, parse: (u) => u, apply: () => {} });
    await waitFor(() => store.cursor.revision === 520n, { message: "store reaches cursor 520" });
    await watch.stop();
    expect(second.froms).toEqual([WatchCursor.fromRevision(500n).toHex()]);
    expect(second.delivered).toBe(20);
    const final = await dump(store);
    await store.close();

    // A new node bootstraps from the artifact and catches up from its cursor.
    const third = new ScriptedWatcher(log(1, 520));
    const imported = await LevelSnapshotStore.import(artifact, join(tmp.path, "node-b"));
    expect(await dump(imported)).toEqual(expected);
    watch = watchApplied({ watcher: third, store: imported, scope: { kind: "all" }, parse: (u) => u, apply: () => {} });
    await waitFor(() => imported.cursor.revision === 520n, { message: "imported store reaches cursor 520" });
    await watch.stop();
    expect(third.froms).toEqual([WatchCursor.fromRevision(500n).toHex()]);
    expect(third.delivered).toBe(20);
    expect(await dump(imported)).toEqual(final);
    await imported.close();
  });
});
