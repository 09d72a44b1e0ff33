import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { type Progress, SlipstreamError, VersionToken } from "@slipstream/core";
import { tempDir } from "@slipstream/testkit";
import { Level } from "level";
import { describe, expect, it } from "vitest";
import {
  ARTIFACT_VERSION,
  decodeValueRecord,
  encodeValueRecord,
  LevelSnapshotStore,
  prefixUpperBound,
} from "../src/index.js";
import { at, del, dump, keysOf, put, seededRandom } from "./helpers.js";

describe("value record codec", () => {
  it("round-trips versions of 0..10 bytes and empty values", () => {
    for (let len = 0; len <= 10; len++) {
      const version = VersionToken.fromBytes(new Uint8Array(len).fill(len + 1));
      for (const value of [new Uint8Array(0), new Uint8Array([0, 255, 7])]) {
        const record = encodeValueRecord(version, value);
        expect(record[0]).toBe(len);
        expect(record.length).toBe(1 + len + value.length);
        const back = decodeValueRecord(record);
        expect(back.version.toHex()).toBe(version.toHex());
        expect(Array.from(back.value)).toEqual(Array.from(value));
        expect(back.value.constructor).toBe(Uint8Array);
      }
    }
  });

  it("refuses an empty record, a version length over 10 and a short record", () => {
    const bad = [new Uint8Array(0), new Uint8Array([11, ...new Uint8Array(11)]), new Uint8Array([8, 1, 2, 3])];
    for (const record of bad) {
      expect(() => decodeValueRecord(record, "k")).toThrow(
        expect.objectContaining({ code: "SNAPSHOT_INVALID_FORMAT" }) as Error,
      );
    }
  });
});

describe("prefixUpperBound", () => {
  it("increments the last byte that is not 0xff and drops trailing 0xff bytes", () => {
    const hex = (b: Buffer | undefined) => b?.toString("hex");
    expect(hex(prefixUpperBound(Buffer.from("abc")))).toBe(Buffer.from("abd").toString("hex"));
    expect(hex(prefixUpperBound(Buffer.from([0x61, 0xff])))).toBe("62");
    expect(hex(prefixUpperBound(Buffer.from([0x61, 0xfe, 0xff, 0xff])))).toBe("61ff");
    expect(hex(prefixUpperBound(Buffer.from([0x00])))).toBe("01");
    expect(prefixUpperBound(Buffer.from([0xff, 0xff]))).toBeUndefined();
    expect(prefixUpperBound(Buffer.alloc(0))).toBeUndefined();
  });
});

describe("LevelSnapshotStore", () => {
  it("range bounds are exact around high code points (UTF-8 bytes ending in 0xbf, 4-byte sequences)", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const store = await LevelSnapshotStore.open(join(tmp.path, "fold"));
    const keys = [
      "a",
      "a\u{10ffff}",
      "a\u{10ffff}x",
      "a\u{10fffe}",
      "a\u{10000}",
      "a\uffff",
      "b",
      "\u{10ffff}",
      "\u{10ffff}\u{10ffff}",
    ];
    await store.apply(
      keys.map((k, i) => put(k, `v${i}`, i + 1)),
      at(keys.length),
    );
    const sorted = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    for (const prefix of [
      "",
      "a",
      "a\u{10ffff}",
      "a\u{10fffe}",
      "\u{10ffff}",
      "\u{10ffff}\u{10ffff}",
      "a\uffff",
      "c",
    ]) {
      expect(await keysOf(store, prefix), `prefix ${JSON.stringify(prefix)}`).toEqual(
        sorted.filter((k) => k.startsWith(prefix)),
      );
    }
    await store.close();
  });

  it("count() tracks overwrites, duplicate keys in a batch, deletes of absent keys, and survives reopen", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const dir = join(tmp.path, "fold");
    const store = await LevelSnapshotStore.open(dir);
    expect(await store.count()).toBe(0);
    await store.apply([put("a", "1", 1), put("a", "2", 2), put("b", "1", 3), del("zz", 4)], at(4));
    expect(await store.count()).toBe(2);
    await store.apply([del("a", 5), put("a", "3", 6), del("a", 7), del("a", 8), put("c", "", 9)], at(9));
    expect(await keysOf(store)).toEqual(["b", "c"]);
    expect(await store.count()).toBe(2);
    await store.apply([{ type: "purge", key: "b", version: VersionToken.fromRevision(10n) }], at(10));
    expect(await store.count()).toBe(1);
    await store.close();
    const again = await LevelSnapshotStore.open(dir);
    expect(await again.count()).toBe(1);
    const stats = await again.stats();
    expect(stats.entries).toBe(1);
    expect(stats.cursor.revision).toBe(10n);
    expect(stats.formatGeneration).toBe(1);
    expect(stats.approximateBytes).toBeGreaterThanOrEqual(0);
    await again.close();
  });

  it("count() stays equal to a full scan through a random workload", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const store = await LevelSnapshotStore.open(join(tmp.path, "fold"));
    const rand = seededRandom(12345);
    let rev = 0;
    for (let b = 0; b < 60; b++) {
      const batch = [];
      for (let i = 0; i < 1 + rand(40); i++) {
        rev++;
        const key = `key.${rand(120)}`;
        batch.push(rand(3) === 0 ? del(key, rev) : put(key, `v${rev}`, rev));
      }
      await store.apply(batch, at(rev));
      expect(await store.count()).toBe((await keysOf(store)).length);
    }
    await store.close();
  });

  it("range streams in byte order, and breaking out early releases the iterator", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const store = await LevelSnapshotStore.open(join(tmp.path, "fold"));
    const n = 5000;
    const batch = [];
    for (let i = 0; i < n; i++) batch.push(put(`r.${String((i * 7919) % n).padStart(5, "0")}`, `v${i}`, i + 1));
    await store.apply(batch, at(n));
    let previous = "";
    let seen = 0;
    for await (const e of store.range("r.")) {
      expect(Buffer.compare(Buffer.from(previous), Buffer.from(e.key))).toBe(-1);
      previous = e.key;
      seen++;
    }
    expect(seen).toBe(n);
    let taken = 0;
    for await (const _ of store.range("")) {
      if (++taken === 10) break;
    }
    expect(taken).toBe(10);
    // The store stays usable after an abandoned iteration.
    expect(await keysOf(store, "r.0000")).toEqual([
      "r.00000",
      "r.00001",
      "r.00002",
      "r.00003",
      "r.00004",
      "r.00005",
      "r.00006",
      "r.00007",
      "r.00008",
      "r.00009",
    ]);
    await store.close();
  });

  it("sync: true round-trips and settle() keeps the state", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const dir = join(tmp.path, "fold");
    const store = await LevelSnapshotStore.open(dir, { sync: true, cacheSize: 1 << 20, writeBufferSize: 1 << 20 });
    for (let i = 1; i <= 50; i++) await store.apply([put(`k${i % 7}`, `v${i}`, i), del(`k${(i + 3) % 7}`, i)], at(i));
    const before = await dump(store);
    await store.settle();
    expect(await dump(store)).toEqual(before);
    await store.close();
    const again = await LevelSnapshotStore.open(dir);
    expect(await dump(again)).toEqual(before);
    expect(again.cursor.revision).toBe(50n);
    await again.close();
  });

  it("an apply issued during an export waits: the artifact holds exactly the pre-apply cursor and data", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const store = await LevelSnapshotStore.open(join(tmp.path, "fold"));
    const batch = [];
    for (let i = 1; i <= 3000; i++) batch.push(put(`k.${i}`, `v${i}`, i));
    await store.apply(batch, at(3000));
    const exporting = store.exportTo(join(tmp.path, "artifact"));
    const applying = store.apply([put("late", "x", 3001), del("k.1", 3002)], at(3002));
    const manifest = await exporting;
    await applying;
    expect(manifest.cursor.revision).toBe(3000n);
    expect(store.cursor.revision).toBe(3002n);
    const imported = await LevelSnapshotStore.import(join(tmp.path, "artifact"), join(tmp.path, "imported"));
    expect(imported.cursor.revision).toBe(3000n);
    expect(await imported.get("late")).toBeUndefined();
    expect(await imported.get("k.1")).toBeDefined();
    expect(await imported.count()).toBe(3000);
    expect(await store.get("late")).toBeDefined();
    await imported.close();
    await store.close();
  });

  it("reads are not queued behind a running export", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const store = await LevelSnapshotStore.open(join(tmp.path, "fold"));
    await store.apply([put("a", "1", 1)], at(1));
    const order: string[] = [];
    let sawExporting = false;
    const manifest = await store.exportTo(join(tmp.path, "artifact"), {
      onProgress: (p) => {
        if (p.phase !== "export" || order.length > 0) return;
        sawExporting = store.exporting;
        // A read issued from inside the export completes before the export does.
        void store.get("a").then((e) => order.push(e ? "get" : "get-missing"));
      },
    });
    order.push("export");
    expect(sawExporting).toBe(true);
    expect(order).toEqual(["get", "export"]);
    expect(manifest.cursor.revision).toBe(1n);
    expect(store.exporting).toBe(false);
    await store.close();
  });

  it("the artifact payload is a plain LevelDB directory without runtime files", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const store = await LevelSnapshotStore.open(join(tmp.path, "fold"));
    await store.apply([put("a", "1", 1)], at(1));
    const manifest = await store.exportTo(join(tmp.path, "artifact"));
    expect(manifest.backend).toBe("leveldb");
    expect(manifest.backendVersion).toBe(ARTIFACT_VERSION);
    const paths = manifest.files.map((f) => f.path);
    expect(paths).toContain("data/CURRENT");
    expect(paths.some((p) => p.startsWith("data/MANIFEST-"))).toBe(true);
    for (const runtime of ["data/LOCK", "data/LOG", "data/LOG.old"]) expect(paths).not.toContain(runtime);
    expect((await readdir(join(tmp.path, "artifact"))).sort()).toEqual(["MANIFEST.json", "data"]);
    await store.close();
  });

  it("a closed store refuses apply, get, range and export with BACKEND; close is idempotent", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const store = await LevelSnapshotStore.open(join(tmp.path, "fold"));
    await store.apply([put("a", "1", 1)], at(1));
    await store.close();
    await store.close();
    const isBackend = (err: unknown) => SlipstreamError.is(err, "BACKEND");
    await expect(store.apply([], at(2)).catch((e: unknown) => isBackend(e))).resolves.toBe(true);
    await expect(store.get("a").catch((e: unknown) => isBackend(e))).resolves.toBe(true);
    await expect(keysOf(store).catch((e: unknown) => isBackend(e))).resolves.toBe(true);
    await expect(store.exportTo(join(tmp.path, "x")).catch((e: unknown) => isBackend(e))).resolves.toBe(true);
  });

  it("malformed updates are programmer errors (TypeError) and change nothing", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const store = await LevelSnapshotStore.open(join(tmp.path, "fold"));
    await store.apply([put("a", "1", 1)], at(1));
    const bad: unknown[] = [
      [{ type: "put", entry: { key: 1, value: new Uint8Array(), version: VersionToken.unknown() } }],
      [{ type: "put", entry: { key: "b", value: "str", version: VersionToken.unknown() } }],
      [{ type: "delete", key: "a", version: 5 }],
      [{ type: "upsert", key: "a" }],
    ];
    for (const batch of bad) {
      await expect(store.apply(batch as never, at(2))).rejects.toBeInstanceOf(TypeError);
    }
    await expect(store.apply([], "cursor" as never)).rejects.toBeInstanceOf(TypeError);
    expect(store.cursor.revision).toBe(1n);
    expect(await dump(store)).toHaveLength(1);
    await store.close();
  });

  it("the on-disk layout is the abstract-level sublevel layout documented as generation 1", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const dir = join(tmp.path, "fold");
    const store = await LevelSnapshotStore.open(dir);
    await store.apply([put("route.a", "x", 5), put("route.b", "", 6)], at(6));
    await store.close();
    const db = new Level<Buffer, Buffer>(dir, { keyEncoding: "buffer", valueEncoding: "buffer" });
    await db.open();
    const data = db.sublevel<string, Buffer>("data", { valueEncoding: "buffer" });
    const meta = db.sublevel<string, Buffer>("meta", { valueEncoding: "buffer" });
    expect(await data.keys().all()).toEqual(["route.a", "route.b"]);
    const rec = (await data.get("route.a")) as Buffer;
    expect(rec.toString("hex")).toBe(`08${"0000000000000005"}${Buffer.from("x").toString("hex")}`);
    expect((await meta.get("format"))?.toString("ascii")).toBe("1");
    expect((await meta.get("cursor"))?.toString("hex")).toBe("0000000000000006");
    expect((await meta.get("count"))?.readBigUInt64BE()).toBe(2n);
    expect((await db.keys().all()).map((k) => k.toString())).toEqual([
      "!data!route.a",
      "!data!route.b",
      "!meta!count",
      "!meta!cursor",
      "!meta!format",
    ]);
    await db.close();
  });

  it("an aborted export or import fails with ABORTED and leaves nothing behind", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const store = await LevelSnapshotStore.open(join(tmp.path, "fold"));
    const batch = [];
    for (let i = 1; i <= 5000; i++) batch.push(put(`k.${i}`, `v${i}`, i));
    await store.apply(batch, at(5000));
    const ctl = new AbortController();
    let reports = 0;
    const exporting = store.exportTo(join(tmp.path, "artifact-aborted"), {
      signal: ctl.signal,
      onProgress: () => {
        if (++reports === 1) ctl.abort();
      },
    });
    await expect(exporting).rejects.toMatchObject({ code: "ABORTED" });
    expect(reports).toBe(1);
    expect(await readdir(tmp.path)).toEqual(["fold"]);
    // The store is fine and exports normally afterwards.
    await store.exportTo(join(tmp.path, "artifact"));
    expect(store.cursor.revision).toBe(5000n);
    await store.close();
    const ctl2 = new AbortController();
    ctl2.abort();
    await expect(
      LevelSnapshotStore.import(join(tmp.path, "artifact"), join(tmp.path, "imported"), { signal: ctl2.signal }),
    ).rejects.toMatchObject({ code: "ABORTED" });
    expect((await readdir(tmp.path)).sort()).toEqual(["artifact", "fold"]);
  });

  it("export and import report byte progress", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const store = await LevelSnapshotStore.open(join(tmp.path, "fold"));
    const batch = [];
    for (let i = 1; i <= 3000; i++) batch.push(put(`k.${i}`, `value-${i}`, i));
    await store.apply(batch, at(3000));
    const seen: Progress[] = [];
    const manifest = await store.exportTo(join(tmp.path, "artifact"), { onProgress: (p) => seen.push(p) });
    const exportPhase = seen.filter((p) => p.phase === "export");
    expect(exportPhase.length).toBeGreaterThan(1);
    expect(exportPhase.every((p, i) => i === 0 || p.bytesDone > (exportPhase[i - 1] as Progress).bytesDone)).toBe(true);
    const total = manifest.files.reduce((n, f) => n + f.size, 0);
    expect(seen.filter((p) => p.phase === "seal").at(-1)?.bytesDone).toBe(total);
    const imported: Progress[] = [];
    const copy = await LevelSnapshotStore.import(join(tmp.path, "artifact"), join(tmp.path, "imported"), {
      onProgress: (p) => imported.push(p),
    });
    expect(imported.at(-1)).toEqual({ phase: "import", bytesDone: total, bytesTotal: total });
    await copy.close();
    await store.close();
  });

  it("a key with a lone surrogate is refused (INVALID_ARGUMENT) instead of aliasing U+FFFD", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const store = await LevelSnapshotStore.open(join(tmp.path, "fold"));
    await store.apply([put("a\ufffd", "real", 1)], at(1));
    await expect(store.apply([put("a\ud800", "alias", 2)], at(2))).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(store.apply([del("a\udc00", 2)], at(2))).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    expect(Buffer.from((await store.get("a\ufffd"))?.value ?? []).toString()).toBe("real");
    expect(store.cursor.revision).toBe(1n);
    // A well-formed astral character is fine.
    await store.apply([put("a\ud83d\ude00", "smile", 2)], at(2));
    expect(await keysOf(store, "a")).toEqual(["a\ufffd", "a\u{1f600}"]);
    await store.close();
  });

  it("close() issued during settle() waits for the compaction and then closes", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const dir = join(tmp.path, "fold");
    const store = await LevelSnapshotStore.open(dir);
    const batch = [];
    for (let i = 1; i <= 20_000; i++) batch.push(put(`k.${i}`, `v${i}`.repeat(8), i));
    await store.apply(batch, at(20_000));
    const settling = store.settle();
    await store.close();
    await settling;
    const again = await LevelSnapshotStore.open(dir);
    expect(await again.count()).toBe(20_000);
    await again.close();
  });

  it("getMany returns entries positionally, with duplicates, absent keys and an empty list", async () => {
    await using tmp = await tempDir("slipstream-leveldb-");
    const store = await LevelSnapshotStore.open(join(tmp.path, "fold"));
    await store.apply([put("a", "1", 1), put("b", "2", 2), del("a", 3), put("c", "", 4)], at(4));
    const got = await store.getMany(["b", "a", "c", "b", "zz"]);
    expect(got.map((e) => e?.key)).toEqual(["b", undefined, "c", "b", undefined]);
    expect(Buffer.from(got[0]?.value ?? []).toString()).toBe("2");
    expect(got[2]?.value.length).toBe(0);
    expect(got[2]?.version.revision).toBe(4n);
    for (const key of ["a", "b", "c", "zz"]) {
      const [many] = await store.getMany([key]);
      expect(many?.version.toHex()).toBe((await store.get(key))?.version.toHex());
    }
    expect(await store.getMany([])).toEqual([]);
    await store.close();
  });
});
