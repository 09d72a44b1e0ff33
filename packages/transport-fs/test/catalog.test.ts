import { utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TempDir, tempDir } from "@slipstream/testkit";
import { ArtifactTransport, describeArtifacts, makeTestArtifact } from "@slipstream/transport";
import { FsBlobStore } from "@slipstream/transport-fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

let tmp: TempDir;
beforeEach(async () => {
  tmp = await tempDir("catalog");
});
afterEach(async () => {
  await tmp.cleanup();
});

describe("describeArtifacts", () => {
  it("lists pointers, their payloads, the current one and what prune would delete", async () => {
    const store = new FsBlobStore(join(tmp.path, "remote"));
    const transport = new ArtifactTransport(store, { prefix: "fleet" });
    for (const rev of [3n, 5n, 9n]) {
      const dir = join(tmp.path, `a${rev}`);
      await makeTestArtifact(dir, { revision: rev, exporter: `node-${rev}:42` });
      await transport.upload("edge/eu", dir);
    }
    await makeTestArtifact(join(tmp.path, "b"), { revision: 2n });
    await transport.upload("core", join(tmp.path, "b"));

    // Age the two old payloads of edge/eu past a 1 h grace period.
    const old = new Date(Date.now() - 2 * 3600_000);
    const before = await describeArtifacts(store, { prefix: "fleet", graceMs: 3600_000 });
    expect(before.map((e) => e.key)).toEqual(["core", "edge/eu"]);
    const edge = before[1];
    expect(edge?.pointer?.manifest?.cursor.revision).toBe(9n);
    // The exporter of the published (newest) artifact; none recorded for "core".
    expect(edge?.pointer?.exporter).toBe("node-9:42");
    expect(before[0]?.pointer?.exporter).toBeUndefined();
    expect(before[0]?.pointer?.manifest).toBeDefined();
    expect(edge?.payloads.map((p) => [p.rank, p.current, p.prunable])).toEqual([
      [3n, false, false],
      [5n, false, false],
      [9n, true, false],
    ]);
    for (const p of edge?.payloads.slice(0, 1) ?? []) {
      await utimes(join(tmp.path, "remote", p.objectKey), old, old);
    }
    const after = await describeArtifacts(store, { prefix: "fleet", key: "edge/eu", graceMs: 3600_000 });
    expect(after).toHaveLength(1);
    expect(after[0]?.payloads.map((p) => p.prunable)).toEqual([true, false, false]);
    expect(after[0]?.declaredBytes).toBeGreaterThan(0);
    expect(after[0]?.danglingPointer).toBe(false);
    // Exactly what prune deletes.
    const deleted = await transport.prune("edge/eu", 3600_000);
    expect(deleted).toEqual([after[0]?.payloads[0]?.objectKey]);
  });

  it("reports an unreadable pointer and a dangling one, and deletes nothing", async () => {
    const store = new FsBlobStore(join(tmp.path, "remote"));
    const transport = new ArtifactTransport(store);
    await makeTestArtifact(join(tmp.path, "a"), { revision: 4n });
    const res = await transport.upload("k", join(tmp.path, "a"));
    await store.delete(res.payloadKey);
    let cat = await describeArtifacts(store);
    expect(cat[0]?.danglingPointer).toBe(true);
    await writeFile(join(tmp.path, "remote", "k.manifest.json"), "{not json");
    cat = await describeArtifacts(store);
    expect(cat[0]?.pointer?.manifest).toBeUndefined();
    expect(cat[0]?.pointer?.problem).toMatch(/malformed manifest/);
    expect(cat[0]?.pointer?.exporter).toBeUndefined();
    expect(cat[0]?.payloads).toEqual([]);
  });
});
