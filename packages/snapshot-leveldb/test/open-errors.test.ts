import { spawn } from "node:child_process";
import { mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SlipstreamError } from "@slipstream/core";
import { tempDir } from "@slipstream/testkit";
import { Level } from "level";
import { describe, expect, it } from "vitest";
import { LevelSnapshotStore } from "../src/index.js";
import { at, put } from "./helpers.js";

const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
const holdOpen = fileURLToPath(new URL("./fixtures/hold-open.ts", import.meta.url));

async function openError(dir: string): Promise<SlipstreamError> {
  try {
    const store = await LevelSnapshotStore.open(dir);
    await store.close();
  } catch (err) {
    expect(SlipstreamError.is(err), String(err)).toBe(true);
    return err as SlipstreamError;
  }
  throw new Error(`open(${dir}) unexpectedly succeeded`);
}

/** Writes raw records into a fold's meta sublevel, bypassing the store. */
async function writeMeta(dir: string, records: Record<string, Buffer>): Promise<void> {
  const db = new Level<string, Buffer>(dir, { valueEncoding: "buffer" });
  await db.open();
  const meta = db.sublevel<string, Buffer>("meta", { valueEncoding: "buffer" });
  for (const [k, v] of Object.entries(records)) await meta.put(k, v);
  await db.close();
}

async function foldWithData(dir: string): Promise<void> {
  const store = await LevelSnapshotStore.open(dir);
  await store.apply([put("a", "1", 1)], at(1));
  await store.close();
}

describe("LevelSnapshotStore.open refuses what is not a readable fold", () => {
  it("opens an absent directory (parent exists) and an empty one as fresh folds", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const absent = await LevelSnapshotStore.open(join(tmp.path, "absent"));
    expect(absent.cursor.isNone).toBe(true);
    await absent.close();
    await mkdir(join(tmp.path, "empty"));
    const empty = await LevelSnapshotStore.open(join(tmp.path, "empty"));
    expect(await empty.count()).toBe(0);
    await empty.close();
  });

  it("a fold reached through a symlinked directory opens", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const real = join(tmp.path, "real");
    await foldWithData(real);
    await symlink(real, join(tmp.path, "link"));
    const store = await LevelSnapshotStore.open(join(tmp.path, "link"));
    expect(store.cursor.revision).toBe(1n);
    await store.close();
  });

  it("a directory with files but no LevelDB → SNAPSHOT_INVALID_FORMAT, files untouched", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const dir = join(tmp.path, "notes");
    await mkdir(dir);
    await writeFile(join(dir, "readme.txt"), "my notes");
    const err = await openError(dir);
    expect(err.code).toBe("SNAPSHOT_INVALID_FORMAT");
    expect(err.message).toMatch(/not a LevelDB/);
    expect(await readdir(dir)).toEqual(["readme.txt"]);
    expect(await readFile(join(dir, "readme.txt"), "utf8")).toBe("my notes");
  });

  it("a regular file instead of a directory → SNAPSHOT_INVALID_FORMAT", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const path = join(tmp.path, "file");
    await writeFile(path, "x");
    expect((await openError(path)).code).toBe("SNAPSHOT_INVALID_FORMAT");
  });

  it("some other LevelDB database (no slipstream format record) → SNAPSHOT_INVALID_FORMAT, left unchanged", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const dir = join(tmp.path, "other");
    const other = new Level(dir);
    await other.open();
    await other.put("user:1", "alice");
    await other.close();
    const err = await openError(dir);
    expect(err.code).toBe("SNAPSHOT_INVALID_FORMAT");
    expect(err.message).toMatch(/not a slipstream fold/);
    const check = new Level(dir);
    await check.open();
    expect(await check.keys().all()).toEqual(["user:1"]);
    await check.close();
  });

  it("an empty LevelDB (a crash before the format record was written) is adopted as a fresh fold", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const dir = join(tmp.path, "bare");
    const bare = new Level(dir);
    await bare.open();
    await bare.close();
    const store = await LevelSnapshotStore.open(dir);
    expect(store.cursor.isNone).toBe(true);
    await store.apply([put("a", "1", 1)], at(1));
    await store.close();
    const again = await LevelSnapshotStore.open(dir);
    expect(again.cursor.revision).toBe(1n);
    await again.close();
  });

  it("a cursor record over 10 bytes → SNAPSHOT_INVALID_FORMAT naming the cursor", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const dir = join(tmp.path, "fold");
    await foldWithData(dir);
    await writeMeta(dir, { cursor: Buffer.alloc(11, 1) });
    const err = await openError(dir);
    expect(err.code).toBe("SNAPSHOT_INVALID_FORMAT");
    expect(err.message).toMatch(/11-byte cursor/);
  });

  it("a malformed scope record → SNAPSHOT_INVALID_FORMAT naming the scope; a canonical one is read back", async () => {
    const len = (n: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n);
      return b;
    };
    const prefix = (p: string) => Buffer.concat([len(Buffer.byteLength(p)), Buffer.from(p)]);
    for (const bad of [
      Buffer.alloc(0), // empty list: a scope of nothing is not a fold scope
      Buffer.from([0, 0, 0, 9, 0x61]), // truncated
      Buffer.concat([prefix("b."), prefix("a.")]), // not sorted
      Buffer.concat([prefix("a."), prefix("a.b")]), // covered
      prefix("a b"), // not a valid prefix
    ]) {
      await using tmp = await tempDir("slipstream-leveldb-");
      const dir = join(tmp.path, "fold");
      await foldWithData(dir);
      await writeMeta(dir, { scope: bad });
      const err = await openError(dir);
      expect(err.code).toBe("SNAPSHOT_INVALID_FORMAT");
      expect(err.message).toMatch(/scope record/);
    }
    await using tmp = await tempDir("slipstream-leveldb-");
    const dir = join(tmp.path, "fold");
    await foldWithData(dir);
    await writeMeta(dir, { scope: Buffer.concat([prefix("a."), prefix("b-c.")]) });
    const store = await LevelSnapshotStore.open(dir);
    expect(store.scope).toEqual(["a.", "b-c."]);
    await store.close();
  });

  it("a format generation this version does not read → SNAPSHOT_INVALID_FORMAT naming it", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const dir = join(tmp.path, "fold");
    await foldWithData(dir);
    await writeMeta(dir, { format: Buffer.from("2") });
    const err = await openError(dir);
    expect(err.code).toBe("SNAPSHOT_INVALID_FORMAT");
    expect(err.message).toMatch(/generation "2".*reads generation 1/);
  });

  it("a malformed entry count record → SNAPSHOT_INVALID_FORMAT", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const dir = join(tmp.path, "fold");
    await foldWithData(dir);
    await writeMeta(dir, { count: Buffer.from([1, 2, 3]) });
    const err = await openError(dir);
    expect(err.code).toBe("SNAPSHOT_INVALID_FORMAT");
    expect(err.message).toMatch(/count/);
  });

  it("a corrupt value record surfaces as SNAPSHOT_INVALID_FORMAT on read", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const dir = join(tmp.path, "fold");
    await foldWithData(dir);
    const db = new Level<Buffer, Buffer>(dir, { keyEncoding: "buffer", valueEncoding: "buffer" });
    await db.open();
    await db
      .sublevel<Buffer, Buffer>("data", { keyEncoding: "buffer", valueEncoding: "buffer" })
      .put(Buffer.from("a"), Buffer.from([11, 1, 2]));
    await db.close();
    const store = await LevelSnapshotStore.open(dir);
    await expect(store.get("a")).rejects.toMatchObject({ code: "SNAPSHOT_INVALID_FORMAT" });
    await store.close();
  });

  it("a damaged table file surfaces as SNAPSHOT_CORRUPTED (on open or on read)", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const dir = join(tmp.path, "fold");
    const store = await LevelSnapshotStore.open(dir);
    const batch = [];
    for (let i = 1; i <= 2000; i++) batch.push(put(`k.${String(i).padStart(5, "0")}`, `value-${i}`.repeat(5), i));
    await store.apply(batch, at(2000));
    await store.settle();
    await store.close();
    const tables = (await readdir(dir)).filter((f) => f.endsWith(".ldb"));
    expect(tables.length).toBeGreaterThan(0);
    for (const t of tables) {
      const bytes = await readFile(join(dir, t));
      for (let j = 100; j < 140; j++) bytes[j] = (bytes[j] as number) ^ 0xff;
      await writeFile(join(dir, t), bytes);
    }
    let caught: unknown;
    try {
      const damaged = await LevelSnapshotStore.open(dir);
      try {
        for await (const _ of damaged.range("")) {
          // drain
        }
      } finally {
        await damaged.close();
      }
    } catch (err) {
      caught = err;
    }
    expect(SlipstreamError.is(caught, "SNAPSHOT_CORRUPTED"), String(caught)).toBe(true);
  });

  it("a second open in the same process → BACKEND naming the LOCK file", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const dir = join(tmp.path, "fold");
    const first = await LevelSnapshotStore.open(dir);
    const err = await openError(dir);
    expect(err.code).toBe("BACKEND");
    expect(err.message).toContain(join(dir, "LOCK"));
    await first.close();
    const second = await LevelSnapshotStore.open(dir);
    await second.close();
  });

  it("a directory held open by another process → BACKEND naming the LOCK file (no hang); opens once it exits", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const dir = join(tmp.path, "fold");
    await foldWithData(dir);
    const child = spawn(process.execPath, ["--conditions=@slipstream/source", "--import", "tsx", holdOpen, dir], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        let out = "";
        child.stdout.on("data", (d: Buffer) => {
          out += d.toString();
          if (out.includes("open ")) resolve();
        });
        child.once("exit", (code) => reject(new Error(`holder exited early with ${code}`)));
      });
      const err = await openError(dir);
      expect(err.code).toBe("BACKEND");
      expect(err.message).toContain(join(dir, "LOCK"));
      expect(err.message).toMatch(/another process/);
    } finally {
      child.kill("SIGKILL");
      await new Promise((r) =>
        child.exitCode !== null || child.signalCode !== null ? r(null) : child.once("exit", r),
      );
    }
    const store = await LevelSnapshotStore.open(dir);
    expect(store.cursor.revision).toBe(1n);
    await store.close();
  }, 30_000);
});
