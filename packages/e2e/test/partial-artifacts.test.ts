/**
 * Partial artifacts and the import guard, live: a node that watches only `route.eu.`
 * bootstraps from an artifact of a wider scope (keeping only its prefixes) and resumes with
 * its own scope; an artifact that does not cover a node is refused; an import that would
 * replace a fold with a far smaller one is refused unless the hook allows it.
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { type KvUpdate, type MassDeleteInfo, SlipstreamError, type WatchScope } from "@slipstream/core";
import type { NatsKvStore } from "@slipstream/nats";
import { LevelSnapshotStore } from "@slipstream/snapshot-leveldb";
import { ArtifactTransport, type ImportRemoteOptions, importRemote, runExportRound } from "@slipstream/transport";
import { FsBlobStore } from "@slipstream/transport-fs";
import { describe, expect, it } from "vitest";
import { bucketState, foldState, keys, revisions, startNode, useLiveNats } from "./helpers.js";

const live = useLiveNats("slipstream-e2e-partial-");
let n = 0;

const enc = new TextEncoder();
const EU: WatchScope = { kind: "prefix", prefix: "route.eu." };

async function fixture() {
  n += 1;
  const kv = await live.conn.store({ name: `partial_${n}`, history: 1 });
  const leases = await live.conn.store({ name: `partial_leases_${n}`, history: 1 });
  const root = join(live.tmp.path, `case-${n}`);
  const transport = new ArtifactTransport(new FsBlobStore(join(root, "blobs")), { prefix: "slipstream-artifacts" });
  return { kv, leases, root, transport };
}

/** `importRemote` into a LevelSnapshotStore (its verified import), with `extra` options (scope, replace). */
function importLevel(
  transport: ArtifactTransport,
  key: string,
  scratchDir: string,
  destDir: string,
  extra: Partial<ImportRemoteOptions<LevelSnapshotStore>> = {},
): Promise<LevelSnapshotStore> {
  return importRemote<LevelSnapshotStore>({
    transport,
    key,
    scratchDir,
    destDir,
    open: (art, dest, hints) => LevelSnapshotStore.import(art, dest, hints),
    ...extra,
  });
}

/** One export round of `node` under `key` (lease `leaseName`, scratch `root/scratch`). */
function exportRound(
  node: ReturnType<typeof startNode>,
  env: { leases: NatsKvStore; transport: ArtifactTransport; root: string },
  key: string,
  scratch: string,
  opts: { scope?: WatchScope; leaseName?: string } = {},
) {
  return runExportRound({
    lease: opts.leaseName === undefined ? node.lease(env.leases) : node.lease(env.leases, opts.leaseName),
    ttlMs: 60_000,
    fold: node.watch,
    transport: env.transport,
    key,
    ...(opts.scope !== undefined ? { scope: opts.scope } : {}),
    scratchDir: join(env.root, scratch),
  });
}

/** route.eu.0..9, route.us.0..9, svc.0..4; returns the last revision. */
async function seed(kv: NatsKvStore): Promise<bigint> {
  let last = 0n;
  for (const [prefix, count] of [
    ["route.eu.", 10],
    ["route.us.", 10],
    ["svc.", 5],
  ] as const) {
    for (let i = 0; i < count; i++)
      last = (await kv.writer.put(`${prefix}${i}`, enc.encode(`v1-${prefix}${i}`))).revision ?? last;
  }
  return last;
}

function within(state: Map<string, string>, prefix: string): Map<string, string> {
  return new Map([...state].filter(([k]) => k.startsWith(prefix)));
}

async function isEmptyOrMissing(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length === 0;
  } catch {
    return true;
  }
}

async function stages(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.startsWith(".slipstream-"));
}

describe("partial artifacts, live", () => {
  it("a route.eu. node bootstraps from a whole-bucket artifact, keeps only its keys and receives exactly its tail", async () => {
    const { kv, leases, root, transport } = await fixture();
    const seeded = await seed(kv);
    const a = startNode("node-a", kv, await LevelSnapshotStore.open(join(root, "a")));
    await a.caughtUpTo(seeded);
    const round = await exportRound(a, { leases, transport, root }, "fleet/all", "scratch-a");
    if (round.outcome !== "published") throw new Error(`expected a publish, got ${round.outcome}`);
    expect(round.manifest.scope).toBeUndefined();
    const exported = round.cursor.revision ?? 0n;
    const atExport = await bucketState(kv);

    // The tail, in and out of the node's scope.
    const tail: KvUpdate["type"][] = [];
    await kv.writer.put("route.eu.1", enc.encode("v2-eu-1"));
    await kv.writer.put("route.us.1", enc.encode("v2-us-1"));
    await kv.writer.put("route.eu.new", enc.encode("v2-eu-new"));
    await kv.writer.delete("route.eu.2");
    await kv.writer.delete("route.us.3");
    await kv.writer.put("svc.9", enc.encode("v2-svc"));
    const last = (await kv.writer.put("route.eu.last", enc.encode("v2-eu-last"))).revision ?? 0n;
    tail.push("put", "put", "delete", "put");

    const storeB = await importLevel(transport, "fleet/all", join(root, "scratch-b"), join(root, "b"), {
      scope: EU,
    });
    expect(storeB.cursor.equals(round.cursor)).toBe(true);
    expect(storeB.scope).toEqual(["route.eu."]);
    expect(await foldState(storeB)).toEqual(within(atExport, "route.eu."));
    expect(await storeB.count()).toBe(10);
    expect(await isEmptyOrMissing(join(root, "scratch-b"))).toBe(true);
    expect(await stages(root)).toEqual([]);

    const b = startNode("node-b", kv, storeB, EU);
    await b.caughtUpTo(last);
    // Only its scope, and all of it: the 4 eu updates of the tail, in order, all after the export.
    expect(keys(b.delivered)).toEqual(["route.eu.1", "route.eu.new", "route.eu.2", "route.eu.last"]);
    expect(b.delivered.map((u) => u.type)).toEqual(tail);
    expect(revisions(b.delivered).every((r) => r > exported)).toBe(true);
    expect(await foldState(b.store)).toEqual(within(await bucketState(kv), "route.eu."));
    await b.stop();

    // After a restart: same scope, same cursor, nothing redelivered, only eu changes.
    const reopened = await LevelSnapshotStore.open(join(root, "b"));
    expect(reopened.scope).toEqual(["route.eu."]);
    expect(reopened.cursor.revision).toBe(last);
    expect(await reopened.count()).toBe((await foldState(reopened)).size);
    // Watching a wider scope from this fold would miss keys it never held: refused.
    expect(() => startNode("node-b-wide", kv, reopened, { kind: "prefix", prefix: "route." })).toThrow(
      expect.objectContaining({ code: "SCOPE_NOT_COVERED" }),
    );
    const b2 = startNode("node-b", kv, reopened, EU);
    await kv.writer.put("route.us.fresh", enc.encode("x"));
    const fresh = (await kv.writer.put("route.eu.fresh", enc.encode("x"))).revision ?? 0n;
    await b2.caughtUpTo(fresh);
    expect(keys(b2.delivered)).toEqual(["route.eu.fresh"]);
    await b2.stop();
    await a.stop();
  });

  it("a scoped export round publishes only its prefixes; a node it does not cover is refused with nothing written", async () => {
    const { kv, leases, root, transport } = await fixture();
    const seeded = await seed(kv);
    const a = startNode("node-a", kv, await LevelSnapshotStore.open(join(root, "a")));
    await a.caughtUpTo(seeded);
    const round = await exportRound(a, { leases, transport, root }, "fleet/eu", "scratch-a", { scope: EU });
    if (round.outcome !== "published") throw new Error(`expected a publish, got ${round.outcome}`);
    expect(round.manifest.scope).toEqual(["route.eu."]);
    expect((await transport.manifest("fleet/eu")).scope).toEqual(["route.eu."]);
    expect(round.cursor.revision).toBe(seeded);

    for (const scope of [undefined, { kind: "prefix", prefix: "route." } as WatchScope]) {
      const dest = join(root, "wide");
      const err = await importLevel(transport, "fleet/eu", join(root, "scratch-wide"), dest, {
        ...(scope ? { scope } : {}),
      }).catch((e: unknown) => e);
      expect(SlipstreamError.is(err, "SCOPE_NOT_COVERED"), String(err)).toBe(true);
      expect(await isEmptyOrMissing(dest)).toBe(true);
      expect(await isEmptyOrMissing(join(root, "scratch-wide"))).toBe(true);
      expect(await stages(root)).toEqual([]);
    }

    // The scoped artifact holds exactly the eu keys at the export; a narrower node keeps fewer.
    const eu = await importLevel(transport, "fleet/eu", join(root, "scratch-eu"), join(root, "eu"), {
      scope: EU,
    });
    expect(await foldState(eu)).toEqual(within(await bucketState(kv), "route.eu."));
    expect(eu.cursor.revision).toBe(seeded);
    await eu.close();
    const one = await importLevel(transport, "fleet/eu", join(root, "scratch-one"), join(root, "one"), {
      scope: { kind: "prefix", prefix: "route.eu.1" },
    });
    expect([...(await foldState(one)).keys()]).toEqual(["route.eu.1"]);
    expect(await one.count()).toBe(1);
    await one.close();
    await a.stop();
  });
});

describe("a partial fold after retention evicted its gap, live", () => {
  it("resyncs within its own scope: the vanished eu key is deleted, no key of another scope appears", async () => {
    n += 1;
    const kv = await live.conn.store({ name: `partial_evict_${n}`, maxBytes: 16 * 1024, discard: "old" });
    const leases = await live.conn.store({ name: `partial_evict_leases_${n}`, history: 1 });
    const root = join(live.tmp.path, `case-${n}`);
    const transport = new ArtifactTransport(new FsBlobStore(join(root, "blobs")));
    await kv.writer.put("route.eu.a", enc.encode("a1"));
    await kv.writer.put("route.eu.gone", enc.encode("g1"));
    await kv.writer.put("route.us.x", enc.encode("x1"));
    const seeded = (await kv.writer.put("route.us.y", enc.encode("y1"))).revision ?? 0n;
    const a = startNode("node-a", kv, await LevelSnapshotStore.open(join(root, "a")));
    await a.caughtUpTo(seeded);
    const round = await exportRound(a, { leases, transport, root }, "fleet/all", "scratch-a");
    expect(round.outcome).toBe("published");
    await a.stop();
    const store = await importLevel(transport, "fleet/all", join(root, "scratch-b"), join(root, "b"), {
      scope: EU,
    });
    expect([...(await foldState(store)).keys()]).toEqual(["route.eu.a", "route.eu.gone"]);

    // The gap: an eu delete, then us filler that evicts the head of the log, then eu writes.
    await kv.writer.delete("route.eu.gone");
    const filler = new Uint8Array(1500).fill(120);
    for (let i = 0; i < 30; i++) await kv.writer.put(`route.us.filler.${i}`, filler);
    await kv.writer.put("route.eu.a", enc.encode("a2"));
    const last = (await kv.writer.put("route.eu.new", enc.encode("n1"))).revision ?? 0n;
    expect((await kv.status()).firstSeq > seeded + 1n).toBe(true); // the gap is really gone

    const b = startNode("node-b", kv, store, EU);
    await b.caughtUpTo(last);
    expect(b.watch.stats.resyncs).toBe(1);
    expect(b.watch.stats.syntheticDeletes).toBe(1);
    expect(await foldState(b.store)).toEqual(within(await bucketState(kv), "route.eu."));
    expect(await foldState(b.store)).toEqual(
      new Map([
        ["route.eu.a", "a2"],
        ["route.eu.new", "n1"],
      ]),
    );
    expect(await (b.store as LevelSnapshotStore).count()).toBe(2);
    await b.stop();
  });
});

describe("import guard: replacing a fold with an artifact", () => {
  /** A LevelDB fold of `count` keys `route.<i>` at `dir`, folded from `kv`. */
  async function foldOf(kv: NatsKvStore, dir: string, upTo: bigint) {
    const node = startNode(`fold-${dir}`, kv, await LevelSnapshotStore.open(dir));
    await node.caughtUpTo(upTo);
    await node.watch.stop();
    return node.store as LevelSnapshotStore;
  }

  async function putMany(kv: NatsKvStore, count: number, tag: string): Promise<bigint> {
    let last = 0n;
    for (let i = 0; i < count; i++)
      last = (await kv.writer.put(`route.${i}`, enc.encode(`${tag}-${i}`))).revision ?? last;
    return last;
  }

  it("refuses an artifact that holds far fewer keys (MASS_DELETE_REFUSED, fold untouched, nothing left), replaces when the hook allows", async () => {
    const { kv, leases, root, transport } = await fixture();
    // The node's fold: 300 keys.
    const big = await putMany(kv, 300, "v1");
    const current = await foldOf(kv, join(root, "node"), big);
    const before = await foldState(current);
    const cursorBefore = current.cursor;
    // A bucket that was wrongly recreated holds 20 keys; its artifact is published.
    const small = await live.conn.store({ name: `partial_small_${n}`, history: 1 });
    const last = await putMany(small, 20, "v2");
    const exporter = startNode("exporter", small, await LevelSnapshotStore.open(join(root, "exporter")));
    await exporter.caughtUpTo(last);
    const round = await exportRound(exporter, { leases, transport, root }, "fleet/recreated", "scratch-x");
    expect(round.outcome).toBe("published");
    await exporter.stop();

    const seen: MassDeleteInfo[] = [];
    const attempt = (allow: boolean) =>
      importLevel(transport, "fleet/recreated", join(root, "scratch"), join(root, "node"), {
        replace: {
          current,
          reopen: (dir) => LevelSnapshotStore.open(dir),
          massDelete: {
            onMassDelete: (info) => {
              seen.push(info);
              return allow;
            },
          },
        },
      });
    const err = await attempt(false).catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "MASS_DELETE_REFUSED"), String(err)).toBe(true);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ source: "import", deletes: 280, foldKeys: 300, liveKeys: 20 });
    // The current fold is as it was, still open and usable; nothing was left behind.
    expect(await foldState(current)).toEqual(before);
    expect(current.cursor.equals(cursorBefore)).toBe(true);
    expect(await stages(root)).toEqual([]);
    expect(await isEmptyOrMissing(join(root, "scratch"))).toBe(true);

    const replaced = await attempt(true);
    expect(seen).toHaveLength(2);
    expect(replaced.directory).toBe(join(root, "node"));
    expect(replaced.cursor.equals(round.outcome === "published" ? round.cursor : cursorBefore)).toBe(true);
    expect(await replaced.count()).toBe(20);
    expect(await foldState(replaced)).toEqual(await bucketState(small));
    expect(await stages(root)).toEqual([]);
    await replaced.close();
  });

  it("a route.eu. node counts only its scope: a wide artifact with few eu keys is refused, one that does not cover it too", async () => {
    const { kv, leases, root, transport } = await fixture();
    for (let i = 0; i < 200; i++) await kv.writer.put(`route.eu.${i}`, enc.encode("v1"));
    const c1 = (await kv.writer.put("route.us.0", enc.encode("v1"))).revision ?? 0n;
    const a = startNode("node-a", kv, await LevelSnapshotStore.open(join(root, "a")));
    await a.caughtUpTo(c1);
    await exportRound(a, { leases, transport, root }, "fleet/all", "scratch-a");
    const current = await importLevel(transport, "fleet/all", join(root, "scratch"), join(root, "eu"), {
      scope: EU,
    });
    expect(await current.count()).toBe(200);
    const before = await foldState(current);

    // The bucket loses 150 eu keys and gains 500 us keys: the wide artifact grows, the eu part shrinks.
    for (let i = 0; i < 150; i++) await kv.writer.delete(`route.eu.${i}`);
    for (let i = 1; i <= 500; i++) await kv.writer.put(`route.us.${i}`, enc.encode("v2"));
    const c2 = (await kv.writer.put("route.us.last", enc.encode("v2"))).revision ?? 0n;
    await a.caughtUpTo(c2);
    const round = await exportRound(a, { leases, transport, root }, "fleet/all", "scratch-a", {
      leaseName: "export.second",
    });
    expect(round.outcome).toBe("published");
    const seen: MassDeleteInfo[] = [];
    const err = await importLevel(transport, "fleet/all", join(root, "scratch"), join(root, "eu"), {
      scope: EU,
      replace: {
        current,
        reopen: (dir) => LevelSnapshotStore.open(dir),
        massDelete: { onMassDelete: (info) => seen.push(info) < 0 },
      },
    }).catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "MASS_DELETE_REFUSED"), String(err)).toBe(true);
    expect(seen[0]).toMatchObject({ source: "import", deletes: 150, foldKeys: 200, liveKeys: 50 });
    expect(await foldState(current)).toEqual(before);

    // An artifact of us keys only does not cover the eu node: refused before any swap.
    await exportRound(a, { leases, transport, root }, "fleet/us", "scratch-a", {
      scope: { kind: "prefix", prefix: "route.us." },
      leaseName: "export.us",
    });
    const notCovered = await importLevel(transport, "fleet/us", join(root, "scratch"), join(root, "eu"), {
      scope: EU,
      replace: { current, reopen: (dir) => LevelSnapshotStore.open(dir) },
    }).catch((e: unknown) => e);
    expect(SlipstreamError.is(notCovered, "SCOPE_NOT_COVERED"), String(notCovered)).toBe(true);
    expect(await foldState(current)).toEqual(before);
    expect(await stages(root)).toEqual([]);
    expect(await isEmptyOrMissing(join(root, "scratch"))).toBe(true);
    await current.close();
    await a.stop();
  });

  it("replaces without asking when the artifact is not much smaller, and refuses by default (no hook)", async () => {
    const { kv, leases, root, transport } = await fixture();
    const c1 = await putMany(kv, 150, "v1");
    const current = await foldOf(kv, join(root, "node"), c1);
    // Another node's artifact, 120 of the same keys later (30 deleted): 20 % fewer, allowed.
    for (let i = 120; i < 150; i++) await kv.writer.delete(`route.${i}`);
    const c2 = await putMany(kv, 10, "v2");
    const other = startNode("other", kv, await LevelSnapshotStore.open(join(root, "other")));
    await other.caughtUpTo(c2);
    const round = await exportRound(other, { leases, transport, root }, "fleet/all", "scratch-o");
    expect(round.outcome).toBe("published");
    await other.stop();
    let asked = 0;
    const replaced = await importLevel(transport, "fleet/all", join(root, "scratch"), join(root, "node"), {
      replace: {
        current,
        reopen: (dir) => LevelSnapshotStore.open(dir),
        massDelete: { onMassDelete: () => ++asked > 0 },
      },
    });
    expect(asked).toBe(0);
    expect(await replaced.count()).toBe(120);
    expect(await foldState(replaced)).toEqual(await bucketState(kv));
    expect(replaced.cursor.revision).toBe(c2);

    // With the default guard and no hook, a 3-key artifact replacing 120 keys is refused.
    const tiny = await live.conn.store({ name: `partial_tiny_${n}`, history: 1 });
    const t = await putMany(tiny, 3, "t");
    const exporter = startNode("tiny", tiny, await LevelSnapshotStore.open(join(root, "tiny")));
    await exporter.caughtUpTo(t);
    await exportRound(exporter, { leases, transport, root }, "fleet/tiny", "scratch-t", { leaseName: "export.tiny" });
    await exporter.stop();
    const before = await foldState(replaced);
    const err = await importLevel(transport, "fleet/tiny", join(root, "scratch"), join(root, "node"), {
      replace: { current: replaced, reopen: (dir) => LevelSnapshotStore.open(dir) },
    }).catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "MASS_DELETE_REFUSED"), String(err)).toBe(true);
    expect(await foldState(replaced)).toEqual(before);
    expect(await stages(root)).toEqual([]);
    await replaced.close();
  });
});
