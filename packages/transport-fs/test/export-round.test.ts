import { readdir } from "node:fs/promises";
import { join } from "node:path";
import {
  type KvUpdate,
  type KvWatcher,
  type Logger,
  SlipstreamError,
  VersionToken,
  WatchCursor,
} from "@slipstream/core";
import { MemorySnapshotStore, watchApplied } from "@slipstream/fold";
import { tempDir, waitFor } from "@slipstream/testkit";
import { ArtifactTransport, FaultInjectingBlobStore, importRemote, runExportRound } from "@slipstream/transport";
import { afterEach, describe, expect, it } from "vitest";
import { FsBlobStore } from "../src/index.js";
import { advance, dump, exporterOf, foldWith, InProcessLease } from "./helpers.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function world() {
  const root = await tempDir("slipstream-round-");
  cleanups.push(root.cleanup);
  const store = new FaultInjectingBlobStore(new FsBlobStore(join(root.path, "remote")));
  const transport = new ArtifactTransport(store, { prefix: "artifacts" });
  const scratch = join(root.path, "scratch");
  return { root: root.path, store, transport, scratch };
}

function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, debug() {}, info() {}, error() {}, warn: (msg) => warnings.push(msg) };
}

describe("runExportRound", () => {
  it("the winner exports, publishes, records the cursor in the lease and leaves scratch empty", async () => {
    const { store, transport, scratch } = await world();
    const lease = new InProcessLease();
    const fold = await foldWith(12);
    const progress: string[] = [];
    const res = await runExportRound({
      lease,
      ttlMs: 60_000,
      fold: exporterOf(fold),
      transport,
      key: "edge/us-east",
      scratchDir: scratch,
      onProgress: (p) => progress.push(p.phase),
    });
    expect(res.outcome).toBe("published");
    expect(res.outcome !== "skipped" && res.cursor.revision).toBe(12n);
    expect(lease.completed.map((c) => c.revision)).toEqual([12n]);
    expect(lease.abandoned).toBe(0);
    expect(await readdir(scratch)).toEqual([]);
    expect((await transport.manifest("edge/us-east")).cursor.revision).toBe(12n);
    expect(progress).toContain("upload");
    expect(store.calls.some((c) => c.startsWith("list artifacts/edge/us-east.payloads/"))).toBe(true);
  });

  it("a node that does not win the lease skips without exporting", async () => {
    const { transport, scratch } = await world();
    const lease = new InProcessLease();
    await lease.tryAcquire(60_000);
    const exporter = exporterOf(await foldWith(3));
    const res = await runExportRound({
      lease,
      ttlMs: 60_000,
      fold: exporter,
      transport,
      key: "k",
      scratchDir: scratch,
    });
    expect(res).toEqual({ outcome: "skipped" });
    expect(exporter.calls).toBe(0);
    await expect(transport.manifest("k")).rejects.toMatchObject({ code: "ARTIFACT_INVALID" });
  });

  it("two concurrent rounds on one lease: one publishes, one skips", async () => {
    const { transport, scratch } = await world();
    const lease = new InProcessLease();
    const [a, b] = await Promise.all([
      runExportRound({
        lease,
        ttlMs: 60_000,
        fold: exporterOf(await foldWith(5)),
        transport,
        key: "k",
        scratchDir: scratch,
      }),
      runExportRound({
        lease,
        ttlMs: 60_000,
        fold: exporterOf(await foldWith(6)),
        transport,
        key: "k",
        scratchDir: scratch,
      }),
    ]);
    expect([a.outcome, b.outcome].sort()).toEqual(["published", "skipped"]);
    expect(lease.completed).toHaveLength(1);
    expect(await readdir(scratch)).toEqual([]);
  });

  it("a superseded round still completes the lease, warns and does not prune", async () => {
    const { store, transport, scratch } = await world();
    const newer = await foldWith(20);
    await runExportRound({
      lease: new InProcessLease(),
      ttlMs: 1,
      fold: exporterOf(newer),
      transport,
      key: "k",
      scratchDir: scratch,
    });
    const lease = new InProcessLease();
    const log = recordingLogger();
    store.calls.length = 0;
    const res = await runExportRound({
      lease,
      ttlMs: 1,
      fold: exporterOf(await foldWith(7)),
      transport,
      key: "k",
      scratchDir: scratch,
      logger: log,
    });
    expect(res.outcome).toBe("superseded");
    expect(lease.completed.map((c) => c.revision)).toEqual([7n]);
    expect(log.warnings.some((w) => /superseded/.test(w))).toBe(true);
    expect(store.calls.filter((c) => c.startsWith("list "))).toEqual([]);
    expect((await transport.manifest("k")).cursor.revision).toBe(20n);
    expect(await readdir(scratch)).toEqual([]);
  });

  it("prunes payloads older than 4 × ttl after publishing, keeping the new target", async () => {
    const { store, transport, scratch } = await world();
    const fold = await foldWith(3);
    const ttlMs = 1;
    await runExportRound({
      lease: new InProcessLease(),
      ttlMs,
      fold: exporterOf(fold),
      transport,
      key: "k",
      scratchDir: scratch,
    });
    await advance(fold, 9);
    await new Promise((r) => setTimeout(r, 20));
    await runExportRound({
      lease: new InProcessLease(),
      ttlMs,
      fold: exporterOf(fold),
      transport,
      key: "k",
      scratchDir: scratch,
    });
    const left = [];
    for await (const item of store.list("artifacts/k.payloads/")) left.push(item.key);
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(/\/0000000000000009-[0-9a-f]{16}\.tar$/);
  });

  it("an upload failure abandons the lease, removes the local artifact and rethrows", async () => {
    const { store, transport, scratch } = await world();
    store.hook = (op) => {
      if (op === "put") throw new SlipstreamError("BACKEND", "injected: bucket unreachable");
    };
    const lease = new InProcessLease();
    await expect(
      runExportRound({
        lease,
        ttlMs: 600_000,
        fold: exporterOf(await foldWith(4)),
        transport,
        key: "k",
        scratchDir: scratch,
      }),
    ).rejects.toMatchObject({ code: "BACKEND", message: /bucket unreachable/ });
    expect(lease.abandoned).toBe(1);
    expect(lease.completed).toEqual([]);
    expect(await readdir(scratch)).toEqual([]);
    // Abandoned: the next round need not wait out the 10-minute ttl.
    store.hook = () => {};
    const again = await runExportRound({
      lease,
      ttlMs: 600_000,
      fold: exporterOf(await foldWith(4)),
      transport,
      key: "k",
      scratchDir: scratch,
    });
    expect(again.outcome).toBe("published");
  });

  it("an export failure abandons the lease and rethrows", async () => {
    const { transport, scratch } = await world();
    const lease = new InProcessLease();
    const fold = {
      requestExport: async () => {
        throw new SlipstreamError("BACKEND", "watch loop is gone; export request not delivered");
      },
    };
    await expect(
      runExportRound({ lease, ttlMs: 60_000, fold, transport, key: "k", scratchDir: scratch }),
    ).rejects.toThrow(/watch loop/);
    expect(lease.abandoned).toBe(1);
    expect(await readdir(scratch)).toEqual([]);
  });

  it("a lease backend error is a BACKEND error and nothing is exported", async () => {
    const { transport, scratch } = await world();
    const exporter = exporterOf(await foldWith(2));
    const lease = {
      tryAcquire: async () => {
        throw new Error("kv unreachable");
      },
    };
    await expect(
      runExportRound({ lease, ttlMs: 60_000, fold: exporter, transport, key: "k", scratchDir: scratch }),
    ).rejects.toMatchObject({ code: "BACKEND", message: /export lease/ });
    expect(exporter.calls).toBe(0);
  });

  it("the imported fold equals the exported one", async () => {
    const { transport, scratch, root } = await world();
    const fold = await foldWith(25);
    await runExportRound({
      lease: new InProcessLease(),
      ttlMs: 60_000,
      fold: exporterOf(fold),
      transport,
      key: "k",
      scratchDir: scratch,
    });
    await transport.download("k", join(root, "dl"));
    const imported = await MemorySnapshotStore.import(join(root, "dl"), join(root, "node-b"));
    expect(imported.cursor.revision).toBe(25n);
    expect(await dump(imported)).toEqual(await dump(fold));
  });
});

/** A watcher that replays a fixed log after `from`, then idles until aborted (a stand-in for NATS). */
function scriptedWatcher(log: KvUpdate[]): KvWatcher {
  return {
    watch: (_scope, opts) =>
      (async function* () {
        const after = opts?.from?.revision ?? 0n;
        for (const u of log) {
          const rev = (u.type === "put" ? u.entry.version : u.version).revision ?? 0n;
          if (rev > after) yield u;
        }
        await new Promise<void>((resolve) => {
          if (opts?.signal?.aborted) resolve();
          opts?.signal?.addEventListener("abort", () => resolve(), { once: true });
        });
      })(),
  };
}

function put(rev: number): KvUpdate {
  return {
    type: "put",
    entry: {
      key: `route.${rev}`,
      value: new TextEncoder().encode(`v${rev}`),
      version: VersionToken.fromRevision(BigInt(rev)),
    },
  };
}

describe("runExportRound with a live watchApplied", () => {
  it("exports the applied fold through AppliedWatch.requestExport; a new node imports it and resumes with the delta only", async () => {
    const { transport, scratch, root } = await world();
    const log = Array.from({ length: 30 }, (_, i) => put(i + 1));
    const storeA = new MemorySnapshotStore();
    const watchA = watchApplied({
      watcher: scriptedWatcher(log),
      scope: { kind: "all" },
      store: storeA,
      parse: (u) => u,
      apply: () => {},
    });
    try {
      await waitFor(() => watchA.cursor.revision === 30n, { message: "node A applied the log" });
      const res = await runExportRound({
        lease: new InProcessLease(),
        ttlMs: 60_000,
        fold: watchA,
        transport,
        key: "k",
        scratchDir: scratch,
      });
      expect(res.outcome).toBe("published");
      expect(res.outcome !== "skipped" && res.cursor.equals(WatchCursor.fromRevision(30n))).toBe(true);
    } finally {
      await watchA.stop();
    }
    log.push(put(31), put(32));
    const storeB = await importRemote({
      transport,
      key: "k",
      scratchDir: scratch,
      destDir: join(root, "node-b"),
      open: (a, d) => MemorySnapshotStore.import(a, d),
    });
    expect(storeB.cursor.revision).toBe(30n);
    const delivered: number[] = [];
    const watchB = watchApplied({
      watcher: scriptedWatcher(log),
      scope: { kind: "all" },
      store: storeB,
      parse: (u) => u,
      apply: (batch) => {
        for (const u of batch) delivered.push(Number((u.type === "put" ? u.entry.version : u.version).revision));
      },
    });
    try {
      await waitFor(() => watchB.cursor.revision === 32n, { message: "node B caught up" });
    } finally {
      await watchB.stop();
    }
    expect(delivered).toEqual([31, 32]);
    expect((await dump(storeB)).length).toBe(32);
  });
});
