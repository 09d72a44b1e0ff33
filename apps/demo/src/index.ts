/**
 * The slipstream demo: a fleet of two nodes and a bucket, end to end.
 *
 * 1. starts a throwaway nats-server with JetStream (loopback, temp dir);
 * 2. seeds a KV bucket of routes;
 * 3. node A folds the bucket into LevelDB with watchApplied;
 * 4. node A wins the export lease, exports a verified artifact and publishes it to a
 *    filesystem "object store";
 * 5. the bucket keeps changing;
 * 6. node B bootstraps from the artifact and resumes: it receives only the tail;
 * 7. node A restarts and resumes from its own cursor: again only what changed.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { KvUpdate, SnapshotStore } from "@slipstream/core";
import { type AppliedWatch, watchApplied } from "@slipstream/fold";
import { ExportLease } from "@slipstream/lease";
import { connect, type NatsKvStore } from "@slipstream/nats";
import { LevelSnapshotStore } from "@slipstream/snapshot-leveldb";
import { startNats, waitFor } from "@slipstream/testkit";
import { ArtifactTransport, importRemote, runExportRound } from "@slipstream/transport";
import { FsBlobStore } from "@slipstream/transport-fs";
import { progressBar } from "./progress.js";

const ROUTES = Number(process.env.DEMO_ROUTES ?? 5_000);
const TAIL_PUTS = 200;
const TAIL_DELETES = 50;
const enc = new TextEncoder();

function step(n: number, text: string): void {
  console.log(`\n[${n}/7] ${text}`);
}

function fold(kv: NatsKvStore, store: SnapshotStore): { watch: AppliedWatch; received: () => number } {
  let received = 0;
  const watch = watchApplied<KvUpdate>({
    watcher: kv.watcher,
    reader: kv.reader,
    store,
    scope: { kind: "prefix", prefix: "route." },
    batch: { windowMs: 10, max: 1000 },
    parse: (u) => u,
    apply: (batch) => {
      received += batch.length;
    },
  });
  return { watch, received: () => received };
}

async function caughtUp(watch: AppliedWatch, revision: bigint): Promise<void> {
  await waitFor(() => (watch.cursor.revision ?? 0n) >= revision, {
    timeoutMs: 60_000,
    message: `fold did not reach revision ${revision}`,
  });
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), "slipstream-demo-"));
  const t0 = Date.now();
  step(1, "starting a throwaway nats-server with JetStream");
  const server = await startNats();
  const nc = await connect({ servers: server.url, name: "slipstream-demo" });
  console.log(`    nats-server ${server.version} on ${server.url}, store in a temp dir`);
  try {
    const kv = await nc.store({ name: "routes", history: 1, maxBytes: 64 * 1024 * 1024 });
    const leases = await nc.store({ name: "leases", history: 1 });

    step(2, `seeding bucket "routes" with ${ROUTES.toLocaleString()} routes`);
    const pending: Promise<unknown>[] = [];
    for (let i = 0; i < ROUTES; i++) {
      pending.push(kv.writer.put(`route.svc-${i % 100}.r${i}`, enc.encode(`upstream-${i}:8080`)));
      if (pending.length >= 500) await Promise.all(pending.splice(0));
    }
    await Promise.all(pending);
    const seeded = (await kv.status()).lastSeq;
    console.log(`    bucket at revision ${seeded}`);

    step(3, "node A folds the bucket into LevelDB (watchApplied: cursor after apply)");
    const storeA = await LevelSnapshotStore.open(join(work, "node-a"));
    let a = fold(kv, storeA);
    let t = Date.now();
    await caughtUp(a.watch, seeded);
    console.log(
      `    applied ${a.received().toLocaleString()} updates in ${Date.now() - t} ms; cursor ${a.watch.cursor}`,
    );

    step(4, "node A wins the export lease, exports and publishes an artifact");
    const transport = new ArtifactTransport(new FsBlobStore(join(work, "object-store")), { prefix: "artifacts" });
    const lease = new ExportLease({
      reader: leases.reader,
      writer: leases.writer,
      key: "export.routes",
      holderId: "node-a",
    });
    const up = progressBar("upload");
    const round = await runExportRound({
      lease,
      ttlMs: 60_000,
      fold: a.watch,
      transport,
      key: "routes/latest",
      scratchDir: join(work, "scratch-a"),
      onProgress: up.update,
    });
    up.done();
    if (round.outcome === "skipped") throw new Error("node A should have won the lease");
    console.log(`    ${round.outcome}: cursor ${round.cursor}, ${round.manifest.files.length} payload files`);
    const rival = new ExportLease({
      reader: leases.reader,
      writer: leases.writer,
      key: "export.routes",
      holderId: "node-b",
    });
    console.log(
      `    node B tries the same round: ${(await rival.tryAcquire(60_000)) ? "won (!)" : "lease held, skipped"}`,
    );
    // Node A goes down for a redeploy; its fold and cursor stay on disk.
    await a.watch.stop();
    await storeA.close();
    console.log(`    node A stops for a redeploy at cursor ${storeA.cursor}`);

    step(5, `the bucket keeps changing: ${TAIL_PUTS} puts and ${TAIL_DELETES} deletes`);
    for (let i = 0; i < TAIL_PUTS; i++)
      await kv.writer.put(`route.svc-${i % 100}.r${i}`, enc.encode(`moved-${i}:9090`));
    for (let i = 0; i < TAIL_DELETES; i++)
      await kv.writer.delete(`route.svc-${(ROUTES - 1 - i) % 100}.r${ROUTES - 1 - i}`);
    const head = (await kv.status()).lastSeq;
    console.log(`    bucket at revision ${head}`);

    step(6, "node B bootstraps from the artifact, then resumes from its cursor");
    const down = progressBar("download");
    t = Date.now();
    const storeB = await importRemote({
      transport,
      key: "routes/latest",
      scratchDir: join(work, "scratch-b"),
      destDir: join(work, "node-b"),
      open: (artifact, dest) => LevelSnapshotStore.import(artifact, dest),
      onProgress: down.update,
    });
    down.done();
    console.log(`    imported and verified at cursor ${storeB.cursor} in ${Date.now() - t} ms`);
    const b = fold(kv, storeB);
    await caughtUp(b.watch, head);
    console.log(
      `    node B received ${b.received()} updates (the tail is ${TAIL_PUTS + TAIL_DELETES}; a full replay would be ${(ROUTES + TAIL_PUTS + TAIL_DELETES).toLocaleString()})`,
    );
    const live = new Map<string, string>();
    for await (const e of kv.reader.scan("route.")) live.set(e.key, new TextDecoder().decode(e.value));
    let same = live.size === (await storeB.count());
    for (const [key, value] of live) {
      const got = await storeB.get(key);
      if (!got || new TextDecoder().decode(got.value) !== value) same = false;
    }
    console.log(
      `    node B's fold ${same ? "matches" : "DOES NOT MATCH"} the bucket (${live.size.toLocaleString()} keys)`,
    );
    await b.watch.stop();
    await storeB.close();

    step(7, "node A restarts and resumes from its own cursor");
    const reopened = await LevelSnapshotStore.open(join(work, "node-a"));
    console.log(`    reopened at cursor ${reopened.cursor}`);
    a = fold(kv, reopened);
    await caughtUp(a.watch, head);
    console.log(`    node A received ${a.received()} updates on resume (only what changed while it was down)`);
    await a.watch.stop();
    await reopened.close();
    if (!same) process.exitCode = 1;
    console.log(`\ndone in ${((Date.now() - t0) / 1000).toFixed(1)} s.`);
  } finally {
    await nc.close();
    await server.close();
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error("demo failed:", err);
  process.exitCode = 1;
});
