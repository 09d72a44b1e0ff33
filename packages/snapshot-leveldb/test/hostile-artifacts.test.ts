import { copyFile, lstat, mkdir, readdir, readFile, rename, symlink, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type ExportManifest, MANIFEST_FILE, SlipstreamError, sealArtifact, WatchCursor } from "@slipstream/core";
import { type TempDir, tempDir } from "@slipstream/testkit";
import { Level } from "level";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type LevelImportOptions, LevelSnapshotStore } from "../src/index.js";
import { at, dump, put } from "./helpers.js";

let tmp: TempDir;
beforeEach(async () => {
  tmp = await tempDir("slipstream-leveldb-hostile-");
});
afterEach(async () => {
  await tmp.cleanup();
});

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** A real artifact of a fold with enough entries to have table files. */
async function goodArtifact(name = "artifact"): Promise<{ dir: string; manifest: ExportManifest }> {
  const store = await LevelSnapshotStore.open(join(tmp.path, `${name}-source`));
  const batch = [];
  for (let i = 1; i <= 2000; i++) batch.push(put(`route.${String(i).padStart(5, "0")}`, `value-${i}`.repeat(4), i));
  await store.apply(batch, at(2000));
  await store.settle();
  const dir = join(tmp.path, name);
  const manifest = await store.exportTo(dir);
  await store.close();
  return { dir, manifest };
}

/** Seals a hand-made payload directory (the `data/` tree) into an artifact. */
async function sealPayload(
  name: string,
  fill: (dataDir: string) => Promise<void>,
  meta: { backend?: string; backendVersion?: string; cursor?: WatchCursor } = {},
): Promise<string> {
  const stage = join(tmp.path, `${name}-stage`);
  await mkdir(join(stage, "data"), { recursive: true });
  await fill(join(stage, "data"));
  for (const runtime of ["LOCK", "LOG", "LOG.old"]) await unlink(join(stage, "data", runtime)).catch(() => {});
  await sealArtifact(stage, {
    backend: meta.backend ?? "leveldb",
    backendVersion: meta.backendVersion ?? "1",
    cursor: meta.cursor ?? WatchCursor.fromRevision(7n),
  });
  const dir = join(tmp.path, name);
  await rename(stage, dir);
  return dir;
}

async function editManifest(dir: string, edit: (doc: Record<string, unknown>) => void): Promise<void> {
  const path = join(dir, MANIFEST_FILE);
  const doc = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
  edit(doc);
  await writeFile(path, `${JSON.stringify(doc, null, 2)}\n`);
}

/** The import must fail with ARTIFACT_INVALID (matching `text`), leaving no destination and no stage. */
async function expectRefused(artifact: string, text: RegExp, opts: LevelImportOptions = {}): Promise<SlipstreamError> {
  const parent = join(tmp.path, "imports");
  await mkdir(parent, { recursive: true });
  const dest = join(parent, "fold");
  let caught: unknown;
  try {
    const store = await LevelSnapshotStore.import(artifact, dest, opts);
    await store.close();
  } catch (err) {
    caught = err;
  }
  expect(SlipstreamError.is(caught, "ARTIFACT_INVALID"), `expected ARTIFACT_INVALID, got ${String(caught)}`).toBe(true);
  expect((caught as Error).message).toMatch(text);
  expect(await exists(dest), "destination stays absent").toBe(false);
  expect(await readdir(parent), "no stage left behind").toEqual([]);
  return caught as SlipstreamError;
}

describe("LevelSnapshotStore.import refuses hostile artifacts", () => {
  it("the untouched artifact imports (baseline for every case below)", async () => {
    const { dir, manifest } = await goodArtifact();
    expect(manifest.files.length).toBeGreaterThanOrEqual(3);
    const store = await LevelSnapshotStore.import(dir, join(tmp.path, "ok"));
    expect(store.cursor.revision).toBe(2000n);
    expect(await store.count()).toBe(2000);
    await store.close();
  });

  it("a flipped byte in any payload file → checksum mismatch", async () => {
    const { dir, manifest } = await goodArtifact();
    for (const file of manifest.files) {
      if (file.size === 0) continue;
      const path = join(dir, file.path);
      const bytes = await readFile(path);
      const mid = bytes.length >> 1;
      bytes[mid] = (bytes[mid] as number) ^ 0x01;
      await writeFile(path, bytes);
      await expectRefused(dir, /checksum mismatch/);
      bytes[mid] = (bytes[mid] as number) ^ 0x01;
      await writeFile(path, bytes);
    }
  });

  it("an undeclared extra file, in data/ or beside the manifest → undeclared", async () => {
    const { dir } = await goodArtifact();
    await writeFile(join(dir, "data", "000999.ldb"), "smuggled");
    await expectRefused(dir, /undeclared/);
    await unlink(join(dir, "data", "000999.ldb"));
    await writeFile(join(dir, "README"), "smuggled");
    await expectRefused(dir, /undeclared/);
  });

  it("a missing payload file → missing", async () => {
    const { dir, manifest } = await goodArtifact();
    const current = manifest.files.find((f) => f.path === "data/CURRENT");
    expect(current).toBeDefined();
    await unlink(join(dir, "data", "CURRENT"));
    await expectRefused(dir, /missing/);
  });

  it("a symlink in place of a payload file → non-regular", async () => {
    const { dir, manifest } = await goodArtifact();
    const biggest = [...manifest.files].sort((a, b) => b.size - a.size)[0]?.path as string;
    const outside = join(tmp.path, "outside");
    await copyFile(join(dir, biggest), outside);
    await unlink(join(dir, biggest));
    await symlink(outside, join(dir, biggest));
    await expectRefused(dir, /non-regular/);
  });

  it("a wrong backend → names the backend", async () => {
    const { dir } = await goodArtifact();
    await editManifest(dir, (doc) => {
      doc.backend = "fjall";
    });
    await expectRefused(dir, /backend is "fjall"; expected "leveldb"/);
  });

  it("a backendVersion this version does not read → names it", async () => {
    const { dir } = await goodArtifact();
    await editManifest(dir, (doc) => {
      doc.backendVersion = "7";
    });
    await expectRefused(dir, /backendVersion "7"/);
  });

  it("a manifest cursor the payload disagrees with → cursor mismatch", async () => {
    const { dir } = await goodArtifact();
    await editManifest(dir, (doc) => {
      doc.cursor = "00000000000003e7";
    });
    await expectRefused(dir, /payload cursor 00000000000007d0 disagrees with manifest cursor 00000000000003e7/);
  });

  it("a LevelDB payload that is not a slipstream fold → not a slipstream fold", async () => {
    const dir = await sealPayload("foreign", async (dataDir) => {
      const db = new Level(dataDir);
      await db.open();
      await db.put("user:1", "alice");
      await db.close();
    });
    await expectRefused(dir, /not a slipstream fold/);
  });

  it("a fold with an undecodable value record → refused before it goes into place", async () => {
    const dir = await sealPayload("badrecord", async (dataDir) => {
      const store = await LevelSnapshotStore.open(dataDir);
      await store.apply([put("a", "1", 6), put("k", "2", 7)], at(7));
      await store.close();
      // Overwrite k's value record with one declaring a 255-byte version (count unchanged).
      const db = new Level<string, Buffer>(dataDir, { valueEncoding: "buffer" });
      await db.open();
      await db.sublevel<string, Buffer>("data", { valueEncoding: "buffer" }).put("k", Buffer.from([0xff, 1, 2]));
      await db.close();
    });
    await expectRefused(dir, /255-byte version/, { verifyRecords: true });
  });

  it("a fold with a key that is not UTF-8 → refused", async () => {
    const dir = await sealPayload("badkey", async (dataDir) => {
      const store = await LevelSnapshotStore.open(dataDir);
      await store.apply([put("a", "1", 7)], at(7));
      await store.close();
      const db = new Level<Buffer, Buffer>(dataDir, { keyEncoding: "buffer", valueEncoding: "buffer" });
      await db.open();
      // Replace "a" by a key with an invalid UTF-8 byte, keeping the count at 1.
      await db.batch([
        { type: "del", key: Buffer.from("!data!a") },
        {
          type: "put",
          key: Buffer.concat([Buffer.from("!data!"), Buffer.from([0xc3, 0x28])]),
          value: Buffer.from([8, 0, 0, 0, 0, 0, 0, 0, 7, 0x31]),
        },
      ]);
      await db.close();
    });
    await expectRefused(dir, /not UTF-8/, { verifyRecords: true });
  });

  it("a payload that is no LevelDB at all → not a LevelDB database", async () => {
    const dir = await sealPayload("junk", async (dataDir) => {
      await writeFile(join(dataDir, "fold.snap"), "PGSS\u0002\u0000");
    });
    await expectRefused(dir, /not a LevelDB database/);
  });

  it("an empty payload → refused", async () => {
    const dir = await sealPayload("empty", async () => {});
    await expectRefused(dir, /not a LevelDB database/);
  });

  it("a fold of an unknown format generation under backendVersion 1 → names the generation", async () => {
    const dir = await sealPayload("future", async (dataDir) => {
      const store = await LevelSnapshotStore.open(dataDir);
      await store.apply([put("a", "1", 7)], at(7));
      await store.close();
      const db = new Level(dataDir, { valueEncoding: "buffer" });
      await db.open();
      await db.sublevel<string, Buffer>("meta", { valueEncoding: "buffer" }).put("format", Buffer.from("9"));
      await db.close();
    });
    await expectRefused(dir, /generation "9"/);
  });

  it("a fold whose entry count record disagrees with its data → refused", async () => {
    const dir = await sealPayload("miscounted", async (dataDir) => {
      const store = await LevelSnapshotStore.open(dataDir);
      await store.apply([put("a", "1", 6), put("b", "2", 7)], at(7));
      await store.close();
      const db = new Level(dataDir, { valueEncoding: "buffer" });
      await db.open();
      const count = Buffer.alloc(8);
      count.writeBigUInt64BE(5n);
      await db.sublevel<string, Buffer>("meta", { valueEncoding: "buffer" }).put("count", count);
      await db.close();
    });
    await expectRefused(dir, /holds 2 entries but its entry count record says 5/, { verifyRecords: true });
  });

  it("a destination that is a file, or a non-empty directory, is refused and left untouched", async () => {
    const { dir } = await goodArtifact();
    const file = join(tmp.path, "dest-file");
    await writeFile(file, "keep");
    await expect(LevelSnapshotStore.import(dir, file)).rejects.toMatchObject({ code: "ARTIFACT_INVALID" });
    expect(await readFile(file, "utf8")).toBe("keep");
    const busy = join(tmp.path, "busy");
    await mkdir(busy);
    await writeFile(join(busy, "x"), "keep");
    await expect(LevelSnapshotStore.import(dir, busy)).rejects.toMatchObject({ code: "ARTIFACT_INVALID" });
    expect(await readdir(busy)).toEqual(["x"]);
  });

  it("an artifact without a manifest → refused", async () => {
    const { dir } = await goodArtifact();
    await unlink(join(dir, MANIFEST_FILE));
    await expectRefused(dir, /no MANIFEST\.json/);
  });

  it("a refused import does not disturb a later good import of the same data", async () => {
    const { dir } = await goodArtifact();
    await editManifest(dir, (doc) => {
      doc.cursor = "00000000000003e7";
    });
    await expectRefused(dir, /disagrees/);
    await editManifest(dir, (doc) => {
      doc.cursor = "00000000000007d0";
    });
    const store = await LevelSnapshotStore.import(dir, join(tmp.path, "imports", "fold"));
    expect(store.cursor.revision).toBe(2000n);
    expect((await dump(store)).length).toBe(2000);
    await store.close();
  });
});
