import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { KvUpdate } from "@slipstream/core";
import { SlipstreamError, VersionToken, WatchCursor } from "@slipstream/core";
import {
  MEMORY_BACKEND,
  MEMORY_BACKEND_VERSION,
  MemorySnapshotStore,
  memoryStoreFactory,
  snapshotStoreSuite,
} from "@slipstream/fold";
import { tempDir } from "@slipstream/testkit";
import { describe, expect, it } from "vitest";

const memory = memoryStoreFactory();
snapshotStoreSuite({
  name: "memory",
  describe,
  it,
  open: memory.open,
  import: memory.import,
  capabilities: { scopedArtifacts: true },
});

describe("MemorySnapshotStore specifics", () => {
  const put = (key: string, rev: bigint): KvUpdate => ({
    type: "put",
    entry: { key, value: new TextEncoder().encode(key), version: VersionToken.fromRevision(rev) },
  });

  it("keeps byte order past the incremental index limit (lazy re-sort), across deletes", async () => {
    const store = new MemorySnapshotStore();
    const keys = Array.from({ length: 60_000 }, (_, i) => `k.${(i * 7919) % 60_000}`);
    await store.apply(
      keys.map((k, i) => put(k, BigInt(i + 1))),
      WatchCursor.fromRevision(60_000n),
    );
    await store.apply(
      [
        { type: "delete", key: "k.5", version: VersionToken.unknown() },
        put("k.\u{10000}", 60_001n),
        put("k.\uffff", 60_002n),
      ],
      WatchCursor.fromRevision(60_002n),
    );
    const got: string[] = [];
    for await (const e of store.range("k.")) got.push(e.key);
    const expected = [...keys.filter((k) => k !== "k.5"), "k.\u{10000}", "k.\uffff"].sort((a, b) =>
      Buffer.compare(Buffer.from(a), Buffer.from(b)),
    );
    expect(got).toEqual(expected);
    expect(store.size).toBe(60_001);
  });

  it("refuses use after close and a second open store on one backing", async () => {
    const store = new MemorySnapshotStore();
    expect(() => new MemorySnapshotStore({ backing: store.backing })).toThrow(
      expect.objectContaining({ code: "BACKEND" }),
    );
    await store.close();
    await expect(store.get("x")).rejects.toSatisfy((e) => SlipstreamError.is(e, "BACKEND"));
    await expect(store.apply([], WatchCursor.none())).rejects.toSatisfy((e) => SlipstreamError.is(e, "BACKEND"));
    const reopened = new MemorySnapshotStore({ backing: store.backing });
    expect(reopened.cursor.isNone).toBe(true);
  });

  it("rejects malformed updates without applying any of the batch", async () => {
    const store = new MemorySnapshotStore();
    await expect(
      store.apply(
        [put("ok", 1n), { type: "put", entry: { key: "bad", value: "nope" } } as never],
        WatchCursor.fromRevision(2n),
      ),
    ).rejects.toThrow(TypeError);
    expect(store.size).toBe(0);
    expect(store.cursor.isNone).toBe(true);
  });

  it("exports one self-describing payload file data/fold.jsonl", async () => {
    await using dir = await tempDir("slipstream-fold-memory-");
    const store = new MemorySnapshotStore();
    await store.apply([put("a", 1n), put("b", 2n)], WatchCursor.fromRevision(2n));
    const manifest = await store.exportTo(join(dir.path, "art"));
    expect(manifest.backend).toBe(MEMORY_BACKEND);
    expect(manifest.backendVersion).toBe(MEMORY_BACKEND_VERSION);
    expect(manifest.files.map((f) => f.path)).toEqual(["data/fold.jsonl"]);
    const lines = (await readFile(join(dir.path, "art", "data", "fold.jsonl"), "utf8")).trim().split("\n");
    expect(JSON.parse(lines[0] as string)).toEqual({
      format: "slipstream-memory-fold",
      version: 1,
      cursor: "0000000000000002",
      entries: 2,
    });
    expect(lines.slice(1).map((l) => (JSON.parse(l) as { k: string }).k)).toEqual(["a", "b"]);
  });
});
