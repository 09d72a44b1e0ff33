/**
 * The BlobStore conformance suite. A transport package's whole test file is one call:
 *
 * ```ts
 * import { describe, it } from "vitest";
 * import { blobStoreConformance } from "@slipstream/transport";
 * blobStoreConformance({ name: "FsBlobStore", describe, it, factory: async () => … });
 * ```
 *
 * Runner-agnostic: it only calls the `describe`/`it` it is given and asserts with
 * `node:assert`. Tests that need conditional writes are skipped (not run) on stores that
 * do not declare them; those stores get the non-atomic checks instead.
 */
import * as assert from "node:assert/strict";
import { createHash, randomFillSync } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type ErrorCode,
  exportArtifact,
  MANIFEST_FILE,
  MAX_MANIFEST_BYTES,
  SlipstreamError,
  WatchCursor,
} from "@slipstream/core";
import { ArtifactTransport } from "./artifact-transport.js";
import type { BlobStore, ConditionalPutResult } from "./blob-store.js";
import { buildTar, makeTestArtifact, type TarEntrySpec } from "./fixtures.js";
import { withoutConditionalWrites } from "./wrappers.js";

/** A store under test and how to dispose of it. */
export interface BlobStoreHarness {
  store: BlobStore;
  cleanup?: () => Promise<void>;
}

/** Options of {@link blobStoreConformance}. */
export interface BlobStoreConformanceOptions {
  /** Shown as the top-level describe block. */
  name: string;
  /** The runner's `describe`. */
  describe: (name: string, fn: () => void) => unknown;
  /** The runner's `it`/`test`; give it a timeout of a minute or more for the big-object test. */
  it: (name: string, fn: () => Promise<void>) => unknown;
  /** A fresh, empty store for every test. */
  factory: () => Promise<BlobStore | BlobStoreHarness>;
  /**
   * Size of the big streamed object. 0 skips that test.
   * @defaultValue 200 MiB
   */
  bigObjectBytes?: number;
  /**
   * The most the process's heap + array buffers may grow while the big object streams.
   * Run the tests with `node --expose-gc` (vitest: `execArgv`) so a peak is judged after a
   * collection rather than with garbage still counted.
   * @defaultValue max(96 MiB, bigObjectBytes / 2)
   */
  memoryBoundBytes?: number;
}

const MiB = 1024 * 1024;
const enc = new TextEncoder();

async function* chunksOf(...parts: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield p;
}

async function readAll(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of body) out.push(Buffer.from(c));
  return Buffer.concat(out);
}

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, text?: RegExp): Promise<SlipstreamError> {
  let caught: unknown;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  if (caught === undefined) assert.fail(`expected a ${code} rejection, but it resolved`);
  if (!SlipstreamError.is(caught)) assert.fail(`expected a SlipstreamError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, `expected ${code}, got ${caught.code}: ${caught.message}`);
  if (text) assert.match(caught.message, text);
  return caught;
}

/** True when `key` exists; closes the stream it opened. */
async function exists(store: BlobStore, key: string): Promise<boolean> {
  const got = await store.get(key);
  if (!got) return false;
  // return() on an iterator that never started does not run its cleanup: destroy streams.
  const stream = got.body as { destroy?: () => void };
  if (typeof stream.destroy === "function") stream.destroy();
  else await readAll(got.body);
  return true;
}

async function listAll(store: BlobStore, prefix: string) {
  const out = [];
  for await (const item of store.list(prefix)) out.push(item);
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

function memNow(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/**
 * Memory growth since `base`, counting what is retained, not garbage awaiting collection:
 * when the raw figure reaches `bound` and the runner exposes the collector (`node
 * --expose-gc`), collect and measure again. Node 22 and later collect dead Buffers lazily
 * enough that a store streaming in bounded chunks can otherwise look unbounded.
 */
function growthSince(base: number, bound: number): number {
  const raw = memNow() - base;
  const gc = (globalThis as { gc?: () => void }).gc;
  if (raw < bound || typeof gc !== "function") return raw;
  gc();
  return memNow() - base;
}

/** Registers the conformance suite for a BlobStore implementation. */
export function blobStoreConformance(opts: BlobStoreConformanceOptions): void {
  const { describe, it } = opts;
  const bigBytes = opts.bigObjectBytes ?? 200 * MiB;
  const memBound = opts.memoryBoundBytes ?? Math.max(96 * MiB, Math.floor(bigBytes / 2));

  async function withStore(fn: (store: BlobStore, scratch: string) => Promise<void>): Promise<void> {
    const made = await opts.factory();
    const harness: BlobStoreHarness = "store" in made && !("put" in made) ? made : { store: made as BlobStore };
    const scratch = await mkdtemp(join(tmpdir(), "slipstream-conformance-"));
    try {
      await fn(harness.store, scratch);
    } finally {
      await rm(scratch, { recursive: true, force: true });
      await harness.cleanup?.();
    }
  }

  /** Runs `fn` only on stores that declare conditional writes (others pass trivially). */
  function casIt(name: string, fn: (store: BlobStore, scratch: string) => Promise<void>): void {
    it(name, () =>
      withStore(async (store, scratch) => {
        if (!store.capabilities.conditionalWrites) return;
        await fn(store, scratch);
      }),
    );
  }

  /** A transport that can publish on this store (opting into non-atomic mode where needed). */
  function transportFor(store: BlobStore, prefix = "conformance"): ArtifactTransport {
    return new ArtifactTransport(store, {
      prefix,
      allowNonAtomicPointer: !store.capabilities.conditionalWrites,
      timeoutMs: 60_000,
    });
  }

  describe(opts.name, () => {
    describe("BlobStore", () => {
      it("round-trips an empty object", () =>
        withStore(async (store) => {
          await store.put("rt/empty", chunksOf());
          const got = await store.get("rt/empty");
          assert.ok(got, "the object exists");
          assert.equal(got.size, 0);
          assert.equal((await readAll(got.body)).length, 0);
        }));

      it("round-trips a small object written in several chunks", () =>
        withStore(async (store) => {
          await store.put("rt/small.bin", chunksOf(enc.encode("hello "), enc.encode("blob "), enc.encode("store")));
          const got = await store.get("rt/small.bin");
          assert.ok(got);
          assert.equal(got.size, 16);
          assert.equal((await readAll(got.body)).toString(), "hello blob store");
          const small = await store.readSmall("rt/small.bin", { maxBytes: 1024 });
          assert.equal(Buffer.from(small?.bytes ?? []).toString(), "hello blob store");
          assert.equal(typeof small?.version, "string");
        }));

      it("replaces an object on a second put", () =>
        withStore(async (store) => {
          await store.put("rt/x", chunksOf(enc.encode("one")));
          await store.put("rt/x", chunksOf(enc.encode("two!")));
          const got = await store.readSmall("rt/x", { maxBytes: 100 });
          assert.equal(Buffer.from(got?.bytes ?? []).toString(), "two!");
        }));

      it(`streams a ${Math.round(bigBytes / MiB)} MiB object both ways with bounded memory`, () =>
        withStore(async (store) => {
          if (bigBytes === 0) return;
          const chunk = MiB;
          const sent = createHash("sha256");
          const base = memNow();
          let peak = 0;
          const sample = () => {
            peak = Math.max(peak, growthSince(base, memBound));
          };
          async function* generate(): AsyncGenerator<Uint8Array> {
            let left = bigBytes;
            while (left > 0) {
              const n = Math.min(chunk, left);
              const buf = randomFillSync(Buffer.allocUnsafe(n));
              sent.update(buf);
              left -= n;
              sample();
              yield buf;
            }
          }
          await store.put("big/object.bin", generate(), { size: bigBytes });
          const got = await store.get("big/object.bin");
          assert.ok(got);
          assert.equal(got.size, bigBytes);
          const received = createHash("sha256");
          let n = 0;
          for await (const c of got.body) {
            received.update(c);
            n += c.byteLength;
            sample();
          }
          assert.equal(n, bigBytes);
          assert.equal(received.digest("hex"), sent.digest("hex"), "sha256 of what came back equals what was sent");
          assert.ok(
            peak < memBound,
            `memory grew by ${Math.round(peak / MiB)} MiB while streaming; bound is ${Math.round(memBound / MiB)} MiB`,
          );
          const listed = await listAll(store, "big/");
          assert.deepEqual(
            listed.map((i) => [i.key, i.size]),
            [["big/object.bin", bigBytes]],
          );
        }));

      it("reports a missing object as undefined from get and readSmall", () =>
        withStore(async (store) => {
          assert.equal(await store.get("missing/nothing.bin"), undefined);
          assert.equal(await store.readSmall("missing/nothing.bin", { maxBytes: 10 }), undefined);
          assert.deepEqual(await listAll(store, "missing/"), []);
        }));

      it("reads byte ranges when it implements readRange (optional)", () =>
        withStore(async (store) => {
          if (!store.readRange) return;
          const bytes = Buffer.alloc(3000);
          randomFillSync(bytes);
          await store.put("r/obj", chunksOf(bytes), { size: bytes.byteLength });
          const range = (a: number, b: number) =>
            (store.readRange as NonNullable<BlobStore["readRange"]>)("r/obj", a, b);
          assert.deepEqual(Buffer.from((await range(0, 10)) as Uint8Array), bytes.subarray(0, 10));
          assert.deepEqual(Buffer.from((await range(1234, 2999)) as Uint8Array), bytes.subarray(1234, 2999));
          assert.deepEqual(Buffer.from((await range(2990, 3100)) as Uint8Array), bytes.subarray(2990));
          assert.equal(((await range(500, 500)) as Uint8Array).byteLength, 0);
          assert.equal(await store.readRange("r/absent", 0, 10), undefined);
        }));

      it("a put whose body fails leaves the previous object intact", () =>
        withStore(async (store) => {
          await store.put("fail/x", chunksOf(enc.encode("previous")));
          async function* broken(): AsyncGenerator<Uint8Array> {
            yield enc.encode("partial-");
            throw new Error("source failed");
          }
          await assert.rejects(store.put("fail/x", broken()));
          await assert.rejects(store.put("fail/y", broken()));
          const got = await store.readSmall("fail/x", { maxBytes: 100 });
          assert.equal(Buffer.from(got?.bytes ?? []).toString(), "previous");
          assert.equal(await store.get("fail/y"), undefined, "a failed put is never visible");
          assert.deepEqual(
            (await listAll(store, "fail/")).map((i) => i.key),
            ["fail/x"],
          );
        }));

      it("aborting a put mid-stream rejects with ABORTED and leaves nothing", () =>
        withStore(async (store) => {
          const ctl = new AbortController();
          async function* body(): AsyncGenerator<Uint8Array> {
            yield Buffer.alloc(64 * 1024, 1);
            ctl.abort();
            for (let i = 0; i < 16; i++) yield Buffer.alloc(64 * 1024, 2);
          }
          await rejectsWith(store.put("abort/x", body(), { signal: ctl.signal }), "ABORTED");
          assert.equal(await store.get("abort/x"), undefined);
          assert.deepEqual(await listAll(store, "abort/"), []);
        }));

      it("every call rejects with ABORTED on an aborted signal", () =>
        withStore(async (store) => {
          await store.put("pre/x", chunksOf(enc.encode("x")));
          const signal = AbortSignal.abort();
          await rejectsWith(store.put("pre/y", chunksOf(enc.encode("y")), { signal }), "ABORTED");
          await rejectsWith(store.get("pre/x", { signal }), "ABORTED");
          await rejectsWith(store.readSmall("pre/x", { maxBytes: 10, signal }), "ABORTED");
          await rejectsWith(store.delete("pre/x", { signal }), "ABORTED");
          await rejectsWith(
            listAll({ ...store, list: (p) => store.list(p, { signal }) } as BlobStore, "pre/"),
            "ABORTED",
          );
          assert.ok(await exists(store, "pre/x"), "the aborted delete did not delete");
          assert.equal(await exists(store, "pre/y"), false, "the aborted put wrote nothing");
        }));

      it("readSmall enforces its cap with ARTIFACT_INVALID", () =>
        withStore(async (store) => {
          await store.put("cap/x", chunksOf(Buffer.alloc(100, 7)));
          const exact = await store.readSmall("cap/x", { maxBytes: 100 });
          assert.equal(exact?.bytes.byteLength, 100);
          await rejectsWith(store.readSmall("cap/x", { maxBytes: 99 }), "ARTIFACT_INVALID", /exceeds 99 bytes/);
        }));

      it("refuses keys that are empty, absolute or traverse", () =>
        withStore(async (store) => {
          for (const bad of ["", "/abs", "../up", "a/../../up", "a//b", "a\\b", "a/./b"]) {
            await rejectsWith(store.put(bad, chunksOf(enc.encode("x"))), "INVALID_ARGUMENT");
            await rejectsWith(store.get(bad), "INVALID_ARGUMENT");
          }
        }));

      it("lists by string prefix with sizes and lastModified", () =>
        withStore(async (store) => {
          const before = Date.now();
          await store.put("ls/a/x", chunksOf(enc.encode("1")));
          await store.put("ls/a/y", chunksOf(enc.encode("22")));
          await store.put("ls/ab/z", chunksOf(enc.encode("333")));
          await store.put("ls/b/q", chunksOf(enc.encode("4444")));
          const after = Date.now();
          const a = await listAll(store, "ls/a/");
          assert.deepEqual(
            a.map((i) => [i.key, i.size]),
            [
              ["ls/a/x", 1],
              ["ls/a/y", 2],
            ],
          );
          assert.deepEqual(
            (await listAll(store, "ls/a")).map((i) => i.key),
            ["ls/a/x", "ls/a/y", "ls/ab/z"],
          );
          assert.deepEqual(
            (await listAll(store, "ls/")).map((i) => i.key),
            ["ls/a/x", "ls/a/y", "ls/ab/z", "ls/b/q"],
          );
          assert.deepEqual(await listAll(store, "ls/c"), []);
          const skew = 5 * 60_000; // remote clocks may differ from ours
          for (const item of a) {
            assert.ok(item.lastModified instanceof Date);
            const t = item.lastModified.getTime();
            assert.ok(
              t >= before - skew && t <= after + skew,
              `lastModified ${item.lastModified.toISOString()} is near now`,
            );
          }
        }));

      it("deletes objects; deleting a missing object is not an error", () =>
        withStore(async (store) => {
          await store.put("del/x", chunksOf(enc.encode("x")));
          await store.put("del/y", chunksOf(enc.encode("y")));
          await store.delete("del/x");
          await store.delete("del/never-existed");
          assert.equal(await store.get("del/x"), undefined);
          assert.deepEqual(
            (await listAll(store, "del/")).map((i) => i.key),
            ["del/y"],
          );
        }));

      it("declares conditionalWrites; without it conditionalPut throws BACKEND", () =>
        withStore(async (store) => {
          assert.equal(typeof store.capabilities.conditionalWrites, "boolean");
          if (store.capabilities.conditionalWrites) return;
          await rejectsWith(store.conditionalPut("cas/x", enc.encode("x"), { ifAbsent: true }), "BACKEND");
        }));

      casIt("conditional create is create-only", async (store) => {
        const first = await store.conditionalPut("cas/x", enc.encode("v1"), { ifAbsent: true });
        assert.equal(first.status, "written");
        const second = await store.conditionalPut("cas/x", enc.encode("v2"), { ifAbsent: true });
        assert.deepEqual(second, { status: "conflict" });
        const got = await store.readSmall("cas/x", { maxBytes: 10 });
        assert.equal(Buffer.from(got?.bytes ?? []).toString(), "v1");
        assert.equal(
          got?.version,
          first.status === "written" ? first.version : undefined,
          "the read version equals the written one",
        );
      });

      casIt("conditional replace succeeds only against the current version", async (store) => {
        await store.put("cas/y", chunksOf(enc.encode("v1")));
        const v1 = (await store.readSmall("cas/y", { maxBytes: 10 }))?.version;
        assert.ok(v1);
        const ok = await store.conditionalPut("cas/y", enc.encode("v2"), { ifVersion: v1 });
        assert.equal(ok.status, "written");
        const stale = await store.conditionalPut("cas/y", enc.encode("v3"), { ifVersion: v1 });
        assert.deepEqual(stale, { status: "conflict" }, "a stale version loses");
        assert.equal(Buffer.from((await store.readSmall("cas/y", { maxBytes: 10 }))?.bytes ?? []).toString(), "v2");
        const missing = await store.conditionalPut("cas/none", enc.encode("v"), { ifVersion: v1 });
        assert.deepEqual(missing, { status: "conflict" }, "replace of a missing object loses");
        assert.equal(await store.get("cas/none"), undefined);
      });

      casIt("concurrent conditional creates: exactly one wins", async (store) => {
        const results = await Promise.all(
          Array.from({ length: 8 }, (_, i) =>
            store.conditionalPut("race/create", enc.encode(`writer ${i}`), { ifAbsent: true }),
          ),
        );
        const winners = results.map((r, i) => [r, i] as const).filter(([r]) => r.status === "written");
        assert.equal(winners.length, 1, `exactly one winner, got ${winners.length}`);
        const got = await store.readSmall("race/create", { maxBytes: 100 });
        assert.equal(Buffer.from(got?.bytes ?? []).toString(), `writer ${winners[0]?.[1]}`);
      });

      casIt("concurrent conditional replaces of one version: exactly one wins", async (store) => {
        await store.put("race/replace", chunksOf(enc.encode("base")));
        const base = (await store.readSmall("race/replace", { maxBytes: 100 }))?.version;
        assert.ok(base);
        const results: ConditionalPutResult[] = await Promise.all(
          Array.from({ length: 8 }, (_, i) =>
            store.conditionalPut("race/replace", enc.encode(`writer ${i}`), { ifVersion: base }),
          ),
        );
        const winners = results.map((r, i) => [r, i] as const).filter(([r]) => r.status === "written");
        assert.equal(winners.length, 1, `exactly one winner, got ${winners.length}`);
        const got = await store.readSmall("race/replace", { maxBytes: 100 });
        assert.equal(Buffer.from(got?.bytes ?? []).toString(), `writer ${winners[0]?.[1]}`);
      });
    });

    describe("ArtifactTransport on this store", () => {
      it("publishes payload then pointer, and download reproduces the artifact", () =>
        withStore(async (store, scratch) => {
          const t = transportFor(store);
          const payload = randomFillSync(Buffer.alloc(300_000));
          const made = await makeTestArtifact(join(scratch, "a"), {
            revision: 42n,
            payload,
            extra: { "sub/deep/x.bin": enc.encode("nested") },
          });
          const progress: { bytesDone: number; bytesTotal?: number }[] = [];
          const res = await t.upload("edge/us-east", join(scratch, "a"), { onProgress: (p) => progress.push(p) });
          assert.equal(res.outcome, "published");
          assert.equal(res.cursor.revision, 42n);
          assert.match(res.payloadKey, /^conformance\/edge\/us-east\.payloads\/000000000000002a-[0-9a-f]{16}\.tar$/);
          const last = progress.at(-1);
          assert.ok(
            last && last.bytesTotal !== undefined && last.bytesDone === last.bytesTotal && last.bytesTotal > 300_000,
          );
          const pointer = await store.readSmall("conformance/edge/us-east.manifest.json", {
            maxBytes: MAX_MANIFEST_BYTES,
          });
          const local = await readFile(join(scratch, "a", MANIFEST_FILE));
          assert.ok(pointer && Buffer.from(pointer.bytes).equals(local), "the pointer holds the manifest bytes");
          assert.equal((await t.manifest("edge/us-east")).cursor.revision, made.cursor.revision);

          const dl: { bytesDone: number; bytesTotal?: number }[] = [];
          const got = await t.download("edge/us-east", join(scratch, "b"), { onProgress: (p) => dl.push(p) });
          assert.equal(got.cursor.revision, 42n);
          assert.ok((await readFile(join(scratch, "b", MANIFEST_FILE))).equals(local));
          assert.ok((await readFile(join(scratch, "b", "data", "fold.snap"))).equals(payload));
          assert.equal((await readFile(join(scratch, "b", "data", "sub", "deep", "x.bin"))).toString(), "nested");
          const dlLast = dl.at(-1);
          assert.ok(dlLast && dlLast.bytesDone === dlLast.bytesTotal);
          const mode = (await stat(join(scratch, "b", "data", "fold.snap"))).mode & 0o777;
          assert.equal(mode & 0o022, 0, "no group/world write bits from the tar");
          assert.deepEqual((await readdir(scratch)).sort(), ["a", "b"], "no temp files left beside the destination");
        }));

      it(`uploads and downloads a ${Math.round(bigBytes / MiB)} MiB artifact with bounded memory`, () =>
        withStore(async (store, scratch) => {
          if (bigBytes === 0) return;
          const t = transportFor(store);
          const sent = createHash("sha256");
          await exportArtifact(join(scratch, "a"), {
            backend: "test",
            backendVersion: "1",
            cursor: WatchCursor.fromRevision(77n),
            writePayload: async (dataDir) => {
              const fh = await open(join(dataDir, "fold.snap"), "wx");
              try {
                for (let left = bigBytes; left > 0; left -= MiB) {
                  const buf = randomFillSync(Buffer.allocUnsafe(Math.min(MiB, left)));
                  sent.update(buf);
                  await fh.write(buf);
                }
              } finally {
                await fh.close();
              }
            },
          });
          const base = memNow();
          let peak = 0;
          const sample = () => {
            peak = Math.max(peak, growthSince(base, memBound));
          };
          const res = await t.upload("big", join(scratch, "a"), { onProgress: sample });
          assert.equal(res.outcome, "published");
          await t.download("big", join(scratch, "b"), { onProgress: sample });
          assert.ok(
            peak < memBound,
            `memory grew by ${Math.round(peak / MiB)} MiB; bound is ${Math.round(memBound / MiB)} MiB`,
          );
          const got = createHash("sha256");
          for await (const c of createReadStream(join(scratch, "b", "data", "fold.snap"))) got.update(c as Buffer);
          assert.equal(got.digest("hex"), sent.digest("hex"), "the downloaded payload equals the uploaded one");
        }));

      it("an older cursor after a newer one is superseded and the pointer is unchanged", () =>
        withStore(async (store, scratch) => {
          const t = transportFor(store);
          await makeTestArtifact(join(scratch, "new"), { revision: 10n });
          await makeTestArtifact(join(scratch, "old"), { revision: 5n });
          assert.equal((await t.upload("k", join(scratch, "new"))).outcome, "published");
          const before = await store.readSmall(t.pointerKey("k"), { maxBytes: MAX_MANIFEST_BYTES });
          const res = await t.upload("k", join(scratch, "old"));
          assert.equal(res.outcome, "superseded");
          assert.equal(res.outcome === "superseded" ? res.remoteCursor.revision : undefined, 10n);
          assert.equal(res.cursor.revision, 5n);
          const after = await store.readSmall(t.pointerKey("k"), { maxBytes: MAX_MANIFEST_BYTES });
          assert.ok(before && after && Buffer.from(after.bytes).equals(Buffer.from(before.bytes)));
          assert.equal(await store.get(res.payloadKey), undefined, "a superseded upload sends no payload");
          await makeTestArtifact(join(scratch, "newer"), { revision: 11n });
          assert.equal((await t.upload("k", join(scratch, "newer"))).outcome, "published");
          assert.equal((await t.manifest("k")).cursor.revision, 11n);
        }));

      it("re-uploading the same artifact is idempotent", () =>
        withStore(async (store, scratch) => {
          const t = transportFor(store);
          await makeTestArtifact(join(scratch, "a"), { revision: 3n });
          const one = await t.upload("k", join(scratch, "a"));
          const two = await t.upload("k", join(scratch, "a"));
          assert.equal(one.outcome, "published");
          assert.equal(two.outcome, "published");
          assert.equal(one.payloadKey, two.payloadKey);
          assert.equal((await listAll(store, "conformance/k.payloads/")).length, 1);
        }));

      it("replaces a corrupt pointer", () =>
        withStore(async (store, scratch) => {
          const t = transportFor(store);
          await store.put(t.pointerKey("k"), chunksOf(enc.encode("{ not a manifest")));
          await rejectsWith(t.manifest("k"), "ARTIFACT_INVALID");
          await makeTestArtifact(join(scratch, "a"), { revision: 2n });
          assert.equal((await t.upload("k", join(scratch, "a"))).outcome, "published");
          assert.equal((await t.manifest("k")).cursor.revision, 2n);
        }));

      it("prune: a large grace deletes nothing; grace 0 deletes only older payloads", () =>
        withStore(async (store, scratch) => {
          const t = transportFor(store);
          for (const rev of [3n, 5n, 9n]) {
            await makeTestArtifact(join(scratch, `a${rev}`), { revision: rev });
            assert.equal((await t.upload("k", join(scratch, `a${rev}`))).outcome, "published");
          }
          const prefix = "conformance/k.payloads/";
          await store.put(`${prefix}notes.txt`, chunksOf(enc.encode("not ours")));
          await store.put(`${prefix}ffffffffffffffff-zz.tar`, chunksOf(enc.encode("not ours either")));
          await store.put(
            "conformance/other.payloads/0000000000000001-0000000000000000.tar",
            chunksOf(enc.encode("x")),
          );
          const before = await listAll(store, prefix);
          assert.equal(before.length, 5);
          assert.deepEqual(await t.prune("k", 60 * 60_000), [], "nothing is older than an hour");
          // Grace 0: eligible as soon as the store's lastModified is not in our future (remote
          // clocks and second-granular timestamps may lag a little).
          const deleted: string[] = [];
          for (let waited = 0; deleted.length < 2 && waited <= 10_000; waited += 100) {
            await new Promise((r) => setTimeout(r, 100));
            deleted.push(...(await t.prune("k", 0)));
          }
          assert.equal(deleted.length, 2, `deleted ${deleted.join(", ")}`);
          assert.ok(deleted.every((k) => /\/000000000000000[35]-/.test(k)));
          const left = (await listAll(store, prefix)).map((i) => i.key);
          assert.equal(left.length, 3);
          assert.ok(
            left.some((k) => /\/0000000000000009-/.test(k)),
            "the pointer's target is kept",
          );
          assert.ok(left.includes(`${prefix}notes.txt`) && left.includes(`${prefix}ffffffffffffffff-zz.tar`));
          assert.ok(await exists(store, "conformance/other.payloads/0000000000000001-0000000000000000.tar"));
          const restored = await t.download("k", join(scratch, "dl"));
          assert.equal(restored.cursor.revision, 9n, "the artifact is still downloadable after pruning");
        }));

      it("prune without a readable pointer deletes nothing", () =>
        withStore(async (store, scratch) => {
          const t = transportFor(store);
          await makeTestArtifact(join(scratch, "a"), { revision: 3n });
          const res = await t.upload("k", join(scratch, "a"));
          await store.delete(t.pointerKey("k"));
          assert.deepEqual(await t.prune("k", 0), []);
          await store.put(t.pointerKey("k"), chunksOf(enc.encode("garbage")));
          assert.deepEqual(await t.prune("k", 0), []);
          assert.ok(await exists(store, res.payloadKey));
        }));

      it("a missing artifact is ARTIFACT_INVALID 'not found' and leaves the destination absent", () =>
        withStore(async (store, scratch) => {
          const t = transportFor(store);
          await rejectsWith(t.manifest("nope"), "ARTIFACT_INVALID", /not found/);
          await rejectsWith(t.download("nope", join(scratch, "dest")), "ARTIFACT_INVALID", /not found/);
          assert.deepEqual(await readdir(scratch), []);
          await rejectsWith(t.download("nope", join(scratch, "no-parent", "dest")), "ARTIFACT_INVALID", /no parent/);
        }));

      it("an oversized pointer is refused", () =>
        withStore(async (store, scratch) => {
          const t = transportFor(store);
          await store.put(t.pointerKey("big"), chunksOf(Buffer.alloc(MAX_MANIFEST_BYTES + 1, 0x20)));
          await rejectsWith(t.manifest("big"), "ARTIFACT_INVALID", /exceeds/);
          await rejectsWith(t.download("big", join(scratch, "dest")), "ARTIFACT_INVALID", /exceeds/);
          assert.deepEqual(await readdir(scratch), []);
          // Unreadable like a corrupt pointer: prune deletes nothing and does not fail.
          assert.deepEqual(await t.prune("big", 0), []);
        }));

      const hostile: [string, (manifest: Uint8Array) => TarEntrySpec[], RegExp][] = [
        ["a '../evil' entry", (m) => [manifestEntry(m), file("../evil", "pwned")], /leaves the artifact/],
        [
          "a 'data/../../evil' entry",
          (m) => [manifestEntry(m), file("data/../../evil", "pwned")],
          /leaves the artifact/,
        ],
        ["an absolute path", (m) => [manifestEntry(m), file("/slipstream-evil-abs", "pwned")], /absolute/],
        ["a backslash path", (m) => [manifestEntry(m), file("data\\fold.snap", "pwned")], /backslash/],
        [
          "a symlink",
          (m) => [manifestEntry(m), { header: { name: "data/fold.snap", type: "symlink", linkname: "/etc/passwd" } }],
          /symlink/,
        ],
        [
          "a hardlink",
          (m) => [
            manifestEntry(m),
            { header: { name: "data/fold.snap", type: "link", linkname: "../../../etc/passwd" } },
          ],
          /link/,
        ],
        [
          "a character device",
          (m) => [
            manifestEntry(m),
            { header: { name: "data/fold.snap", type: "character-device", devmajor: 1, devminor: 3 } },
          ],
          /character-device/,
        ],
        ["a fifo", (m) => [manifestEntry(m), { header: { name: "data/fold.snap", type: "fifo" } }], /fifo/],
        [
          "an entry larger than declared",
          (m) => [manifestEntry(m), file("data/fold.snap", Buffer.alloc(300, 1))],
          /bytes; the manifest declares/,
        ],
        [
          "an oversize tar",
          (m) => [manifestEntry(m), file("data/fold.snap", Buffer.alloc(2 * MiB, 1))],
          /allows at most/,
        ],
        [
          "a file whose bytes differ from its declared sha256",
          (m) => [manifestEntry(m), file("data/fold.snap", "fold at revision 8\n")],
          /checksum mismatch/,
        ],
        ["an undeclared file", (m) => [manifestEntry(m), file("data/smuggled", "x")], /not declared/],
        ["an entry outside data/", (m) => [manifestEntry(m), file("elsewhere.txt", "x")], /not declared/],
        ["a missing embedded manifest", () => [file("data/fold.snap", "fold at revision 7\n")], /no embedded MANIFEST/],
        ["a missing payload file", (m) => [manifestEntry(m)], /payload file missing/],
        ["a duplicated manifest", (m) => [manifestEntry(m), manifestEntry(m)], /twice/],
        ["garbage instead of a tar", () => [], /not a valid tar|no embedded/],
      ];
      for (const [what, entries, message] of hostile) {
        it(`download refuses a payload with ${what}: ARTIFACT_INVALID, destination absent`, () =>
          withStore(async (store, scratch) => {
            const t = transportFor(store);
            await makeTestArtifact(join(scratch, "a"), { revision: 7n });
            const res = await t.upload("k", join(scratch, "a"));
            const pointer = await store.readSmall(t.pointerKey("k"), { maxBytes: MAX_MANIFEST_BYTES });
            assert.ok(pointer);
            const specs = entries(pointer.bytes);
            const tar = specs.length > 0 ? await buildTar(specs) : randomFillSync(Buffer.alloc(4096));
            await store.put(res.payloadKey, chunksOf(tar));
            const work = join(scratch, "w");
            await mkdir(work);
            await rejectsWith(t.download("k", join(work, "dest")), "ARTIFACT_INVALID", message);
            assert.deepEqual(await readdir(work), [], "nothing at the destination, no temp files");
            assert.deepEqual((await readdir(scratch)).sort(), ["a", "w"], "nothing escaped");
            await assert.rejects(stat("/slipstream-evil-abs"));
          }));
      }

      it("a doctored pointer is refused: its payload is missing or disagrees", () =>
        withStore(async (store, scratch) => {
          const t = transportFor(store);
          await makeTestArtifact(join(scratch, "a"), { revision: 7n });
          const res = await t.upload("k", join(scratch, "a"));
          const pointer = await store.readSmall(t.pointerKey("k"), { maxBytes: MAX_MANIFEST_BYTES });
          assert.ok(pointer);
          const doctored = enc.encode(
            Buffer.from(pointer.bytes)
              .toString()
              .replace(/"createdAt": "[^"]*"/, '"createdAt": "2001-01-01T00:00:00.000Z"'),
          );
          assert.ok(!Buffer.from(doctored).equals(Buffer.from(pointer.bytes)));
          await store.put(t.pointerKey("k"), chunksOf(doctored));
          await rejectsWith(t.download("k", join(scratch, "d1")), "ARTIFACT_INVALID", /not found/);
          // Place the real payload where the doctored pointer points: the embedded manifest disagrees.
          const real = await store.get(res.payloadKey);
          assert.ok(real);
          await store.put(t.payloadKey("k", doctored), real.body);
          await rejectsWith(t.download("k", join(scratch, "d2")), "ARTIFACT_INVALID", /disagrees/);
          assert.deepEqual(await readdir(scratch), ["a"]);
        }));

      it("a store without conditional writes refuses to publish unless opted in", () =>
        withStore(async (store, scratch) => {
          const plain = withoutConditionalWrites(store);
          await makeTestArtifact(join(scratch, "a"), { revision: 4n });
          const strict = new ArtifactTransport(plain, { prefix: "conformance" });
          await rejectsWith(strict.upload("k", join(scratch, "a")), "BACKEND", /allowNonAtomicPointer/);
          assert.deepEqual(await listAll(store, "conformance/"), [], "nothing was uploaded");
          const lax = new ArtifactTransport(plain, { prefix: "conformance", allowNonAtomicPointer: true });
          assert.equal((await lax.upload("k", join(scratch, "a"))).outcome, "published");
          assert.equal((await lax.manifest("k")).cursor.revision, 4n);
          await makeTestArtifact(join(scratch, "b"), { revision: 2n });
          assert.equal((await lax.upload("k", join(scratch, "b"))).outcome, "superseded", "still never moves back");
        }));
    });
  });
}

function manifestEntry(bytes: Uint8Array): TarEntrySpec {
  return { header: { name: MANIFEST_FILE, type: "file", mode: 0o644 }, body: bytes };
}

function file(name: string, body: string | Uint8Array): TarEntrySpec {
  return { header: { name, type: "file", mode: 0o644 }, body: typeof body === "string" ? enc.encode(body) : body };
}
