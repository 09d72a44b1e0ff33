/**
 * The SnapshotStore conformance suite: one set of checks every store runs (in-memory,
 * LevelDB, any future backend), the way Level implementations share abstract-level's suite.
 * Runner-agnostic: hand it your runner's `describe`/`it`; assertions use node:assert.
 */
import { strict as assert } from "node:assert";
import { copyFile, lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ExportManifest, KvEntry, KvUpdate, SnapshotStore, WatchScope } from "@slipstream/core";
import { MANIFEST_FILE, parseManifest, SlipstreamError, VersionToken, WatchCursor } from "@slipstream/core";

/** What a store can do; each flag gates the checks that need it. */
export interface SnapshotStoreCapabilities {
  /**
   * `open(dir)` after `close()` returns the same cursor and data, and removing `dir` wipes
   * the store. @defaultValue true
   */
  reopen?: boolean;
  /** `import` refuses an artifact whose backendVersion is "999". @defaultValue true */
  tamperBackendVersion?: boolean;
  /**
   * Partial artifacts: `exportTo(dir, { scope })` writes only that scope and records it in
   * the manifest; `import(artifact, dest, { scope })` refuses an artifact whose scope does
   * not cover the node's (`SCOPE_NOT_COVERED`), keeps only the node's keys and exposes them
   * as `store.scope`. The suite's `import` must pass its third argument on.
   * @defaultValue false
   */
  scopedArtifacts?: boolean;
}

/** Options of {@link snapshotStoreSuite}. */
export interface SnapshotStoreSuiteOptions {
  /** Names the suite, e.g. "leveldb". */
  name: string;
  /** The runner's `describe` (vitest, node:test, mocha…). */
  describe: (name: string, fn: () => void) => unknown;
  /** The runner's `it`/`test`; each check is one async function. */
  it: (name: string, fn: () => Promise<void>) => unknown;
  /**
   * Opens (creating if needed) the store living in `dir`. The suite passes a path whose
   * parent exists and which itself may not exist yet.
   */
  open: (dir: string) => Promise<SnapshotStore>;
  /**
   * The store's verified import (its static `import`): artifact → fresh store at `destDir`.
   * `opts.scope` (the importing node's scope) is passed only by the checks of
   * {@link SnapshotStoreCapabilities.scopedArtifacts}.
   */
  import: (artifactDir: string, destDir: string, opts?: { scope?: WatchScope }) => Promise<SnapshotStore>;
  capabilities?: SnapshotStoreCapabilities;
  /** Makes a fresh scratch directory per check. @defaultValue a `mkdtemp` under the OS temp dir */
  tempDir?: () => Promise<string>;
}

const enc = new TextEncoder();

function put(key: string, value: string, revision: bigint): KvUpdate {
  return { type: "put", entry: { key, value: enc.encode(value), version: VersionToken.fromRevision(revision) } };
}

function del(key: string, revision: bigint): KvUpdate {
  return { type: "delete", key, version: VersionToken.fromRevision(revision) };
}

/**
 * The reference log (reference §8): put node.a@1, node.b@2, svc.x@3, node.a=v1b@4,
 * del node.b@5, put node.c@6, svc.y@7. Folded, it gives {node.a=v1b@4, node.c=v3@6,
 * svc.x=sx@3, svc.y=sy@7} at cursor 7.
 */
export function fixtureLog(): KvUpdate[] {
  return [
    put("node.a", "v1", 1n),
    put("node.b", "v2", 2n),
    put("svc.x", "sx", 3n),
    put("node.a", "v1b", 4n),
    del("node.b", 5n),
    put("node.c", "v3", 6n),
    put("svc.y", "sy", 7n),
  ];
}

function revisionOf(u: KvUpdate): bigint {
  const v = u.type === "put" ? u.entry.version : u.version;
  const r = v.revision;
  assert.ok(r !== undefined);
  return r;
}

/** Folds `log` into `store` in batches of `batchSize`, each committed at its last revision. */
export async function foldLog(store: SnapshotStore, log: readonly KvUpdate[], batchSize = 3): Promise<void> {
  for (let i = 0; i < log.length; i += batchSize) {
    const batch = log.slice(i, i + batchSize);
    await store.apply(batch, WatchCursor.fromRevision(revisionOf(batch.at(-1) as KvUpdate)));
  }
}

/** A comparable picture of a store: cursor hex and every entry (key, value hex, version hex). */
export async function dumpStore(store: SnapshotStore, prefix = ""): Promise<{ cursor: string; entries: string[][] }> {
  const entries: string[][] = [];
  for await (const e of store.range(prefix)) {
    entries.push([e.key, Buffer.from(e.value).toString("hex"), e.version.toHex()]);
  }
  return { cursor: store.cursor.toHex(), entries };
}

const REFERENCE: string[][] = [
  ["node.a", Buffer.from("v1b").toString("hex"), VersionToken.fromRevision(4n).toHex()],
  ["node.c", Buffer.from("v3").toString("hex"), VersionToken.fromRevision(6n).toHex()],
  ["svc.x", Buffer.from("sx").toString("hex"), VersionToken.fromRevision(3n).toHex()],
  ["svc.y", Buffer.from("sy").toString("hex"), VersionToken.fromRevision(7n).toHex()],
];
const CURSOR_7 = WatchCursor.fromRevision(7n).toHex();

async function keysOf(store: SnapshotStore, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of store.range(prefix)) out.push(e.key);
  return out;
}

function isCode(code: SlipstreamError["code"], text?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(SlipstreamError.is(err, code), `expected a ${code} SlipstreamError, got ${String(err)}`);
    if (text) assert.match((err as Error).message, text);
    return true;
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

function largestFile(m: ExportManifest): string {
  const sorted = [...m.files].sort((a, b) => b.size - a.size);
  assert.ok(sorted[0], "the artifact declares at least one payload file");
  return sorted[0].path;
}

async function editManifest(artifactDir: string, edit: (doc: Record<string, unknown>) => void): Promise<void> {
  const path = join(artifactDir, MANIFEST_FILE);
  const doc = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
  edit(doc);
  await writeFile(path, `${JSON.stringify(doc, null, 2)}\n`);
}

/**
 * Registers the SnapshotStore conformance checks under `describe("<name> SnapshotStore conformance")`.
 *
 * @example
 * ```ts
 * import { describe, it } from "vitest";
 * import { snapshotStoreSuite } from "@slipstream/fold";
 * snapshotStoreSuite({ name: "leveldb", describe, it,
 *   open: (dir) => LevelSnapshotStore.open(dir),
 *   import: (artifactDir, destDir) => LevelSnapshotStore.import(artifactDir, destDir) });
 * ```
 */
export function snapshotStoreSuite(opts: SnapshotStoreSuiteOptions): void {
  const { describe, it, open, name } = opts;
  const importer = opts.import;
  const reopen = opts.capabilities?.reopen ?? true;
  const tamperBackendVersion = opts.capabilities?.tamperBackendVersion ?? true;
  const scopedArtifacts = opts.capabilities?.scopedArtifacts ?? false;
  const makeRoot = opts.tempDir ?? (() => mkdtemp(join(tmpdir(), "slipstream-store-suite-")));

  /** Runs a check with a fresh scratch root; every store it opens is closed afterwards. */
  function check(title: string, fn: (ctx: Ctx) => Promise<void>): void {
    it(title, async () => {
      const root = await makeRoot();
      const opened: SnapshotStore[] = [];
      const track = <S extends SnapshotStore>(s: S): S => {
        opened.push(s);
        return s;
      };
      const ctx: Ctx = {
        root,
        open: async (dir) => track(await open(dir)),
        importer: async (a, d, o) => track(await (o === undefined ? importer(a, d) : importer(a, d, o))),
        close: async (s) => {
          const i = opened.indexOf(s);
          if (i >= 0) opened.splice(i, 1);
          await s.close();
        },
      };
      try {
        await fn(ctx);
      } finally {
        for (const s of opened.reverse()) await s.close().catch(() => {});
        await rm(root, { recursive: true, force: true });
      }
    });
  }

  interface Ctx {
    root: string;
    open: (dir: string) => Promise<SnapshotStore>;
    importer: (artifactDir: string, destDir: string, opts?: { scope?: WatchScope }) => Promise<SnapshotStore>;
    close: (s: SnapshotStore) => Promise<void>;
  }

  async function fixtureStore(ctx: Ctx, dir = "store"): Promise<SnapshotStore> {
    const store = await ctx.open(join(ctx.root, dir));
    await foldLog(store, fixtureLog(), 3);
    return store;
  }

  /** Exports the fixture to `<root>/artifact`, closes the source store. */
  async function fixtureArtifact(ctx: Ctx): Promise<{ artifact: string; manifest: ExportManifest }> {
    const store = await fixtureStore(ctx, "source");
    const artifact = join(ctx.root, "artifact");
    const manifest = await store.exportTo(artifact);
    await ctx.close(store);
    return { artifact, manifest };
  }

  /** Asserts a scoped import fails with SCOPE_NOT_COVERED and leaves nothing behind. */
  async function expectNotCovered(ctx: Ctx, artifact: string, scope: WatchScope | undefined): Promise<void> {
    const dest = join(ctx.root, "not-covered");
    await assert.rejects(
      ctx.importer(artifact, dest, scope === undefined ? undefined : { scope }),
      isCode("SCOPE_NOT_COVERED"),
    );
    assert.equal(await exists(dest), false, "a refused import leaves the destination absent");
    const leftovers = (await readdir(ctx.root)).filter((n) => n.startsWith(".slipstream-"));
    assert.deepEqual(leftovers, [], "a refused import leaves no stage behind");
  }

  /** Asserts `importer(artifact, dest)` fails with ARTIFACT_INVALID and leaves nothing behind. */
  async function expectRefusedImport(ctx: Ctx, artifact: string, text?: RegExp): Promise<void> {
    const dest = join(ctx.root, "imported");
    await assert.rejects(ctx.importer(artifact, dest), isCode("ARTIFACT_INVALID", text));
    assert.equal(await exists(dest), false, "a refused import leaves the destination absent");
    const leftovers = (await readdir(ctx.root)).filter((n) => n.startsWith(".slipstream-"));
    assert.deepEqual(leftovers, [], "a refused import leaves no stage behind");
  }

  describe(`${name} SnapshotStore conformance`, () => {
    check("fresh store has cursor none and no entries", async (ctx) => {
      const store = await ctx.open(join(ctx.root, "store"));
      assert.equal(store.cursor.isNone, true);
      assert.deepEqual(await keysOf(store, ""), []);
      assert.equal(await store.get("node.a"), undefined);
      assert.equal(typeof store.backend, "string");
    });

    check("round trip: the fixture log folds to the reference state at cursor 7", async (ctx) => {
      const store = await fixtureStore(ctx);
      assert.deepEqual(await dumpStore(store), { cursor: CURSOR_7, entries: REFERENCE });
    });

    check("get and range: deleted and absent keys, versions, prefix bounds", async (ctx) => {
      const store = await fixtureStore(ctx);
      assert.equal(await store.get("node.b"), undefined, "deleted key");
      assert.equal(await store.get("node.zzz"), undefined, "absent key");
      const a = (await store.get("node.a")) as KvEntry;
      assert.ok(a);
      assert.equal(Buffer.from(a.value).toString(), "v1b");
      assert.equal(a.version.revision, 4n);
      assert.deepEqual(await keysOf(store, ""), ["node.a", "node.c", "svc.x", "svc.y"]);
      assert.deepEqual(await keysOf(store, "node."), ["node.a", "node.c"]);
      assert.deepEqual(await keysOf(store, "svc."), ["svc.x", "svc.y"]);
      assert.deepEqual(await keysOf(store, "node.a"), ["node.a"]);
      assert.deepEqual(await keysOf(store, "zzz"), []);
      assert.deepEqual(await keysOf(store, "a"), []);
    });

    check("range is in ascending UTF-8 byte order over a byte prefix", async (ctx) => {
      const store = await ctx.open(join(ctx.root, "store"));
      // U+FFFF sorts before U+10000 in UTF-8 bytes, after it in UTF-16 code units.
      const keys = ["b", "a\u{10000}", "a", "a\uffff", "ab", "a.b", "a\u00e9", "B", "a\u0001"];
      await store.apply(
        keys.map((k, i) => put(k, `v${i}`, BigInt(i + 1))),
        WatchCursor.fromRevision(BigInt(keys.length)),
      );
      const expected = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
      assert.deepEqual(await keysOf(store, ""), expected);
      assert.deepEqual(
        await keysOf(store, "a"),
        expected.filter((k) => k.startsWith("a")),
      );
      assert.deepEqual(await keysOf(store, "a\uffff"), ["a\uffff"]);
      assert.deepEqual(await keysOf(store, "c"), []);
    });

    check("breaking out of a range early releases it; the store keeps working", async (ctx) => {
      const store = await fixtureStore(ctx);
      let seen = 0;
      for await (const _ of store.range("")) {
        seen++;
        if (seen === 2) break;
      }
      assert.equal(seen, 2);
      await store.apply([put("node.d", "v4", 8n)], WatchCursor.fromRevision(8n));
      assert.deepEqual(await keysOf(store, "node."), ["node.a", "node.c", "node.d"]);
      assert.equal(store.cursor.revision, 8n);
    });

    check("apply commits puts, deletes, purges and the cursor together", async (ctx) => {
      const store = await ctx.open(join(ctx.root, "store"));
      await store.apply(
        [
          put("k1", "one", 1n),
          put("k2", "two", 2n),
          put("k3", "three", 3n),
          del("k1", 4n),
          { type: "purge", key: "k2", version: VersionToken.fromRevision(5n) },
          del("never-existed", 6n),
          put("k3", "three-b", 7n),
        ],
        WatchCursor.fromRevision(10n),
      );
      assert.equal(store.cursor.revision, 10n);
      assert.deepEqual(await keysOf(store, ""), ["k3"]);
      assert.equal(Buffer.from(((await store.get("k3")) as KvEntry).value).toString(), "three-b");
      // A synthetic delete (unknown version) removes as well.
      await store.apply([{ type: "delete", key: "k3", version: VersionToken.unknown() }], store.cursor);
      assert.equal(await store.get("k3"), undefined);
      assert.equal(store.cursor.revision, 10n);
    });

    check("an empty batch still advances the cursor", async (ctx) => {
      const dir = join(ctx.root, "store");
      const store = await fixtureStore(ctx);
      await store.apply([], WatchCursor.fromRevision(9n));
      assert.equal(store.cursor.revision, 9n);
      assert.deepEqual((await dumpStore(store)).entries, REFERENCE);
      if (reopen) {
        await ctx.close(store);
        const again = await ctx.open(dir);
        assert.equal(again.cursor.revision, 9n, "the empty-batch cursor is durable");
      }
    });

    check("empty-value puts are kept as present entries", async (ctx) => {
      const dir = join(ctx.root, "store");
      const store = await ctx.open(dir);
      await store.apply(
        [
          { type: "put", entry: { key: "tomb", value: new Uint8Array(0), version: VersionToken.fromRevision(1n) } },
          put("live", "x", 2n),
        ],
        WatchCursor.fromRevision(2n),
      );
      const t = await store.get("tomb");
      assert.ok(t, "an empty-value put is an entry");
      assert.equal(t.value.length, 0);
      assert.equal(t.version.revision, 1n);
      assert.deepEqual(await keysOf(store, ""), ["live", "tomb"]);
      const artifact = join(ctx.root, "artifact");
      await store.exportTo(artifact);
      const imported = await ctx.importer(artifact, join(ctx.root, "imported"));
      assert.deepEqual(await dumpStore(imported), await dumpStore(store));
      if (reopen) {
        await ctx.close(store);
        const again = await ctx.open(dir);
        assert.equal((await again.get("tomb"))?.value.length, 0);
      }
    });

    check("versions of any length up to 10 bytes survive", async (ctx) => {
      const store = await ctx.open(join(ctx.root, "store"));
      const ten = VersionToken.fromBytes(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
      const cursor = WatchCursor.fromVersion(VersionToken.fromBytes(new Uint8Array([9, 9, 9, 9, 9, 9, 9, 9, 9, 9])));
      await store.apply([{ type: "put", entry: { key: "k", value: enc.encode("v"), version: ten } }], cursor);
      assert.equal((await store.get("k"))?.version.toHex(), ten.toHex());
      assert.equal(store.cursor.toHex(), cursor.toHex());
      const artifact = join(ctx.root, "artifact");
      await store.exportTo(artifact);
      const imported = await ctx.importer(artifact, join(ctx.root, "imported"));
      assert.deepEqual(await dumpStore(imported), await dumpStore(store));
    });

    if (reopen) {
      check("reopen returns the same cursor and data, then folds the delta", async (ctx) => {
        const dir = join(ctx.root, "store");
        const log = fixtureLog();
        const first = await ctx.open(dir);
        await foldLog(first, log.slice(0, 3), 3);
        assert.equal(first.cursor.revision, 3n);
        const before = await dumpStore(first);
        await ctx.close(first);
        const second = await ctx.open(dir);
        assert.equal(second.cursor.revision, 3n);
        assert.deepEqual(await dumpStore(second), before);
        await foldLog(second, log.slice(3), 3);
        assert.deepEqual(await dumpStore(second), { cursor: CURSOR_7, entries: REFERENCE });
        await ctx.close(second);
        const third = await ctx.open(dir);
        assert.deepEqual(await dumpStore(third), { cursor: CURSOR_7, entries: REFERENCE });
      });
    }

    check("the fold is a pure function of the log (any batching, replay from scratch)", async (ctx) => {
      const reference = await fixtureStore(ctx, "reference");
      const expected = await dumpStore(reference);
      for (const size of [1, 2, 7]) {
        const replay = await ctx.open(join(ctx.root, `replay-${size}`));
        await foldLog(replay, fixtureLog(), size);
        assert.deepEqual(await dumpStore(replay), expected, `batches of ${size}`);
      }
      if (reopen) {
        // Wipe after 4, reopen → none, full refold → the same state.
        const dir = join(ctx.root, "wiped");
        const s = await ctx.open(dir);
        await foldLog(s, fixtureLog().slice(0, 4), 4);
        await ctx.close(s);
        await rm(dir, { recursive: true, force: true });
        const fresh = await ctx.open(dir);
        assert.equal(fresh.cursor.isNone, true, "a wiped store starts from none");
        assert.deepEqual(await keysOf(fresh, ""), []);
        await foldLog(fresh, fixtureLog(), 3);
        assert.deepEqual(await dumpStore(fresh), expected);
      }
    });

    check("export → import round trip preserves data and cursor", async (ctx) => {
      const store = await fixtureStore(ctx);
      const artifact = join(ctx.root, "artifact");
      const manifest = await store.exportTo(artifact);
      assert.equal(manifest.cursor.toHex(), CURSOR_7);
      assert.equal(manifest.backend, store.backend);
      assert.equal(await exists(join(artifact, MANIFEST_FILE)), true);
      const imported = await ctx.importer(artifact, join(ctx.root, "imported"));
      assert.deepEqual(await dumpStore(imported), { cursor: CURSOR_7, entries: REFERENCE });
      assert.equal(imported.backend, store.backend);
      const leftovers = (await readdir(ctx.root)).filter((n) => n.startsWith(".slipstream-"));
      assert.deepEqual(leftovers, [], "no stage left behind");
    });

    check("import then continue folding", async (ctx) => {
      const log = fixtureLog();
      const source = await ctx.open(join(ctx.root, "source"));
      await foldLog(source, log.slice(0, 3), 3);
      await foldLog(source, log.slice(3, 4), 1);
      assert.equal(source.cursor.revision, 4n);
      const artifact = join(ctx.root, "artifact");
      const manifest = await source.exportTo(artifact);
      assert.equal(manifest.cursor.revision, 4n);
      const dest = join(ctx.root, "imported");
      let imported = await ctx.importer(artifact, dest);
      assert.equal(imported.cursor.revision, 4n);
      await foldLog(imported, log.slice(4), 3);
      assert.deepEqual(await dumpStore(imported), { cursor: CURSOR_7, entries: REFERENCE });
      if (reopen) {
        await ctx.close(imported);
        imported = await ctx.open(dest);
        assert.deepEqual(await dumpStore(imported), { cursor: CURSOR_7, entries: REFERENCE });
      }
    });

    check("export records the exporter given (none by default); a bad one is refused, nothing written", async (ctx) => {
      const store = await fixtureStore(ctx);
      const named = join(ctx.root, "named");
      const manifest = await store.exportTo(named, { exporter: "node-a:4242" });
      assert.equal(manifest.exporter, "node-a:4242");
      const text = await readFile(join(named, MANIFEST_FILE), "utf8");
      assert.equal(parseManifest(text).exporter, "node-a:4242", "the exporter is in MANIFEST.json");
      const imported = await ctx.importer(named, join(ctx.root, "imported"));
      assert.deepEqual(await dumpStore(imported), { cursor: CURSOR_7, entries: REFERENCE });
      const plain = join(ctx.root, "plain");
      assert.equal((await store.exportTo(plain)).exporter, undefined);
      assert.doesNotMatch(await readFile(join(plain, MANIFEST_FILE), "utf8"), /exporter/);
      const bad = join(ctx.root, "bad");
      await assert.rejects(store.exportTo(bad, { exporter: "line\nbreak" }), isCode("INVALID_ARGUMENT", /exporter/));
      assert.equal(await exists(bad), false, "a refused export leaves the destination absent");
      const leftovers = (await readdir(ctx.root)).filter((n) => n.startsWith(".slipstream-"));
      assert.deepEqual(leftovers, [], "a refused export leaves no stage behind");
    });

    check("export of an empty store", async (ctx) => {
      const store = await ctx.open(join(ctx.root, "store"));
      const artifact = join(ctx.root, "artifact");
      const manifest = await store.exportTo(artifact);
      assert.equal(manifest.cursor.isNone, true);
      const imported = await ctx.importer(artifact, join(ctx.root, "imported"));
      assert.equal(imported.cursor.isNone, true);
      assert.deepEqual(await keysOf(imported, ""), []);
    });

    check("export refuses a non-empty destination and leaves it untouched", async (ctx) => {
      const store = await fixtureStore(ctx);
      const dest = join(ctx.root, "occupied");
      await mkdir(dest);
      await writeFile(join(dest, "stray"), "keep me");
      await assert.rejects(store.exportTo(dest), isCode("ARTIFACT_INVALID"));
      assert.deepEqual(await readdir(dest), ["stray"]);
      assert.equal(await readFile(join(dest, "stray"), "utf8"), "keep me");
      // The store is unharmed and can still export.
      const ok = await store.exportTo(join(ctx.root, "artifact"));
      assert.equal(ok.cursor.toHex(), CURSOR_7);
    });

    check("import into a non-empty destination is refused; a retry to a fresh one works", async (ctx) => {
      const { artifact } = await fixtureArtifact(ctx);
      const dest = join(ctx.root, "occupied");
      await mkdir(dest);
      await writeFile(join(dest, "stray"), "keep me");
      await assert.rejects(ctx.importer(artifact, dest), isCode("ARTIFACT_INVALID"));
      assert.deepEqual(await readdir(dest), ["stray"]);
      assert.equal(await readFile(join(dest, "stray"), "utf8"), "keep me");
      const imported = await ctx.importer(artifact, join(ctx.root, "fresh"));
      assert.deepEqual(await dumpStore(imported), { cursor: CURSOR_7, entries: REFERENCE });
    });

    check("import rejects a changed byte in the largest payload file", async (ctx) => {
      const { artifact, manifest } = await fixtureArtifact(ctx);
      const path = join(artifact, largestFile(manifest));
      const bytes = await readFile(path);
      assert.ok(bytes.length > 0);
      const mid = bytes.length >> 1;
      bytes[mid] = (bytes[mid] as number) ^ 0xff;
      await writeFile(path, bytes);
      await expectRefusedImport(ctx, artifact, /checksum|recover|cursor/);
      // The untampered copy still imports (the refusal left nothing that blocks a retry).
      bytes[mid] = (bytes[mid] as number) ^ 0xff;
      await writeFile(path, bytes);
      const imported = await ctx.importer(artifact, join(ctx.root, "imported"));
      assert.equal(imported.cursor.toHex(), CURSOR_7);
    });

    check("import rejects a missing payload file", async (ctx) => {
      const { artifact, manifest } = await fixtureArtifact(ctx);
      await unlink(join(artifact, largestFile(manifest)));
      await expectRefusedImport(ctx, artifact, /missing/);
    });

    check("import rejects an undeclared extra file data/smuggled", async (ctx) => {
      const { artifact } = await fixtureArtifact(ctx);
      await writeFile(join(artifact, "data", "smuggled"), "surprise");
      await expectRefusedImport(ctx, artifact, /undeclared/);
    });

    check("import rejects a symlink in the payload", async (ctx) => {
      const { artifact, manifest } = await fixtureArtifact(ctx);
      const target = join(artifact, largestFile(manifest));
      const outside = join(ctx.root, "outside-copy");
      await copyFile(target, outside);
      await unlink(target);
      await symlink(outside, target);
      await expectRefusedImport(ctx, artifact, /non-regular/);
    });

    check("import rejects a wrong backend", async (ctx) => {
      const { artifact, manifest } = await fixtureArtifact(ctx);
      await editManifest(artifact, (doc) => {
        doc.backend = manifest.backend === "wrong-backend" ? "other-backend" : "wrong-backend";
      });
      await expectRefusedImport(ctx, artifact, /backend/);
    });

    check("import rejects an unsupported schemaVersion 999", async (ctx) => {
      const { artifact } = await fixtureArtifact(ctx);
      await editManifest(artifact, (doc) => {
        doc.schemaVersion = 999;
      });
      await expectRefusedImport(ctx, artifact, /schemaVersion/);
    });

    if (tamperBackendVersion) {
      check('import rejects backendVersion "999"', async (ctx) => {
        const { artifact } = await fixtureArtifact(ctx);
        await editManifest(artifact, (doc) => {
          doc.backendVersion = "999";
        });
        await expectRefusedImport(ctx, artifact, /999/);
      });
    }

    check("import rejects a manifest cursor the staged copy disagrees with", async (ctx) => {
      const { artifact } = await fixtureArtifact(ctx);
      await editManifest(artifact, (doc) => {
        doc.cursor = "00000000000003e7";
      });
      await expectRefusedImport(ctx, artifact, /cursor/);
    });

    if (scopedArtifacts) {
      const NODE_ONLY = REFERENCE.filter(([k]) => (k as string).startsWith("node."));
      const SVC_ONLY = REFERENCE.filter(([k]) => (k as string).startsWith("svc."));

      check("a scoped export holds only its prefixes and records its scope", async (ctx) => {
        const store = await fixtureStore(ctx);
        const artifact = join(ctx.root, "artifact");
        const manifest = await store.exportTo(artifact, { scope: { kind: "prefixes", prefixes: ["node.", "node.a"] } });
        assert.deepEqual(manifest.scope, ["node."], "the manifest records the canonical scope");
        assert.equal(manifest.cursor.toHex(), CURSOR_7, "the artifact's cursor is the store's");
        assert.match(await readFile(join(artifact, MANIFEST_FILE), "utf8"), /"scope": \[\n\s+"node\."\n\s+\]/);
        const imported = await ctx.importer(artifact, join(ctx.root, "imported"), {
          scope: { kind: "prefix", prefix: "node." },
        });
        assert.deepEqual(await dumpStore(imported), { cursor: CURSOR_7, entries: NODE_ONLY });
        assert.deepEqual(imported.scope, ["node."]);
        // The live store is unchanged and a whole export still has no scope field.
        assert.deepEqual(await dumpStore(store), { cursor: CURSOR_7, entries: REFERENCE });
        const whole = await store.exportTo(join(ctx.root, "whole"));
        assert.equal(whole.scope, undefined);
        assert.doesNotMatch(await readFile(join(ctx.root, "whole", MANIFEST_FILE), "utf8"), /scope/);
      });

      check("a partial artifact is refused for a whole-bucket node (SCOPE_NOT_COVERED)", async (ctx) => {
        const store = await fixtureStore(ctx);
        const artifact = join(ctx.root, "artifact");
        await store.exportTo(artifact, { scope: { kind: "prefix", prefix: "node." } });
        await expectNotCovered(ctx, artifact, undefined);
        await expectNotCovered(ctx, artifact, { kind: "all" });
        await expectNotCovered(ctx, artifact, { kind: "prefixes", prefixes: ["node.", "svc."] });
        await expectNotCovered(ctx, artifact, { kind: "prefix", prefix: "no" });
        // A narrower node is covered.
        const narrow = await ctx.importer(artifact, join(ctx.root, "narrow"), {
          scope: { kind: "prefix", prefix: "node.a" },
        });
        assert.deepEqual(
          (await dumpStore(narrow)).entries,
          NODE_ONLY.filter(([k]) => k === "node.a"),
        );
      });

      check("a narrow node bootstraps from a wider artifact, keeps only its keys and folds on", async (ctx) => {
        const log = fixtureLog();
        const source = await ctx.open(join(ctx.root, "source"));
        await foldLog(source, log.slice(0, 4), 4);
        const artifact = join(ctx.root, "artifact");
        await source.exportTo(artifact);
        const dest = join(ctx.root, "imported");
        let imported = await ctx.importer(artifact, dest, { scope: { kind: "prefix", prefix: "svc." } });
        assert.equal(imported.cursor.revision, 4n, "the imported cursor is the artifact's");
        assert.deepEqual(await keysOf(imported, ""), ["svc.x"]);
        assert.deepEqual(imported.scope, ["svc."]);
        // Resume with its own scope: only svc.* updates reach it.
        await foldLog(
          imported,
          log.slice(4).filter((u) => (u.type === "put" ? u.entry.key : u.key).startsWith("svc.")),
          3,
        );
        await imported.apply([], WatchCursor.fromRevision(7n));
        assert.deepEqual(await dumpStore(imported), { cursor: CURSOR_7, entries: SVC_ONLY });
        // Its own exports say what they hold; a wider export is refused.
        const again = await imported.exportTo(join(ctx.root, "re-export"));
        assert.deepEqual(again.scope, ["svc."]);
        await expectNotCovered(ctx, join(ctx.root, "re-export"), undefined);
        const second = await ctx.importer(join(ctx.root, "re-export"), join(ctx.root, "second"), {
          scope: { kind: "prefix", prefix: "svc." },
        });
        assert.deepEqual(await dumpStore(second), { cursor: CURSOR_7, entries: SVC_ONLY });
        await assert.rejects(
          imported.exportTo(join(ctx.root, "wider"), { scope: { kind: "all" } }),
          isCode("SCOPE_NOT_COVERED"),
        );
        assert.equal(await exists(join(ctx.root, "wider")), false);
        if (reopen) {
          await ctx.close(imported);
          imported = await ctx.open(dest);
          assert.deepEqual(imported.scope, ["svc."], "the scope survives a reopen");
          assert.deepEqual(await dumpStore(imported), { cursor: CURSOR_7, entries: SVC_ONLY });
        }
      });

      check("a scoped import still verifies the whole artifact first", async (ctx) => {
        const { artifact, manifest } = await fixtureArtifact(ctx);
        const path = join(artifact, largestFile(manifest));
        const bytes = await readFile(path);
        const mid = bytes.length >> 1;
        bytes[mid] = (bytes[mid] as number) ^ 0xff;
        await writeFile(path, bytes);
        const dest = join(ctx.root, "imported");
        await assert.rejects(
          ctx.importer(artifact, dest, { scope: { kind: "prefix", prefix: "node." } }),
          isCode("ARTIFACT_INVALID", /checksum/),
        );
        assert.equal(await exists(dest), false);
      });

      check("import rejects a manifest scope its payload disagrees with", async (ctx) => {
        const store = await fixtureStore(ctx);
        const artifact = join(ctx.root, "artifact");
        await store.exportTo(artifact, { scope: { kind: "prefix", prefix: "node." } });
        // Claiming the whole bucket for a partial payload would hide missing keys.
        await editManifest(artifact, (doc) => {
          delete doc.scope;
        });
        await expectRefusedImport(ctx, artifact, /scope/);
      });

      check("an empty export or import scope is INVALID_ARGUMENT", async (ctx) => {
        const store = await fixtureStore(ctx);
        await assert.rejects(
          store.exportTo(join(ctx.root, "none"), { scope: { kind: "prefixes", prefixes: [] } }),
          isCode("INVALID_ARGUMENT"),
        );
        const artifact = join(ctx.root, "artifact");
        await store.exportTo(artifact);
        await assert.rejects(
          ctx.importer(artifact, join(ctx.root, "imported"), { scope: { kind: "prefixes", prefixes: [] } }),
          isCode("INVALID_ARGUMENT"),
        );
        assert.equal(await exists(join(ctx.root, "imported")), false);
      });
    }
  });
}
