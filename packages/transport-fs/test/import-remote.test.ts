import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { MANIFEST_FILE, readManifest, SlipstreamError, type WatchScope } from "@slipstream/core";
import { MemorySnapshotStore } from "@slipstream/fold";
import { tempDir } from "@slipstream/testkit";
import {
  ArtifactTransport,
  type BlobBody,
  type BlobOpOptions,
  FaultInjectingBlobStore,
  importRemote,
  makeTestArtifact,
  packArtifact,
  runExportRound,
  stallUntilAborted,
} from "@slipstream/transport";
import { afterEach, describe, expect, it } from "vitest";
import { FsBlobStore } from "../src/index.js";
import { advance, dump, exporterOf, foldWith, InProcessLease } from "./helpers.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/** Streams every payload one byte at a time, then waits until the caller gives up. */
class TricklingStore extends FaultInjectingBlobStore {
  override async get(key: string, opts?: BlobOpOptions): Promise<BlobBody | undefined> {
    const got = await super.get(key, opts);
    if (!got) return got;
    const signal = opts?.signal;
    return {
      size: got.size,
      body: (async function* () {
        for await (const chunk of got.body) {
          yield chunk.subarray(0, 1);
          await stallUntilAborted(signal);
        }
      })(),
    };
  }
}

async function world(opts: { timeoutMs?: number; trickle?: boolean } = {}) {
  const root = await tempDir("slipstream-import-");
  cleanups.push(root.cleanup);
  const inner = new FsBlobStore(join(root.path, "remote"));
  const store = opts.trickle ? new TricklingStore(inner) : new FaultInjectingBlobStore(inner);
  const transport = new ArtifactTransport(store, { prefix: "artifacts", timeoutMs: opts.timeoutMs });
  const scratch = join(root.path, "scratch");
  const nodes = join(root.path, "nodes");
  await mkdir(nodes);
  return { root: root.path, inner, store, transport, scratch, nodes };
}

async function publish(w: Awaited<ReturnType<typeof world>>, fold: MemorySnapshotStore, key = "k") {
  return runExportRound({
    lease: new InProcessLease(),
    ttlMs: 60_000,
    fold: exporterOf(fold),
    transport: w.transport,
    key,
    scratchDir: w.scratch,
  });
}

/** A new node `name` bootstraps from key "k" (for `scope` only, when given). */
const bootstrap = (w: Awaited<ReturnType<typeof world>>, name: string, scope?: WatchScope) =>
  importRemote({
    transport: w.transport,
    key: "k",
    scratchDir: w.scratch,
    destDir: join(w.nodes, name),
    ...(scope ? { scope } : {}),
    open: (artifactDir, destDir, hints) => MemorySnapshotStore.import(artifactDir, destDir, hints),
  });

describe("importRemote", () => {
  it("bootstraps a fold equal to the exporter's, at its cursor, and removes the download", async () => {
    const w = await world();
    const fold = await foldWith(40);
    await publish(w, fold);
    const progress: { phase: string; bytesDone: number; bytesTotal?: number }[] = [];
    const imported = await importRemote({
      transport: w.transport,
      key: "k",
      scratchDir: w.scratch,
      destDir: join(w.nodes, "b"),
      open: (a, d) => MemorySnapshotStore.import(a, d),
      onProgress: (p) => progress.push(p),
    });
    expect(imported.cursor.revision).toBe(40n);
    expect(await dump(imported)).toEqual(await dump(fold));
    expect(await readdir(w.scratch)).toEqual([]);
    const last = progress.filter((p) => p.phase === "download").at(-1);
    expect(last && last.bytesDone === last.bytesTotal && last.bytesDone > 0).toBe(true);
  });

  it("a partial artifact: a node it does not cover is refused from the pointer, before any payload byte moves", async () => {
    const w = await world();
    const fold = await foldWith(40);
    const round = await runExportRound({
      lease: new InProcessLease(),
      ttlMs: 60_000,
      fold: exporterOf(fold),
      transport: w.transport,
      key: "k",
      scope: { kind: "prefix", prefix: "route.1" },
      scratchDir: w.scratch,
    });
    if (round.outcome === "skipped") throw new Error("unreachable");
    expect(round.manifest.scope).toEqual(["route.1"]);
    w.store.calls.length = 0;
    const wider = await bootstrap(w, "wide", { kind: "prefix", prefix: "route." }).catch((e: unknown) => e);
    expect(SlipstreamError.is(wider, "SCOPE_NOT_COVERED"), String(wider)).toBe(true);
    expect(w.store.calls.filter((c) => c.startsWith("get "))).toEqual([]);
    expect(await readdir(w.nodes)).toEqual([]);
    // Without a scope the node wants the whole bucket: refused after the download, nothing kept.
    const whole = await bootstrap(w, "whole").catch((e: unknown) => e);
    expect(SlipstreamError.is(whole, "SCOPE_NOT_COVERED"), String(whole)).toBe(true);
    expect(await readdir(w.nodes)).toEqual([]);
    expect(await readdir(w.scratch)).toEqual([]);
    // A node within the artifact's scope bootstraps with exactly its keys.
    const narrow = await bootstrap(w, "narrow", { kind: "prefix", prefix: "route.1" });
    expect((await dump(narrow)).map(([k]) => k)).toEqual([
      "route.1",
      ...Array.from({ length: 10 }, (_, i) => `route.1${i}`),
    ]);
    expect(narrow.scope).toEqual(["route.1"]);
    expect(narrow.cursor.revision).toBe(40n);
  });

  it("a tampered payload downloads but fails the import's hash check: dest absent, scratch empty", async () => {
    const w = await world();
    await publish(w, await foldWith(10));
    // Re-pack the published artifact with one payload byte flipped (same sizes, same manifest).
    const dl = join(w.root, "dl");
    await w.transport.download("k", dl);
    const { manifest, bytes } = await readManifest(dl);
    const file = join(dl, manifest.files[0]?.path ?? "");
    const data = await readFile(file);
    data[data.length >> 1] = (data[data.length >> 1] ?? 0) ^ 0xff;
    await writeFile(file, data);
    const payloadKey = w.transport.payloadKey("k", bytes);
    await w.inner.put(payloadKey, packArtifact(dl, manifest, bytes));
    const err = await bootstrap(w, "b").catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "ARTIFACT_INVALID")).toBe(true);
    expect((err as Error).message).toMatch(/checksum/);
    expect(await readdir(w.nodes)).toEqual([]);
    expect(await readdir(w.scratch)).toEqual([]);
  });

  it("a failed pointer publish leaves the previous artifact bootstrappable", async () => {
    const w = await world();
    const fold = await foldWith(5);
    await publish(w, fold);
    await advance(fold, 9);
    w.store.hook = (op) => {
      if (op === "conditionalPut") throw new SlipstreamError("BACKEND", "injected: connection reset");
    };
    await expect(publish(w, fold)).rejects.toMatchObject({ code: "BACKEND" });
    w.store.hook = () => {};
    const b = await bootstrap(w, "b");
    expect(b.cursor.revision).toBe(5n);
  });

  it("a stalled pointer publish times out and leaves the previous artifact bootstrappable", async () => {
    const w = await world({ timeoutMs: 300 });
    const fold = await foldWith(5);
    await publish(w, fold);
    await advance(fold, 9);
    w.store.hook = (op, _key, signal) => (op === "conditionalPut" ? stallUntilAborted(signal) : undefined);
    await expect(publish(w, fold)).rejects.toMatchObject({ code: "TIMEOUT" });
    w.store.hook = () => {};
    expect((await bootstrap(w, "b")).cursor.revision).toBe(5n);
  });

  it("a crash between payload upload and pointer publish leaves a harmless orphan, pruned after the next publish", async () => {
    const w = await world();
    const fold = await foldWith(5);
    await publish(w, fold);
    await advance(fold, 9);
    w.store.hook = (op) => {
      if (op === "conditionalPut") throw new Error("process killed");
    };
    await expect(publish(w, fold)).rejects.toThrow(/process killed/);
    w.store.hook = () => {};
    const payloads = async () => {
      const out: string[] = [];
      for await (const i of w.inner.list("artifacts/k.payloads/")) out.push(i.key.replace(/^.*\//, "").slice(0, 16));
      return out.sort();
    };
    expect(await payloads()).toEqual(["0000000000000005", "0000000000000009"]);
    expect((await bootstrap(w, "b")).cursor.revision).toBe(5n);
    expect(await w.transport.prune("k", 0)).toEqual([]);
    await advance(fold, 12);
    await publish(w, fold);
    await new Promise((r) => setTimeout(r, 10));
    await w.transport.prune("k", 0);
    expect(await payloads()).toEqual(["000000000000000c"]);
    expect((await bootstrap(w, "c")).cursor.revision).toBe(12n);
  });

  it("a payload download that stops making progress times out with nothing at the destination", async () => {
    const w = await world({ timeoutMs: 300, trickle: true });
    await publish(w, await foldWith(50));
    const err = await bootstrap(w, "b").catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "TIMEOUT")).toBe(true);
    expect((err as Error).message).toMatch(/stalled/);
    expect(await readdir(w.nodes)).toEqual([]);
    expect(await readdir(w.scratch)).toEqual([]);
  });

  it("aborting a download mid-stream rejects with ABORTED and leaves nothing behind", async () => {
    const w = await world({ trickle: true });
    await publish(w, await foldWith(50));
    const ctl = new AbortController();
    const dest = join(w.root, "dl");
    const err = await w.transport
      .download("k", dest, {
        signal: ctl.signal,
        onProgress: (p) => {
          if (p.bytesDone > 0) ctl.abort();
        },
      })
      .catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "ABORTED")).toBe(true);
    expect((await readdir(w.root)).sort()).toEqual(["nodes", "remote", "scratch"]);
    expect(await readdir(w.scratch)).toEqual([]);
  });

  it("a pointer that loses every conditional-write race gives up after 8 attempts with BACKEND", async () => {
    const w = await world();
    const dir = join(w.root, "a");
    await makeTestArtifact(dir, { revision: 3n });
    let n = 0;
    w.store.hook = async (op, key) => {
      if (op !== "conditionalPut") return;
      n++;
      // Another writer slips in first every time (a corrupt pointer, which we may replace).
      await w.inner.put(
        key,
        (async function* () {
          yield new TextEncoder().encode(`garbage ${n}`);
        })(),
      );
    };
    await w.inner.put(
      w.transport.pointerKey("k"),
      (async function* () {
        yield new TextEncoder().encode("garbage 0");
      })(),
    );
    await expect(w.transport.upload("k", dir)).rejects.toMatchObject({ code: "BACKEND", message: /lost 8/ });
    expect(n).toBe(8);
  });

  it("concurrent uploads of many cursors leave the pointer at the newest", async () => {
    const w = await world();
    const revs = [4n, 9n, 2n, 7n, 12n, 5n, 11n, 3n];
    await Promise.all(revs.map((r) => makeTestArtifact(join(w.root, `a${r}`), { revision: r })));
    const results = await Promise.all(revs.map((r) => w.transport.upload("k", join(w.root, `a${r}`))));
    for (const r of results) expect(["published", "superseded"]).toContain(r.outcome);
    expect(results.find((r) => r.cursor.revision === 12n)?.outcome).toBe("published");
    expect((await w.transport.manifest("k")).cursor.revision).toBe(12n);
    expect((await bootstrapRaw(w)).cursor.revision).toBe(12n);
  });

  it("refuses before any remote call: a non-empty destination, an artifact with undeclared or missing files", async () => {
    const w = await world();
    await mkdir(join(w.root, "busy"));
    await writeFile(join(w.root, "busy", "x"), "x");
    await expect(w.transport.download("k", join(w.root, "busy"))).rejects.toMatchObject({
      code: "ARTIFACT_INVALID",
      message: /not empty/,
    });
    const extra = join(w.root, "extra");
    await makeTestArtifact(extra, { revision: 1n });
    await writeFile(join(extra, "data", "smuggled"), "x");
    await expect(w.transport.upload("k", extra)).rejects.toMatchObject({
      code: "ARTIFACT_INVALID",
      message: /undeclared/,
    });
    const noManifest = join(w.root, "nomanifest");
    await mkdir(noManifest);
    await expect(w.transport.upload("k", noManifest)).rejects.toMatchObject({
      code: "ARTIFACT_INVALID",
      message: new RegExp(`no ${MANIFEST_FILE}`),
    });
    await expect(
      importRemote({
        transport: w.transport,
        key: "k",
        scratchDir: w.scratch,
        destDir: join(w.root, "busy"),
        open: (a, d) => MemorySnapshotStore.import(a, d),
      }),
    ).rejects.toMatchObject({ code: "ARTIFACT_INVALID", message: /not empty/ });
    expect(w.store.calls).toEqual([]);
  });
});

async function bootstrapRaw(w: Awaited<ReturnType<typeof world>>) {
  const dest = join(w.root, "raw");
  return w.transport.download("k", dest);
}
