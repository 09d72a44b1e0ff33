/**
 * watchApplied against a real nats-server through @slipstream/nats: cursor after apply
 * under SIGKILL, rejected updates, flush triggers, resync after retention evicted the gap,
 * fail-stop resync, store retries, server restart, exports between flushes.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { KvReader, KvUpdate } from "@slipstream/core";
import { SlipstreamError, VersionToken, WatchCursor } from "@slipstream/core";
import type { AppliedWatch } from "@slipstream/fold";
import { MemorySnapshotStore, watchApplied } from "@slipstream/fold";
import { connect, type NatsConnection } from "@slipstream/nats";
import { hasNats, type NatsServerHandle, repoRoot, startNats, tempDir, waitFor } from "@slipstream/testkit";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FileStore } from "./fixtures/file-store.js";
import { FlakyStore } from "./helpers/flaky-store.js";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const ALL = { kind: "all" } as const;
const FAST_RETRY = { resubscribeInitialMs: 20, resubscribeMaxMs: 200, commitInitialMs: 5, commitMaxMs: 20 };

function bucketName(tag: string): string {
  return `fold_${tag}_${randomBytes(3).toString("hex")}`;
}

function revOf(u: KvUpdate): bigint {
  return (u.type === "put" ? u.entry.version : u.version).revision as bigint;
}

/** The bucket's live state as [key, value] pairs in byte order. */
async function bucketState(reader: KvReader): Promise<string[][]> {
  const out: string[][] = [];
  for await (const e of reader.scan()) out.push([e.key, dec(e.value)]);
  return out.sort((a, b) => Buffer.compare(Buffer.from(a[0] as string), Buffer.from(b[0] as string)));
}

/** The fold's state as [key, value] pairs (byte order). */
async function foldState(store: MemorySnapshotStore | FileStore): Promise<string[][]> {
  const out: string[][] = [];
  for await (const e of store.range("")) if (e.value.length > 0) out.push([e.key, dec(e.value)]);
  return out;
}

describe.skipIf(!hasNats("any"))("watchApplied on nats-server", () => {
  let server: NatsServerHandle;
  let nc: NatsConnection;
  const running: AppliedWatch[] = [];

  beforeAll(async () => {
    server = await startNats();
    nc = await connect({ servers: server.url, timeoutMs: 5_000, reconnectTimeWaitMs: 100, watchStallMs: 3_000 });
  });
  afterAll(async () => {
    await nc?.close();
    await server?.close();
  });
  afterEach(async () => {
    for (const w of running.splice(0)) await w.stop().catch(() => {});
  });
  const track = (w: AppliedWatch) => {
    running.push(w);
    return w;
  };

  it("parse-rejected updates advance the cursor and reach the store", async () => {
    const kv = await nc.store({ name: bucketName("rejected") });
    let last = 0n;
    for (let i = 0; i < 5; i++) last = (await kv.writer.put(`k.${i}`, enc(`v${i}`))).revision as bigint;
    const store = new MemorySnapshotStore();
    let applyCalls = 0;
    const w = track(
      watchApplied({
        watcher: kv.watcher,
        scope: ALL,
        store,
        batch: { windowMs: 5 },
        parse: () => undefined,
        apply: () => void applyCalls++,
      }),
    );
    await waitFor(() => w.cursor.revision === last, { message: `cursor ${last}` });
    expect(applyCalls).toBe(0);
    expect(store.cursor.revision).toBe(last);
    expect(await foldState(store)).toEqual(await bucketState(kv.reader));
  });

  it("flushes on max, on the window and on stop", async () => {
    const kv = await nc.store({ name: bucketName("flush") });
    for (let i = 1; i <= 7; i++) await kv.writer.put(`k.${i}`, enc("v"));
    // max: 7 updates with max 3 and a one-minute window → [3, 3] before stop, [1] at stop.
    const sizes: number[] = [];
    const byMax = watchApplied({
      watcher: kv.watcher,
      scope: ALL,
      batch: { max: 3, windowMs: 60_000 },
      parse: (u) => u,
      apply: (b) => void sizes.push(b.length),
    });
    await waitFor(() => sizes.length === 2, { message: "two full batches" });
    expect(sizes).toEqual([3, 3]);
    expect(byMax.cursor.revision).toBe(6n);
    expect((await byMax.stop()).revision).toBe(7n);
    expect(sizes).toEqual([3, 3, 1]);

    // window: resume at 7, two live puts flush together without a stop.
    const windowed: bigint[][] = [];
    const byWindow = track(
      watchApplied({
        watcher: kv.watcher,
        scope: ALL,
        resume: WatchCursor.fromRevision(7n),
        batch: { max: 100, windowMs: 30 },
        parse: revOf,
        apply: (b) => void windowed.push(b),
      }),
    );
    await kv.writer.put("k.8", enc("v"));
    await kv.writer.put("k.9", enc("v"));
    await waitFor(() => windowed.flat().length === 2, { message: "window flush" });
    expect(windowed.flat()).toEqual([8n, 9n]);
    expect(byWindow.cursor.revision).toBe(9n);
  });

  it("a failed store commit is retried and never leaves a hole", async () => {
    const kv = await nc.store({ name: bucketName("flaky") });
    const store = new FlakyStore(new MemorySnapshotStore());
    const w = track(
      watchApplied({
        watcher: kv.watcher,
        scope: ALL,
        store,
        retry: FAST_RETRY,
        batch: { windowMs: 5, max: 4 },
        parse: (u) => u,
        apply: () => {},
      }),
    );
    let last = 0n;
    for (let i = 0; i < 6; i++) last = (await kv.writer.put(`a.${i}`, enc(`v${i}`))).revision as bigint;
    await waitFor(() => store.cursor.revision === last, { message: "first commits" });
    store.failNext = 5;
    for (let i = 0; i < 6; i++) last = (await kv.writer.put(`b.${i}`, enc(`w${i}`))).revision as bigint;
    await kv.writer.delete("a.0");
    last += 1n;
    await waitFor(() => store.cursor.revision === last, { message: "committed after retries" });
    expect(w.stats.commitFailures).toBe(5);
    expect(await foldState(store.inner as MemorySnapshotStore)).toEqual(await bucketState(kv.reader));
  });

  it("resync after retention evicted the gap converges, delete-then-recreate included", async () => {
    const kv = await nc.store({ name: bucketName("resync"), maxBytes: 16 * 1024, discard: "old" });
    await kv.writer.put("route.a", enc("a1"));
    await kv.writer.put("route.b", enc("b1"));
    await kv.writer.put("route.gone", enc("g1"));
    await kv.writer.put("route.cycle", enc("c1"));
    const store = new MemorySnapshotStore();
    const first = watchApplied({
      watcher: kv.watcher,
      reader: kv.reader,
      store,
      scope: ALL,
      batch: { windowMs: 5 },
      parse: (u) => u,
      apply: () => {},
    });
    await waitFor(() => store.cursor.revision === 4n, { message: "seeded at 4" });
    const stoppedAt = await first.stop();

    // The gap: a delete, a delete-then-recreate, then filler that evicts the head of the log.
    // (route.a's only message is evicted too: it vanishes from the bucket as well.)
    await kv.writer.delete("route.gone");
    await kv.writer.delete("route.cycle");
    await kv.writer.put("route.b", enc("b2"));
    const filler = new Uint8Array(1500).fill(120);
    for (let i = 0; i < 30; i++) await kv.writer.put(`filler.${i}`, filler);
    await kv.writer.put("route.cycle", enc("c2"));
    await kv.writer.put("route.b", enc("b3"));
    const status = await kv.status();
    expect(status.firstSeq > (stoppedAt.revision as bigint) + 1n).toBe(true); // the gap is really gone

    const seen: string[] = [];
    const second = track(
      watchApplied({
        watcher: kv.watcher,
        reader: kv.reader,
        store,
        scope: ALL,
        batch: { windowMs: 5 },
        parse: (u) => (u.type === "put" ? `put ${u.entry.key}` : `${u.type} ${u.key}`),
        apply: (b) => void seen.push(...b),
      }),
    );
    await waitFor(async () => second.cursor.revision === (await kv.status()).lastSeq, { message: "caught up" });
    expect(second.stats.resyncs).toBe(1);
    expect(await foldState(store)).toEqual(await bucketState(kv.reader));
    expect(await store.get("route.gone")).toBeUndefined();
    expect(await store.get("route.a")).toBeUndefined();
    expect(dec(((await store.get("route.b")) as { value: Uint8Array }).value)).toBe("b3");
    expect(dec(((await store.get("route.cycle")) as { value: Uint8Array }).value)).toBe("c2");
    // The synthetic delete of a vanished key precedes any re-list put.
    expect(seen.indexOf("delete route.gone")).toBeGreaterThanOrEqual(0);
    const firstPut = seen.findIndex((s) => s.startsWith("put "));
    expect(seen.indexOf("delete route.gone")).toBeLessThan(firstPut);
  });

  it("a prefixes scope folds only its prefixes; its resync leaves out-of-scope keys alone", async () => {
    const kv = await nc.store({ name: bucketName("prefixes"), maxBytes: 16 * 1024, discard: "old" });
    const scope = { kind: "prefixes", prefixes: ["a.", "b."] } as const;
    await kv.writer.put("a.1", enc("a1"));
    await kv.writer.put("b.1", enc("b1"));
    await kv.writer.put("c.1", enc("c1"));
    const store = new MemorySnapshotStore();
    // An out-of-scope key the fold holds from elsewhere; a prefix-scoped resync must not touch it.
    await store.apply(
      [{ type: "put", entry: { key: "c.local", value: enc("mine"), version: VersionToken.fromRevision(1n) } }],
      WatchCursor.none(),
    );
    const first = watchApplied({
      watcher: kv.watcher,
      reader: kv.reader,
      store,
      scope,
      batch: { windowMs: 5 },
      parse: (u) => u,
      apply: () => {},
    });
    await waitFor(async () => first.cursor.revision === 2n, { message: "folded a.1 and b.1" });
    await first.stop();
    expect(await store.get("c.1")).toBeUndefined();

    await kv.writer.delete("a.1");
    const filler = new Uint8Array(1500).fill(7);
    for (let i = 0; i < 30; i++) await kv.writer.put(`f.${i}`, filler);
    await kv.writer.put("b.2", enc("b2"));
    expect((await kv.status()).firstSeq > 3n).toBe(true);
    const second = track(
      watchApplied({
        watcher: kv.watcher,
        reader: kv.reader,
        store,
        scope,
        batch: { windowMs: 5 },
        parse: (u) => u,
        apply: () => {},
      }),
    );
    const last = (await kv.status()).lastSeq;
    await waitFor(() => second.cursor.revision === last, { message: "caught up" });
    expect(second.stats.resyncs).toBe(1);
    const keys: string[] = [];
    for await (const e of store.range("")) keys.push(e.key);
    const live = (await bucketState(kv.reader))
      .map(([k]) => k as string)
      .filter((k) => k.startsWith("a.") || k.startsWith("b."));
    expect(keys).toEqual([...live, "c.local"]);
  });

  it("a resync whose key listing fails stops the watch with WATCH_FAILED", async () => {
    const kv = await nc.store({ name: bucketName("resyncfail"), maxBytes: 8 * 1024, discard: "old" });
    await kv.writer.put("k.a", enc("1"));
    const store = new MemorySnapshotStore();
    await store.apply([], WatchCursor.fromRevision(1n));
    const filler = new Uint8Array(1500).fill(1);
    for (let i = 0; i < 20; i++) await kv.writer.put(`f.${i}`, filler);
    expect((await kv.status()).firstSeq > 2n).toBe(true);
    // Fault injection: a reader whose keys() fails.
    const brokenReader: KvReader = {
      get: (k) => kv.reader.get(k),
      entry: (k) => kv.reader.entry(k),
      scan: (p) => kv.reader.scan(p),
      // biome-ignore lint/correctness/useYield: it fails before yielding
      keys: async function* () {
        throw new SlipstreamError("TIMEOUT", "injected listing failure");
      },
    };
    const w = watchApplied({
      watcher: kv.watcher,
      reader: brokenReader,
      store,
      scope: ALL,
      parse: (u) => u,
      apply: () => {},
    });
    await expect(w.done).rejects.toSatisfy(
      (e) => SlipstreamError.is(e, "WATCH_FAILED") && /resync/.test((e as Error).message),
    );
    expect(store.cursor.revision).toBe(1n);
  });

  it("export between flushes carries the applied cursor; bootstrapping from it catches up exactly", async () => {
    await using dir = await tempDir("slipstream-fold-nats-export-");
    // History covers every write, so the stream keeps each revision and "delta only" is exact.
    const kv = await nc.store({ name: bucketName("export"), history: 10 });
    const store = new MemorySnapshotStore();
    const w = track(
      watchApplied({
        watcher: kv.watcher,
        scope: ALL,
        store,
        batch: { windowMs: 2, max: 10 },
        parse: (u) => u,
        apply: () => {},
      }),
    );
    const writing = (async () => {
      for (let i = 0; i < 60; i++) await kv.writer.put(`r.${i % 17}`, enc(`v${i}`));
    })();
    await waitFor(() => (w.cursor.revision ?? 0n) >= 20n, { message: "streaming" });
    const manifest = await w.requestExport(join(dir.path, "artifact"));
    await writing;
    // More writes after the export, so the bootstrapped node always has a tail to catch up on.
    for (let i = 60; i < 120; i++) await kv.writer.put(`r.${i % 17}`, enc(`v${i}`));
    const exportCursor = manifest.cursor.revision as bigint;
    expect(exportCursor >= 20n).toBe(true);

    const imported = await MemorySnapshotStore.import(join(dir.path, "artifact"), join(dir.path, "imported"));
    expect(imported.cursor.revision).toBe(exportCursor);
    for await (const e of imported.range("")) expect((e.version.revision as bigint) <= exportCursor).toBe(true);
    const delivered: bigint[] = [];
    const node = track(
      watchApplied({
        watcher: kv.watcher,
        scope: ALL,
        store: imported,
        batch: { windowMs: 2 },
        parse: revOf,
        apply: (b) => void delivered.push(...b),
      }),
    );
    const lastSeq = (await kv.status()).lastSeq;
    await waitFor(() => node.cursor.revision === lastSeq, { message: "bootstrapped node caught up" });
    // Delta only, starting right after the artifact's cursor, nothing skipped.
    expect(delivered[0]).toBe(exportCursor + 1n);
    expect(delivered.length).toBe(Number(lastSeq - exportCursor));
    expect(await foldState(imported)).toEqual(await bucketState(kv.reader));
  });

  it("a server restart mid-watch resumes by itself without a gap", async () => {
    const own = await startNats();
    const conn = await connect({ servers: own.url, timeoutMs: 3_000, reconnectTimeWaitMs: 100, watchStallMs: 2_000 });
    try {
      const kv = await conn.store({ name: bucketName("restart") });
      const store = new MemorySnapshotStore();
      const revs: bigint[] = [];
      const w = track(
        watchApplied({
          watcher: kv.watcher,
          scope: ALL,
          store,
          retry: FAST_RETRY,
          batch: { windowMs: 5 },
          parse: revOf,
          apply: (b) => void revs.push(...b),
        }),
      );
      for (let i = 0; i < 5; i++) await kv.writer.put(`k.${i}`, enc(`before${i}`));
      await waitFor(() => w.cursor.revision === 5n, { message: "cursor 5" });
      await own.restart();
      // Writes after the restart (retry until the client has reconnected).
      for (let i = 0; i < 5; i++) {
        await waitFor(
          async () => {
            await kv.writer.put(`k.${i}`, enc(`after${i}`));
            return true;
          },
          { timeoutMs: 20_000, message: "put after restart" },
        );
      }
      const lastSeq = (await kv.status()).lastSeq;
      await waitFor(() => w.cursor.revision === lastSeq, { timeoutMs: 30_000, message: "caught up after restart" });
      expect(await foldState(store)).toEqual(await bucketState(kv.reader));
      // No gap: every revision 1..lastSeq applied, in order, none twice.
      expect(revs).toEqual(Array.from({ length: Number(lastSeq) }, (_, i) => BigInt(i + 1)));
    } finally {
      for (const w of running.splice(0)) await w.stop().catch(() => {});
      await conn.close();
      await own.close();
    }
  });

  it("an outage longer than the stall bound ends the watch; it re-subscribes from the applied cursor by itself", async () => {
    const own = await startNats();
    const conn = await connect({ servers: own.url, timeoutMs: 1_000, reconnectTimeWaitMs: 100, watchStallMs: 800 });
    try {
      const kv = await conn.store({ name: bucketName("outage") });
      const store = new MemorySnapshotStore();
      const revs: bigint[] = [];
      const lines: string[] = [];
      const logger = { debug() {}, info() {}, error() {}, warn: (msg: string) => void lines.push(msg) };
      const w = track(
        watchApplied({
          watcher: kv.watcher,
          scope: ALL,
          store,
          logger,
          retry: FAST_RETRY,
          batch: { windowMs: 5 },
          parse: revOf,
          apply: (b) => void revs.push(...b),
        }),
      );
      for (let i = 0; i < 3; i++) await kv.writer.put(`k.${i}`, enc(`before${i}`));
      await waitFor(() => w.cursor.revision === 3n, { message: "cursor 3" });
      await own.stop();
      await waitFor(() => w.stats.resubscribes >= 1, {
        timeoutMs: 15_000,
        message: "the watch failed and is re-subscribing",
      });
      await own.restart();
      for (let i = 0; i < 3; i++) {
        await waitFor(
          async () => {
            await kv.writer.put(`k.${i}`, enc(`after${i}`));
            return true;
          },
          { timeoutMs: 20_000, message: "put after restart" },
        );
      }
      const lastSeq = (await kv.status()).lastSeq;
      await waitFor(() => w.cursor.revision === lastSeq, { timeoutMs: 30_000, message: "caught up after the outage" });
      expect(revs).toEqual(Array.from({ length: Number(lastSeq) }, (_, i) => BigInt(i + 1)));
      expect(await foldState(store)).toEqual(await bucketState(kv.reader));
      expect(lines.some((l) => l.includes("re-subscribing"))).toBe(true);
    } finally {
      for (const w of running.splice(0)) await w.stop().catch(() => {});
      await conn.close();
      await own.close();
    }
  });

  describe("crash between receipt and apply (child process, SIGKILL)", () => {
    const root = repoRoot();

    function spawnChild(cfg: Record<string, string>): { child: ChildProcess; lines: string[]; exited: Promise<void> } {
      const child = spawn(
        process.execPath,
        [
          "--conditions=@slipstream/source",
          "--import",
          "tsx",
          join(root, "packages/fold/test/fixtures/crash-child.ts"),
        ],
        { cwd: root, env: { ...process.env, CRASH_CHILD: JSON.stringify(cfg) }, stdio: ["ignore", "pipe", "pipe"] },
      );
      const lines: string[] = [];
      let buf = "";
      child.stdout?.on("data", (d: Buffer) => {
        buf += d.toString();
        const parts = buf.split("\n");
        buf = parts.pop() ?? "";
        lines.push(...parts);
      });
      let err = "";
      child.stderr?.on("data", (d: Buffer) => {
        err += d.toString();
      });
      const exited = new Promise<void>((resolve) =>
        child.once("exit", () => {
          if (err.trim()) lines.push(`STDERR ${err.trim()}`);
          resolve();
        }),
      );
      return { child, lines, exited };
    }

    async function kill(c: { child: ChildProcess; exited: Promise<void> }): Promise<void> {
      c.child.kill("SIGKILL");
      await c.exited;
    }

    async function appliedRevs(path: string): Promise<bigint[]> {
      const text = await readFile(path, "utf8").catch(() => "");
      return text
        .split("\n")
        .filter(Boolean)
        .map((s) => BigInt(s));
    }

    it("no update is lost when killed after receipt, before apply returns", async () => {
      await using dir = await tempDir("slipstream-fold-crash-");
      const bucket = bucketName("crash");
      const kv = await nc.store({ name: bucket });
      for (let i = 1; i <= 20; i++) await kv.writer.put(`k.${String(i).padStart(2, "0")}`, enc(`v${i}`));
      const cfg = {
        url: server.url,
        bucket,
        stateFile: join(dir.path, "fold.json"),
        appliedLog: join(dir.path, "applied.log"),
      };

      const first = spawnChild({ ...cfg, hangApplyAt: "12" });
      await waitFor(() => first.lines.some((l) => l.startsWith("HANG apply")), {
        timeoutMs: 30_000,
        message: `child hangs in apply: ${first.lines.join(" | ")}`,
      });
      await kill(first);
      const image = FileStore.read(cfg.stateFile);
      const committed = image ? (WatchCursor.fromHex(image.cursor).revision ?? 0n) : 0n;
      // Cursor after apply: revision 12 was received (apply was running) but is not committed.
      expect(committed < 12n).toBe(true);
      expect((await appliedRevs(cfg.appliedLog)).every((r) => r < 12n)).toBe(true);

      for (let i = 21; i <= 25; i++) await kv.writer.put(`k.${i}`, enc(`v${i}`));
      await kv.writer.delete("k.03");
      const lastSeq = (await kv.status()).lastSeq;
      const second = spawnChild(cfg);
      await waitFor(() => second.lines.includes(`CURSOR ${lastSeq}`), {
        timeoutMs: 30_000,
        message: `restarted child catches up: ${second.lines.join(" | ")}`,
      });
      await kill(second);
      expect(second.lines[0]).toBe(`READY ${committed === 0n ? "none" : committed}`);

      const revs = await appliedRevs(cfg.appliedLog);
      // Nothing lost: every revision applied at least once; the restart resumed right after the committed cursor.
      const distinct = [...new Set(revs)].sort((a, b) => (a < b ? -1 : 1));
      expect(distinct).toEqual(Array.from({ length: Number(lastSeq) }, (_, i) => BigInt(i + 1)));
      const secondRun = second.lines
        .filter((l) => l.startsWith("APPLY "))
        .flatMap((l) => l.slice(6).split(" ").map(BigInt));
      expect(secondRun[0]).toBe(committed + 1n);
      const store = await FileStore.open(cfg.stateFile);
      expect(store.cursor.revision).toBe(lastSeq);
      expect(await foldState(store)).toEqual(await bucketState(kv.reader));
    });

    it("a kill between apply and the store commit re-delivers that batch (at least once, no hole)", async () => {
      await using dir = await tempDir("slipstream-fold-crash-");
      const bucket = bucketName("crash2");
      const kv = await nc.store({ name: bucket });
      for (let i = 1; i <= 12; i++) await kv.writer.put(`k.${i}`, enc(`v${i}`));
      const cfg = {
        url: server.url,
        bucket,
        stateFile: join(dir.path, "fold.json"),
        appliedLog: join(dir.path, "applied.log"),
      };
      const first = spawnChild({ ...cfg, hangCommitAt: "8" });
      await waitFor(() => first.lines.includes("HANG commit"), {
        timeoutMs: 30_000,
        message: `child hangs in commit: ${first.lines.join(" | ")}`,
      });
      await kill(first);
      const image = FileStore.read(cfg.stateFile);
      const committed = image ? (WatchCursor.fromHex(image.cursor).revision ?? 0n) : 0n;
      expect(committed < 8n).toBe(true);
      const appliedBefore = await appliedRevs(cfg.appliedLog);
      expect(appliedBefore.some((r) => r > committed)).toBe(true); // applied, never committed

      const second = spawnChild(cfg);
      await waitFor(() => second.lines.includes("CURSOR 12"), {
        timeoutMs: 30_000,
        message: `restarted child catches up: ${second.lines.join(" | ")}`,
      });
      await kill(second);
      const secondRun = second.lines
        .filter((l) => l.startsWith("APPLY "))
        .flatMap((l) => l.slice(6).split(" ").map(BigInt));
      expect(secondRun[0]).toBe(committed + 1n); // the uncommitted batch is delivered again
      const store = await FileStore.open(cfg.stateFile);
      expect(store.cursor.revision).toBe(12n);
      expect(await foldState(store)).toEqual(await bucketState(kv.reader));
    });
  });
});
