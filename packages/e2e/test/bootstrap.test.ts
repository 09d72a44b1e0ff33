import { readdir, rm } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { SlipstreamError } from "@slipstream/core";
import { MemorySnapshotStore } from "@slipstream/fold";
import { LevelSnapshotStore } from "@slipstream/snapshot-leveldb";
import { waitFor } from "@slipstream/testkit";
import {
  ArtifactTransport,
  defaultExporter,
  describeArtifacts,
  FaultInjectingBlobStore,
  importRemote,
  runExportRound,
} from "@slipstream/transport";
import { FsBlobStore } from "@slipstream/transport-fs";
import { describe, expect, it } from "vitest";
import { bucketState, foldState, keys, putRoutes, revisions, startNode, useLiveNats } from "./helpers.js";

const live = useLiveNats("slipstream-e2e-");
let n = 0;

async function fixture() {
  n += 1;
  const kv = await live.conn.store({ name: `routes_${n}`, history: 1 });
  const leases = await live.conn.store({ name: `leases_${n}`, history: 1 });
  const root = join(live.tmp.path, `case-${n}`);
  const blobs = new FsBlobStore(join(root, "blobs"));
  const transport = new ArtifactTransport(blobs, { prefix: "slipstream-artifacts" });
  return { kv, leases, root, blobs, transport };
}

async function isEmptyOrMissing(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length === 0;
  } catch {
    return true;
  }
}

describe("export → bootstrap → resume, live", () => {
  it("node B bootstraps from node A's artifact and receives only the tail", async () => {
    const { kv, leases, root, transport } = await fixture();
    const seeded = await putRoutes(kv, 0, 12, "v1");
    const a = startNode("node-a", kv, await LevelSnapshotStore.open(join(root, "a")));
    await a.caughtUpTo(seeded);

    const round = await runExportRound({
      lease: a.lease(leases),
      ttlMs: 60_000,
      fold: a.watch,
      transport,
      key: "edge/us-east/latest",
      scratchDir: join(root, "scratch-a"),
    });
    expect(round.outcome).toBe("published");
    if (round.outcome === "skipped") throw new Error("unreachable");
    const exported = round.cursor.revision ?? 0n;
    expect(exported).toBeGreaterThanOrEqual(seeded);
    expect(await isEmptyOrMissing(join(root, "scratch-a"))).toBe(true);
    expect((await a.lease(leases).current())?.completedCursor?.equals(round.cursor)).toBe(true);

    // The tail: 6 puts (2 new keys, 4 overwrites) and 1 delete.
    await putRoutes(kv, 10, 6, "v2");
    const deleted = "route.3";
    await kv.writer.delete(deleted);
    const last = (await kv.status()).lastSeq;

    const storeB = await importRemote({
      transport,
      key: "edge/us-east/latest",
      scratchDir: join(root, "scratch-b"),
      destDir: join(root, "b"),
      open: (art, dest, hints) => LevelSnapshotStore.import(art, dest, hints),
    });
    expect(storeB.cursor.equals(round.cursor)).toBe(true);
    expect(await isEmptyOrMissing(join(root, "scratch-b"))).toBe(true);

    const b = startNode("node-b", kv, storeB);
    await b.caughtUpTo(last);
    expect(b.delivered).toHaveLength(7);
    expect(revisions(b.delivered)[0]).toBe(exported + 1n);
    expect(revisions(b.delivered).every((r) => r > exported)).toBe(true);
    expect(keys(b.delivered).at(-1)).toBe(deleted);
    expect(await b.store.get(deleted)).toBeUndefined();
    expect(await foldState(b.store)).toEqual(await bucketState(kv));
    await b.stop();

    // After a restart the fold resumes from its own cursor and receives nothing old.
    const reopened = await LevelSnapshotStore.open(join(root, "b"));
    expect(reopened.cursor.revision).toBe(last);
    const b2 = startNode("node-b", kv, reopened);
    await kv.writer.put("route.99", new TextEncoder().encode("fresh"));
    await b2.caughtUpTo(last + 1n);
    expect(keys(b2.delivered)).toEqual(["route.99"]);
    await b2.stop();
    await a.stop();
  });

  it("8 concurrent candidates produce exactly one export per round", async () => {
    const { kv, leases, root, blobs, transport } = await fixture();
    const last = await putRoutes(kv, 0, 20, "v1");
    const nodes = Array.from({ length: 8 }, (_, i) => startNode(`node-${i}`, kv, new MemorySnapshotStore()));
    for (const node of nodes) await node.caughtUpTo(last);

    const ttlMs = 1_500;
    const roundOnce = () =>
      Promise.all(
        nodes.map((node) =>
          runExportRound({
            lease: node.lease(leases),
            ttlMs,
            fold: node.watch,
            transport,
            key: "fleet",
            scratchDir: join(root, `scratch-${node.id}`),
          }),
        ),
      );
    const first = await roundOnce();
    expect(first.filter((r) => r.outcome === "published")).toHaveLength(1);
    expect(first.filter((r) => r.outcome === "skipped")).toHaveLength(7);
    // The lease holds for the round period: an immediate second round exports nothing.
    const again = await roundOnce();
    expect(again.every((r) => r.outcome === "skipped")).toBe(true);

    const last2 = await putRoutes(kv, 20, 5, "v2");
    for (const node of nodes) await node.caughtUpTo(last2);
    await new Promise((r) => setTimeout(r, ttlMs + 100));
    const second = await roundOnce();
    const published = second.filter((r) => r.outcome === "published");
    expect(published).toHaveLength(1);
    expect(second.filter((r) => r.outcome === "skipped")).toHaveLength(7);

    const payloads: string[] = [];
    for await (const o of blobs.list("slipstream-artifacts/fleet.payloads/")) payloads.push(o.key);
    expect(payloads).toHaveLength(2);
    expect((await transport.manifest("fleet")).cursor.revision).toBe(last2);
    for (const node of nodes) await node.stop();
  });

  it("a slow exporter whose lease expired cannot move the pointer backwards", async () => {
    const { kv, leases, root, blobs, transport } = await fixture();
    const c1 = await putRoutes(kv, 0, 10, "v1");
    const a = startNode("node-a", kv, new MemorySnapshotStore());
    const b = startNode("node-b", kv, new MemorySnapshotStore());
    await a.caughtUpTo(c1);
    await b.caughtUpTo(c1);

    // A's payload upload stalls until released; meanwhile its 300 ms lease expires.
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const slowStore = new FaultInjectingBlobStore(blobs, async (op) => {
      if (op === "put") await released;
    });
    const slowTransport = new ArtifactTransport(slowStore, { prefix: "slipstream-artifacts" });
    const aRound = runExportRound({
      lease: a.lease(leases),
      ttlMs: 300,
      fold: a.watch,
      transport: slowTransport,
      key: "routes",
      scratchDir: join(root, "scratch-a"),
    });
    await waitFor(() => slowStore.calls.some((c) => c.startsWith("put ")), {
      timeoutMs: 10_000,
      message: "node A never started its upload",
    });

    const c2 = await putRoutes(kv, 10, 5, "v2");
    await b.caughtUpTo(c2);
    await new Promise((r) => setTimeout(r, 400));
    const bRound = await runExportRound({
      lease: b.lease(leases),
      ttlMs: 60_000,
      fold: b.watch,
      transport,
      key: "routes",
      scratchDir: join(root, "scratch-b"),
    });
    expect(bRound.outcome).toBe("published");
    expect((await transport.manifest("routes")).cursor.revision).toBe(c2);

    release();
    const aResult = await aRound;
    expect(aResult.outcome).toBe("superseded");
    if (aResult.outcome === "skipped") throw new Error("unreachable");
    expect(aResult.cursor.revision).toBe(c1);
    expect((await transport.manifest("routes")).cursor.revision).toBe(c2);
    // A's late completion must not clobber B's lease record.
    expect((await b.lease(leases).current())?.holder).toBe("node-b");
    await a.stop();
    await b.stop();
  });

  it("a crash between payload upload and pointer publish leaves the previous artifact bootstrappable", async () => {
    const { kv, leases, root, blobs, transport } = await fixture();
    const c1 = await putRoutes(kv, 0, 10, "v1");
    const a = startNode("node-a", kv, await LevelSnapshotStore.open(join(root, "a")));
    await a.caughtUpTo(c1);
    const r1 = await runExportRound({
      lease: a.lease(leases),
      ttlMs: 60_000,
      fold: a.watch,
      transport,
      key: "routes",
      scratchDir: join(root, "scratch-a"),
    });
    expect(r1.outcome).toBe("published");

    const c2 = await putRoutes(kv, 5, 10, "v2");
    await kv.writer.delete("route.0");
    await a.caughtUpTo(c2 + 1n);
    const crashing = new FaultInjectingBlobStore(blobs, (op) => {
      if (op === "conditionalPut") throw new SlipstreamError("BACKEND", "simulated crash before the pointer publish");
    });
    // A fresh lease key: the first one is held for its 60 s period.
    const err = await runExportRound({
      lease: a.lease(leases, "export.round2"),
      ttlMs: 60_000,
      fold: a.watch,
      transport: new ArtifactTransport(crashing, { prefix: "slipstream-artifacts" }),
      key: "routes",
      scratchDir: join(root, "scratch-a2"),
    }).catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "BACKEND")).toBe(true);
    expect(crashing.calls.some((c) => c.startsWith("put slipstream-artifacts/routes.payloads/"))).toBe(true);
    expect(await isEmptyOrMissing(join(root, "scratch-a2"))).toBe(true);
    // The failed round abandoned its lease: another node may run the next round at once.
    expect(await a.lease(leases, "export.round2").current()).toBeUndefined();

    // The orphan payload exists, the pointer still names round 1.
    const payloads: string[] = [];
    for await (const o of blobs.list("slipstream-artifacts/routes.payloads/")) payloads.push(o.key);
    expect(payloads).toHaveLength(2);
    expect((await transport.manifest("routes")).cursor.revision).toBe(
      r1.outcome === "skipped" ? -1n : r1.cursor.revision,
    );

    const storeC = await importRemote({
      transport,
      key: "routes",
      scratchDir: join(root, "scratch-c"),
      destDir: join(root, "c"),
      open: (art, dest) => LevelSnapshotStore.import(art, dest),
    });
    expect(storeC.cursor.revision).toBe(c1);
    const c = startNode("node-c", kv, storeC);
    await c.caughtUpTo(c2 + 1n);
    expect(await foldState(c.store)).toEqual(await bucketState(kv));
    expect(revisions(c.delivered).every((r) => r > c1)).toBe(true);
    await c.stop();
    await a.stop();
  });

  it("a tampered remote artifact never becomes a fold", async () => {
    const { kv, root, blobs, transport } = await fixture();
    const c1 = await putRoutes(kv, 0, 5, "v1");
    const a = startNode("node-a", kv, await LevelSnapshotStore.open(join(root, "a")));
    await a.caughtUpTo(c1);
    await a.watch.requestExport(join(root, "art"));
    expect((await transport.upload("routes", join(root, "art"))).outcome).toBe("published");
    await rm(join(root, "art"), { recursive: true });

    // Flip one byte inside the payload tar (in a data file, not the embedded manifest).
    const [payload] = await (async () => {
      const out: string[] = [];
      for await (const o of blobs.list("slipstream-artifacts/routes.payloads/")) out.push(o.key);
      return out;
    })();
    const body = await blobs.get(payload as string);
    const chunks: Buffer[] = [];
    for await (const chunk of body?.body ?? []) chunks.push(Buffer.from(chunk));
    const tar = Buffer.concat(chunks);
    const at = tar.indexOf(Buffer.from("v1-3"));
    expect(at).toBeGreaterThan(0);
    tar[at + 3] = "9".charCodeAt(0);
    await blobs.put(
      payload as string,
      (async function* () {
        yield new Uint8Array(tar);
      })(),
    );

    const err = await importRemote({
      transport,
      key: "routes",
      scratchDir: join(root, "scratch"),
      destDir: join(root, "b"),
      open: (art, dest, hints) => LevelSnapshotStore.import(art, dest, hints),
    }).catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "ARTIFACT_INVALID")).toBe(true);
    expect(await isEmptyOrMissing(join(root, "b"))).toBe(true);
    expect(await isEmptyOrMissing(join(root, "scratch"))).toBe(true);
    await a.stop();
  });
});

describe("the exporter recorded by an export round", () => {
  it("is <host>:<pid> by default, the given string when set, absent with false; a bad one is refused before the lease", async () => {
    const { kv, leases, root, blobs, transport } = await fixture();
    const last = await putRoutes(kv, 0, 5, "v1");
    const a = startNode("node-a", kv, await LevelSnapshotStore.open(join(root, "a")));
    await a.caughtUpTo(last);
    const round = (lease: string, exporter?: string | false) =>
      runExportRound({
        lease: a.lease(leases, lease),
        ttlMs: 60_000,
        fold: a.watch,
        transport,
        key: `routes-${lease}`,
        scratchDir: join(root, "scratch"),
        ...(exporter !== undefined ? { exporter } : {}),
      });

    const byDefault = await round("r1");
    if (byDefault.outcome === "skipped") throw new Error("expected to win the lease");
    expect(byDefault.manifest.exporter).toBe(`${hostname()}:${process.pid}`);
    expect(defaultExporter()).toBe(`${hostname()}:${process.pid}`);
    const named = await round("r2", "edge-7 (eu-west)");
    if (named.outcome === "skipped") throw new Error("expected to win the lease");
    expect(named.manifest.exporter).toBe("edge-7 (eu-west)");
    const none = await round("r3", false);
    if (none.outcome === "skipped") throw new Error("expected to win the lease");
    expect(none.manifest.exporter).toBeUndefined();

    // What an operator sees: the published pointer names its exporter.
    const catalog = await describeArtifacts(blobs, { prefix: "slipstream-artifacts" });
    expect(catalog.map((e) => [e.key, e.pointer?.exporter])).toEqual([
      ["routes-r1", `${hostname()}:${process.pid}`],
      ["routes-r2", "edge-7 (eu-west)"],
      ["routes-r3", undefined],
    ]);

    const err = await round("r4", "two\nlines").catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "INVALID_ARGUMENT")).toBe(true);
    expect((err as Error).message).toMatch(/exporter .* contains a control/);
    expect(await a.lease(leases, "r4").current()).toBeUndefined();
    expect((await describeArtifacts(blobs, { prefix: "slipstream-artifacts" })).map((e) => e.key)).not.toContain(
      "routes-r4",
    );
    await a.stop();
  });
});
