import { mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { hashFile, MANIFEST_FILE, SlipstreamError, sealArtifact, WatchCursor } from "@slipstream/core";
import { type TempDir, tempDir } from "@slipstream/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CHECKPOINT_ATTEMPTS, checkpointLevelDb } from "../src/checkpoint.js";
import { FoldDb } from "../src/fold-db.js";
import { dataKey } from "../src/format.js";
import { ARTIFACT_VERSION, LevelSnapshotStore } from "../src/index.js";
import { encodeValueRecord } from "../src/record.js";
import { at, dump, put } from "./helpers.js";

let tmp: TempDir;
beforeEach(async () => {
  tmp = await tempDir("slipstream-checkpoint-");
});
afterEach(async () => {
  await tmp[Symbol.asyncDispose]();
});

const value = (i: number, tag: string) => `${tag}-${i}-${"x".repeat(150)}`;

/** Applies `n` puts in batches of 1000 starting at revision `from + 1`; returns the last revision. */
async function fill(store: LevelSnapshotStore, n: number, from: number, tag: string): Promise<number> {
  let rev = from;
  for (let i = 0; i < n; i += 1000) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 1000); j++)
      batch.push(put(`k.${String(j).padStart(7, "0")}`, value(j, tag), ++rev));
    await store.apply(batch, at(rev));
  }
  return rev;
}

/** Imports `artifact` into a fresh directory and returns its dump and cursor. */
async function importedState(artifact: string, name: string): Promise<{ rows: string[]; cursor: bigint | undefined }> {
  const store = await LevelSnapshotStore.import(artifact, join(tmp.path, name));
  try {
    return { rows: await dump(store), cursor: store.cursor.revision };
  } finally {
    await store.close();
  }
}

describe("LevelSnapshotStore export as a checkpoint", () => {
  it("an export right after a large apply (compactions under way) is exactly the state at the cursor", async () => {
    const store = await LevelSnapshotStore.open(join(tmp.path, "fold"), { writeBufferSize: 256 * 1024 });
    let rev = 0;
    const artifacts: { dir: string; rows: string[]; rev: number }[] = [];
    // Small memtables: every fill flushes many level-0 tables and starts background compactions
    // that run while the export copies the live files.
    for (let round = 0; round < 3; round++) {
      rev = await fill(store, 12_000, rev, `r${round}`);
      const dir = join(tmp.path, `artifact-${round}`);
      const manifest = await store.exportTo(dir);
      expect(manifest.cursor.revision).toBe(BigInt(rev));
      expect(manifest.backendVersion).toBe(ARTIFACT_VERSION);
      artifacts.push({ dir, rows: await dump(store), rev });
    }
    await store.close();
    for (const [i, a] of artifacts.entries()) {
      const got = await importedState(a.dir, `imported-${i}`);
      expect(got.cursor).toBe(BigInt(a.rev));
      expect(got.rows.length).toBe(12_000);
      expect(got.rows).toEqual(a.rows);
    }
  });

  it("reads on the live store go on while an export runs, and an apply issued meanwhile waits for it", async () => {
    const store = await LevelSnapshotStore.open(join(tmp.path, "fold"));
    const rev = await fill(store, 5000, 0, "a");
    const exporting = store.exportTo(join(tmp.path, "artifact"));
    const applying = store.apply([put("late", "1", rev + 1)], at(rev + 1));
    const [one, many, rows] = await Promise.all([
      store.get("k.0000042"),
      store.getMany(["k.0000001", "k.0004999"]),
      dump(store, "k.00001"),
    ]);
    expect(Buffer.from(one?.value ?? []).toString()).toBe(value(42, "a"));
    expect(many.map((e) => e?.key)).toEqual(["k.0000001", "k.0004999"]);
    expect(rows.length).toBe(100);
    const manifest = await exporting;
    await applying;
    // The artifact holds the state before the apply that waited.
    expect(manifest.cursor.revision).toBe(BigInt(rev));
    expect(store.cursor.revision).toBe(BigInt(rev + 1));
    await store.close();
    const got = await importedState(join(tmp.path, "artifact"), "imported");
    expect(got.rows.some((r) => r.startsWith("late|"))).toBe(false);
    expect(got.cursor).toBe(BigInt(rev));
  });

  it("hard-links the table files, and later writes and compactions of the live store leave the artifact intact", async () => {
    const store = await LevelSnapshotStore.open(join(tmp.path, "fold"), { writeBufferSize: 256 * 1024 });
    const rev = await fill(store, 20_000, 0, "before");
    await store.settle();
    const before = await dump(store);
    const artifact = join(tmp.path, "artifact");
    const manifest = await store.exportTo(artifact);
    const tables = manifest.files.filter((f) => /\.ldb$/.test(f.path));
    expect(tables.length).toBeGreaterThan(0);
    // Same filesystem: the tables are links to the live files, not copies.
    const links = await Promise.all(tables.map(async (f) => (await stat(join(artifact, f.path))).nlink));
    expect(links.some((n) => n >= 2)).toBe(true);

    // Overwrite every key and compact: the live store drops the tables the artifact links.
    await fill(store, 20_000, rev, "after");
    await store.settle();
    await store.close();
    for (const f of manifest.files) {
      const got = await hashFile(join(artifact, f.path));
      expect(got, f.path).toEqual({ size: f.size, sha256: f.sha256 });
    }
    const got = await importedState(artifact, "imported");
    expect(got.cursor).toBe(BigInt(rev));
    expect(got.rows).toEqual(before);
  });

  it("a repeated export re-uses the digests of unchanged tables and still ships a verified artifact", async () => {
    const store = await LevelSnapshotStore.open(join(tmp.path, "fold"));
    await fill(store, 5000, 0, "a");
    await store.settle();
    const first = await store.exportTo(join(tmp.path, "a1"));
    const second = await store.exportTo(join(tmp.path, "a2"));
    const tables = (m: typeof first) => m.files.filter((f) => f.path.endsWith(".ldb"));
    expect(tables(second)).toEqual(tables(first));
    await store.close();
    for (const f of second.files) {
      expect(await hashFile(join(tmp.path, "a2", f.path))).toEqual({ size: f.size, sha256: f.sha256 });
    }
    expect((await importedState(join(tmp.path, "a2"), "i2")).rows.length).toBe(5000);
  });

  it("retries when a compaction moves the live file set under the copy, and gives up with BACKEND when it never settles", async () => {
    const fold = await FoldDb.open(join(tmp.path, "fold"), "open");
    const w = fold.write();
    for (let i = 0; i < 2000; i++) w.put(dataKey(`k${i}`), encodeValueRecord(at(1).version, new Uint8Array(100)));
    await w.commit(at(1), 2000, true);
    await fold.compact();
    // Fault injection: the live set reported to the copier changes between its two reads.
    let calls = 0;
    const movingOnce = { dir: fold.dir, liveTables: () => (++calls === 2 ? [] : fold.liveTables()) };
    const dest1 = join(tmp.path, "cp1");
    await mkdir(dest1);
    const taken = await checkpointLevelDb(movingOnce, dest1);
    expect(taken.attempts).toBe(2);
    expect(taken.linked).toBeGreaterThan(0);

    const alwaysMoving = { dir: fold.dir, liveTables: () => (++calls % 2 === 0 ? [] : fold.liveTables()) };
    const dest2 = join(tmp.path, "cp2");
    await mkdir(dest2);
    const err = await checkpointLevelDb(alwaysMoving, dest2).catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "BACKEND")).toBe(true);
    expect((err as Error).message).toMatch(new RegExp(`${CHECKPOINT_ATTEMPTS} attempts`));
    expect(await readdir(dest2)).toEqual([]);
    await fold.close();

    // The checkpoint that succeeded opens at the cursor with every entry.
    const copy = await FoldDb.open(dest1, "inspect");
    expect(copy.initialCursor.revision).toBe(1n);
    expect(await copy.verifyRecords()).toBe(2000);
    await copy.close();
  });
});

describe("LevelSnapshotStore.import of other artifact layouts and transfers", () => {
  /** An artifact in the layout releases before the checkpoint export wrote (backendVersion "1"). */
  async function layoutOneArtifact(dir: string, n: number): Promise<void> {
    const data = join(dir, "data");
    const copy = await FoldDb.open(data, "open");
    const w = copy.write();
    for (let i = 0; i < n; i++) w.put(dataKey(`old.${i}`), encodeValueRecord(at(i + 1).version, Buffer.from(`v${i}`)));
    await w.commit(WatchCursor.fromRevision(BigInt(n)), n, true);
    await copy.close();
    for (const f of ["LOG", "LOG.old", "LOCK"]) await rm(join(data, f), { force: true });
    await sealArtifact(dir, { backend: "leveldb", backendVersion: "1", cursor: WatchCursor.fromRevision(BigInt(n)) });
  }

  it('an artifact of layout 1 (backendVersion "1") still imports', async () => {
    const dir = join(tmp.path, "old");
    await layoutOneArtifact(dir, 300);
    const store = await LevelSnapshotStore.import(dir, join(tmp.path, "imported"));
    expect(store.cursor.revision).toBe(300n);
    expect(await store.count()).toBe(300);
    expect(Buffer.from((await store.get("old.7"))?.value ?? []).toString()).toBe("v7");
    await store.close();
  });

  it("an unknown layout or generation is refused with ARTIFACT_INVALID before anything is staged", async () => {
    for (const version of ["1.9", "2", "2.2"]) {
      const dir = join(tmp.path, `v${version}`);
      await layoutOneArtifact(dir, 10);
      const path = join(dir, MANIFEST_FILE);
      await writeFile(
        path,
        (await readFile(path, "utf8")).replace('"backendVersion": "1"', `"backendVersion": "${version}"`),
      );
      const err = await LevelSnapshotStore.import(dir, join(tmp.path, `dest-${version}`)).catch((e: unknown) => e);
      expect(SlipstreamError.is(err, "ARTIFACT_INVALID")).toBe(true);
      expect((err as Error).message).toContain(`backendVersion "${version}"`);
      expect((await readdir(tmp.path)).filter((n) => n.startsWith("dest-") || n.startsWith(".slipstream"))).toEqual([]);
    }
  });

  it('transfer "move" consumes the artifact; "link" leaves it whole; both give the same fold', async () => {
    const store = await LevelSnapshotStore.open(join(tmp.path, "fold"));
    await fill(store, 3000, 0, "m");
    await store.settle();
    const rows = await dump(store);
    const m = await store.exportTo(join(tmp.path, "a-link"));
    await store.exportTo(join(tmp.path, "a-move"));
    await store.close();

    const linked = await LevelSnapshotStore.import(join(tmp.path, "a-link"), join(tmp.path, "i-link"), {
      transfer: "link",
    });
    expect(await dump(linked)).toEqual(rows);
    await linked.close();
    for (const f of m.files) {
      expect(await hashFile(join(tmp.path, "a-link", f.path))).toEqual({ size: f.size, sha256: f.sha256 });
    }

    const moved = await LevelSnapshotStore.import(join(tmp.path, "a-move"), join(tmp.path, "i-move"), {
      transfer: "move",
    });
    expect(await dump(moved)).toEqual(rows);
    await moved.close();
    expect(await readdir(join(tmp.path, "a-move", "data"))).toEqual([]);
  });

  it("an unknown transfer is a TypeError (a programmer mistake), before anything is staged", async () => {
    const dir = join(tmp.path, "old");
    await layoutOneArtifact(dir, 3);
    await expect(
      LevelSnapshotStore.import(dir, join(tmp.path, "dest"), { transfer: "teleport" as never }),
    ).rejects.toBeInstanceOf(TypeError);
    expect((await readdir(tmp.path)).sort()).toEqual(["old"]);
  });

  it('a tampered table under transfer "move" is refused and nothing appears at the destination', async () => {
    const store = await LevelSnapshotStore.open(join(tmp.path, "fold"));
    await fill(store, 3000, 0, "t");
    await store.settle();
    const m = await store.exportTo(join(tmp.path, "a"));
    await store.close();
    const table = m.files.find((f) => f.path.endsWith(".ldb"));
    expect(table).toBeDefined();
    const path = join(tmp.path, "a", table?.path ?? "");
    // Break the link first: the live fold's file must stay as it was.
    const bytes = Buffer.from(await readFile(path));
    bytes[100] = (bytes[100] ?? 0) ^ 0xff;
    await rm(path);
    await writeFile(path, bytes);
    // hashesVerified is a promise only a move out of a verified scratch download may make:
    // with a copy it is ignored and the bytes are hashed.
    const copied = await LevelSnapshotStore.import(join(tmp.path, "a"), join(tmp.path, "dest"), {
      transfer: "copy",
      hashesVerified: true,
    }).catch((e: unknown) => e);
    expect(SlipstreamError.is(copied, "ARTIFACT_INVALID")).toBe(true);
    const err = await LevelSnapshotStore.import(join(tmp.path, "a"), join(tmp.path, "dest"), {
      transfer: "move",
    }).catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "ARTIFACT_INVALID")).toBe(true);
    expect((err as Error).message).toMatch(/checksum mismatch/);
    expect((await readdir(tmp.path)).sort()).toEqual(["a", "fold"]);
    // The live fold is untouched.
    const again = await LevelSnapshotStore.open(join(tmp.path, "fold"));
    expect(await again.count()).toBe(3000);
    await again.close();
  });
});
