import { randomFillSync } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { ContainerClient } from "@azure/storage-blob";
import { type Logger, MANIFEST_FILE } from "@slipstream/core";
import { type TempDir, tempDir } from "@slipstream/testkit";
import { ArtifactTransport, FaultInjectingBlobStore, makeTestArtifact, type UploadResult } from "@slipstream/transport";
import { afterEach, describe, expect, it } from "vitest";
import { AzureBlobStore } from "../src/index.js";
import { blobNames, freshContainer, serviceFor, useAzurite } from "./helpers.js";

const live = useAzurite();

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function scratch(): Promise<TempDir> {
  const d = await tempDir("slipstream-azure-");
  cleanups.push(d.cleanup);
  return d;
}

async function container(label: string): Promise<ContainerClient> {
  const c = await freshContainer(live.service, label);
  cleanups.push(async () => {
    await c.delete();
  });
  return c;
}

/** Counts the conditional writes a store lost (it logs each one at debug level). */
function lostRaceCounter(): Logger & { lost: number } {
  const log = {
    lost: 0,
    debug(msg: string) {
      if (/conditional write lost/.test(msg)) log.lost++;
    },
    info() {},
    warn() {},
    error() {},
  };
  return log;
}

describe("ArtifactTransport over AzureBlobStore", () => {
  it("uploads a multi-block artifact and downloads it byte for byte; blobs live under the prefix", async () => {
    const dir = await scratch();
    const c = await container("roundtrip");
    const store = new AzureBlobStore({ container: c, prefix: "fleet/", blockSizeBytes: 64 * 1024, concurrency: 3 });
    const transport = new ArtifactTransport(store, { prefix: "artifacts" });
    const payload = randomFillSync(Buffer.alloc(3 * 1024 * 1024 + 5));
    await makeTestArtifact(join(dir.path, "a"), {
      revision: 4242n,
      payload,
      extra: { "sub/x.bin": new TextEncoder().encode("nested") },
    });
    const res = await transport.upload("edge/eu-west", join(dir.path, "a"));
    expect(res.outcome).toBe("published");
    expect(res.payloadKey).toMatch(/^artifacts\/edge\/eu-west\.payloads\/0000000000001092-[0-9a-f]{16}\.tar$/);

    expect(await blobNames(c)).toEqual(["fleet/artifacts/edge/eu-west.manifest.json", `fleet/${res.payloadKey}`]);
    const props = await c.getBlockBlobClient(`fleet/${res.payloadKey}`).getBlockList("committed");
    expect(props.committedBlocks?.length, "the payload was staged as many blocks").toBeGreaterThan(40);

    const got = await transport.download("edge/eu-west", join(dir.path, "b"));
    expect(got.cursor.revision).toBe(4242n);
    expect((await readFile(join(dir.path, "b", "data", "fold.snap"))).equals(payload)).toBe(true);
    expect((await readFile(join(dir.path, "b", "data", "sub", "x.bin"))).toString()).toBe("nested");
    expect(
      (await readFile(join(dir.path, "b", MANIFEST_FILE))).equals(await readFile(join(dir.path, "a", MANIFEST_FILE))),
    ).toBe(true);
    expect((await readdir(dir.path)).sort()).toEqual(["a", "b"]);
  });

  it("two nodes publishing at once: one pointer, which never moves backwards and ends at the newest", async () => {
    const dir = await scratch();
    const c = await container("race");
    const name = c.containerName;
    // Two nodes: each its own service client (own connections), same container and prefix.
    const nodes = [serviceFor(live.azurite), serviceFor(live.azurite)];
    const logs = [lostRaceCounter(), lostRaceCounter()] as const;
    const stores = nodes.map(
      (svc, i) => new AzureBlobStore({ container: svc.getContainerClient(name), prefix: "fleet", logger: logs[i] }),
    );

    // Burst: 8 uploads (4 per node) hold at their first pointer write until all 8 got there,
    // so all of them try create-only on the absent pointer at once: exactly one may win.
    const burst = [1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n];
    await Promise.all(burst.map((r) => makeTestArtifact(join(dir.path, `burst-${r}`), { revision: r })));
    let arrived = 0;
    let open = false;
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const gated = (store: AzureBlobStore) =>
      new FaultInjectingBlobStore(store, async (op) => {
        if (op !== "conditionalPut" || open) return;
        if (++arrived === burst.length) {
          open = true;
          release();
        }
        await gate;
      });
    const transports = burst.map(
      (_, i) => new ArtifactTransport(gated(stores[i % 2] as AzureBlobStore), { prefix: "artifacts" }),
    );

    // A third party watches the pointer the whole time.
    const reader = new ArtifactTransport(
      new AzureBlobStore({ container: serviceFor(live.azurite).getContainerClient(name), prefix: "fleet" }),
      { prefix: "artifacts" },
    );
    const seen: bigint[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const m = await reader.manifest("k").catch(() => undefined);
        if (m?.cursor.revision !== undefined) seen.push(m.cursor.revision);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();

    const burstResults = await Promise.all(
      burst.map((r, i) => (transports[i] as ArtifactTransport).upload("k", join(dir.path, `burst-${r}`))),
    );
    expect(open, "all 8 reached the pointer write together").toBe(true);
    expect(logs[0].lost + logs[1].lost, "Azurite refused the losing creates").toBeGreaterThanOrEqual(burst.length - 1);
    for (const r of burstResults) expect(["published", "superseded"]).toContain(r.outcome);
    expect(burstResults.find((r) => r.cursor.revision === 8n)?.outcome).toBe("published");

    // Then the two nodes keep exporting, interleaved, each its own sequence of cursors.
    const byNode = [
      [10n, 13n, 14n, 17n, 20n],
      [11n, 12n, 15n, 16n, 19n],
    ];
    const plain = stores.map((s) => new ArtifactTransport(s, { prefix: "artifacts" }));
    for (const revs of byNode) {
      await Promise.all(revs.map((r) => makeTestArtifact(join(dir.path, `n-${r}`), { revision: r })));
    }
    const sequences: UploadResult[][] = await Promise.all(
      byNode.map(async (revs, i) => {
        const out: UploadResult[] = [];
        for (const r of revs) out.push(await (plain[i] as ArtifactTransport).upload("k", join(dir.path, `n-${r}`)));
        return out;
      }),
    );
    watching = false;
    await watcher;

    for (const r of sequences.flat()) expect(["published", "superseded"]).toContain(r.outcome);
    expect(sequences.flat().find((r) => r.cursor.revision === 20n)?.outcome).toBe("published");
    expect((await reader.manifest("k")).cursor.revision).toBe(20n);
    expect(seen.length, "the watcher saw the pointer").toBeGreaterThan(0);
    for (let i = 1; i < seen.length; i++) {
      expect(seen[i] as bigint, `pointer went from ${seen[i - 1]} to ${seen[i]}`).toBeGreaterThanOrEqual(
        seen[i - 1] as bigint,
      );
    }
    const names = await blobNames(c);
    expect(names.filter((n) => n.endsWith(".manifest.json"))).toEqual(["fleet/artifacts/k.manifest.json"]);
    const restored = await reader.download("k", join(dir.path, "restored"));
    expect(restored.cursor.revision).toBe(20n);
    expect((await readFile(join(dir.path, "restored", "data", "fold.snap"))).toString()).toBe("fold at revision 20\n");
  });
});
