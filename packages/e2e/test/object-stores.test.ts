/**
 * The full bootstrap loop through the real object-store transports: node A folds a NATS
 * bucket into LevelDB and publishes through the export round; node B bootstraps from the
 * artifact and receives exactly the tail. Azure (Azurite) enforces conditional writes; S3
 * (s3rver) does not, so it runs with the explicit non-atomic opt-in.
 */
import { join } from "node:path";
import { S3Client } from "@aws-sdk/client-s3";
import { BlobServiceClient } from "@azure/storage-blob";
import { LevelSnapshotStore } from "@slipstream/snapshot-leveldb";
import { startAzurite, startS3rver } from "@slipstream/testkit";
import { ArtifactTransport, type BlobStore, importRemote, runExportRound } from "@slipstream/transport";
import { AzureBlobStore } from "@slipstream/transport-azure";
import { S3BlobStore } from "@slipstream/transport-s3";
import { describe, expect, it } from "vitest";
import { bucketState, foldState, putRoutes, revisions, startNode, useLiveNats } from "./helpers.js";

const live = useLiveNats("slipstream-e2e-stores-");
let n = 0;

async function bootstrapLoop(store: BlobStore, allowNonAtomicPointer: boolean): Promise<void> {
  n += 1;
  const kv = await live.conn.store({ name: `stores_${n}` });
  const leases = await live.conn.store({ name: `stores_leases_${n}` });
  const root = join(live.tmp.path, `loop-${n}`);
  const transport = new ArtifactTransport(store, { prefix: "slipstream", allowNonAtomicPointer });

  const seeded = await putRoutes(kv, 0, 300, "v1");
  const a = startNode("node-a", kv, await LevelSnapshotStore.open(join(root, "a")));
  await a.caughtUpTo(seeded);
  const round = await runExportRound({
    lease: a.lease(leases, "edge.us-east.latest"),
    ttlMs: 120_000,
    fold: a.watch,
    transport,
    key: "edge/us-east/latest",
    scratchDir: join(root, "scratch-a"),
  });
  expect(round.outcome).toBe("published");
  if (round.outcome === "skipped") throw new Error("unreachable");
  const exported = round.cursor.revision ?? 0n;

  const tail = await putRoutes(kv, 295, 5, "v2");
  const b = startNode(
    "node-b",
    kv,
    await importRemote({
      transport,
      key: "edge/us-east/latest",
      scratchDir: join(root, "scratch-b"),
      destDir: join(root, "b"),
      open: (art, dest) => LevelSnapshotStore.import(art, dest),
    }),
  );
  expect(b.store.cursor.revision).toBe(exported);
  await b.caughtUpTo(tail);
  expect(b.delivered).toHaveLength(5);
  expect(revisions(b.delivered).every((r) => r > exported)).toBe(true);
  expect(await foldState(b.store)).toEqual(await bucketState(kv));
  await b.stop();
  await a.stop();
}

describe("bootstrap through object storage, live", () => {
  it("Azure Blob (Azurite): export round → bootstrap → exactly the tail", async () => {
    await using azurite = await startAzurite();
    const service = BlobServiceClient.fromConnectionString(azurite.connectionString);
    const container = service.getContainerClient("artifacts");
    await container.create();
    const store = new AzureBlobStore({ container, prefix: "fleet" });
    expect(store.capabilities.conditionalWrites).toBe(true);
    await bootstrapLoop(store, false);
  });

  it("S3 (s3rver, no conditional writes, explicit opt-in): export round → bootstrap → exactly the tail", async () => {
    await using s3 = await startS3rver();
    const client = new S3Client(s3.client());
    try {
      const store = new S3BlobStore({ client, bucket: s3.bucket, conditionalWrites: false });
      await bootstrapLoop(store, true);
    } finally {
      client.destroy();
    }
  });
});
