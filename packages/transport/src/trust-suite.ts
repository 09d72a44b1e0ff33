/**
 * The trusted-artifact suite: signatures, trust policies, encryption and the chunked,
 * resumable download, run against a real BlobStore. Every transport package runs it the
 * way it runs {@link blobStoreConformance}; runner-agnostic (`node:assert`).
 */
import * as assert from "node:assert/strict";
import { createHash, generateKeyPairSync, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import {
  type ErrorCode,
  encodeManifest,
  hashFile,
  MAX_MANIFEST_BYTES,
  manifestSigner,
  parseManifest,
  SlipstreamError,
  type TrustPolicy,
  WatchCursor,
} from "@slipstream/core";
import { ArtifactTransport, type ArtifactTransportOptions } from "./artifact-transport.js";
import type { BlobOpOptions, BlobStore } from "./blob-store.js";
import { describeArtifacts } from "./catalog.js";
import type { BlobStoreHarness } from "./conformance.js";
import { symmetricKeyWrapper } from "./encryption.js";
import { makeTestArtifact } from "./fixtures.js";
import { payloadLayout } from "./layout.js";
import { RESUME_PREFIX } from "./resumable-download.js";
import { FaultInjectingBlobStore, stallUntilAborted } from "./wrappers.js";

/** Options of {@link trustedArtifactSuite}. */
export interface TrustedArtifactSuiteOptions {
  /** Shown as the top-level describe block. */
  name: string;
  describe: (name: string, fn: () => void) => unknown;
  it: (name: string, fn: () => Promise<void>) => unknown;
  /** A fresh, empty store for every test. */
  factory: () => Promise<BlobStore | BlobStoreHarness>;
  /** Publish pointers without conditional writes (stores that lack them). @defaultValue false */
  allowNonAtomicPointer?: boolean;
}

const CHUNK = 16 * 1024;
const LONG = `deep/${"x".repeat(120)}.bin`;

async function codeOf(p: Promise<unknown>): Promise<ErrorCode | string> {
  try {
    await p;
  } catch (err) {
    return SlipstreamError.is(err) ? err.code : `non-slipstream: ${String(err)}`;
  }
  return "resolved";
}

async function readAll(store: BlobStore, key: string): Promise<Buffer> {
  const got = await store.get(key);
  assert.ok(got, `${key} exists`);
  const parts: Buffer[] = [];
  for await (const c of got.body) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

/** A store whose ranged reads of chosen ranges come back with one byte flipped, `times` times each. */
class CorruptingStore extends FaultInjectingBlobStore {
  readonly corrupted = new Map<number, number>();
  constructor(
    inner: BlobStore,
    readonly pick: (start: number) => boolean,
    readonly times: number,
  ) {
    super(inner);
  }
  override async readRange(key: string, start: number, end: number, opts?: BlobOpOptions) {
    const got = await super.readRange(key, start, end, opts);
    const n = this.corrupted.get(start) ?? 0;
    if (!got || !key.includes(".payloads/") || !this.pick(start) || n >= this.times) return got;
    this.corrupted.set(start, n + 1);
    const copy = Buffer.from(got);
    copy[copy.length >> 1] = (copy[copy.length >> 1] as number) ^ 0x55;
    return copy;
  }
}

/** Runs the trusted-artifact tests against the stores `opts.factory` makes. */
export function trustedArtifactSuite(opts: TrustedArtifactSuiteOptions): void {
  const { describe, it } = opts;

  const withEnv = async (
    fn: (env: {
      store: BlobStore;
      dir: string;
      transport: (store: BlobStore, extra?: ArtifactTransportOptions) => ArtifactTransport;
      artifact: () => Promise<string>;
    }) => Promise<void>,
  ): Promise<void> => {
    const made = await opts.factory();
    const harness: BlobStoreHarness = "store" in made && !("put" in made) ? made : { store: made as BlobStore };
    const dir = await mkdtemp(join(tmpdir(), "slipstream-trust-suite-"));
    let n = 0;
    try {
      await fn({
        store: harness.store,
        dir,
        transport: (store, extra = {}) =>
          new ArtifactTransport(store, {
            prefix: "fleet",
            allowNonAtomicPointer: opts.allowNonAtomicPointer === true,
            chunkBytes: CHUNK,
            ...extra,
          }),
        artifact: async () => {
          const path = join(dir, `src-${n++}`);
          await makeTestArtifact(path, {
            revision: 7n,
            payload: randomBytes(5 * CHUNK + 1234),
            extra: { [LONG]: randomBytes(CHUNK + 1), "empty.bin": new Uint8Array(0), "ünïcode.bin": randomBytes(300) },
          });
          return path;
        },
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
      await harness.cleanup?.();
    }
  };

  const sameFiles = async (a: string, b: string): Promise<void> => {
    const m = parseManifest(await readFile(join(a, "MANIFEST.json")));
    for (const f of m.files) assert.deepEqual(await hashFile(join(b, f.path)), await hashFile(join(a, f.path)));
  };

  const leftovers = async (dir: string): Promise<string[]> =>
    (await readdir(dir)).filter((n) => n.startsWith(RESUME_PREFIX) || n.startsWith(".slipstream-download-"));

  describe(`${opts.name}: trusted artifacts`, () => {
    it("signs on upload; a trusting importer downloads in chunks, with either of two trusted keys", async () => {
      await withEnv(async ({ store, dir, transport, artifact }) => {
        const oldKey = generateKeyPairSync("ed25519");
        const newKey = generateKeyPairSync("ed25519");
        const src = await artifact();
        const up = await transport(store, { signer: manifestSigner(newKey.privateKey) }).upload("k", src);
        assert.equal(up.outcome, "published");
        assert.equal(up.manifest.signature?.keyId, manifestSigner(newKey.privateKey).keyId);
        assert.ok(up.manifest.files.every((f) => f.chunks !== undefined));
        // Rotation: the importer trusts the old and the new key at once.
        const trust: TrustPolicy = { keys: [{ publicKey: oldKey.publicKey }, { publicKey: newKey.publicKey }] };
        let stats: { chunks: number; fetches: number } | undefined;
        const got = await transport(store, { trust }).download("k", join(dir, "dest"), {
          onChunkStats: (s) => {
            stats = s;
          },
        });
        assert.equal(got.signature?.keyId, up.manifest.signature?.keyId);
        await sameFiles(src, join(dir, "dest"));
        assert.ok(stats && stats.chunks >= 7 && stats.fetches === stats.chunks, JSON.stringify(stats));
        assert.deepEqual(await leftovers(dir), []);
        // The catalog shows the verdict; signing adds no objects besides pointer and payload.
        const [entry] = await describeArtifacts(store, { prefix: "fleet", trust });
        assert.equal(entry?.pointer?.signature?.status, "verified");
        assert.equal(entry?.payloads.length, 1);
      });
    });

    it("an artifact file that changes between hashing and sending fails the upload; no pointer is published", async () => {
      await withEnv(async ({ store, transport, artifact }) => {
        const src = await artifact();
        const file = join(src, "data", "fold.snap");
        const size = (await readFile(file)).byteLength;
        let changed = false;
        const code = await codeOf(
          transport(store).upload("k", src, {
            onProgress: (p) => {
              if (p.phase === "hash" && p.bytesDone === p.bytesTotal && !changed) {
                changed = true;
                writeFileSync(file, randomBytes(size));
              }
            },
          }),
        );
        assert.equal(code, "ARTIFACT_INVALID");
        assert.equal(await store.readSmall("fleet/k.manifest.json", { maxBytes: MAX_MANIFEST_BYTES }), undefined);
      });
    });

    it("refuses unsigned artifacts when it trusts keys, unless allowUnsigned; no trust keeps the old behaviour", async () => {
      await withEnv(async ({ store, dir, transport, artifact }) => {
        const src = await artifact();
        // The old layout: no chunks, no signature (as uploaded before this feature).
        const legacy = new ArtifactTransport(store, {
          prefix: "fleet",
          allowNonAtomicPointer: opts.allowNonAtomicPointer === true,
        });
        const up = await legacy.upload("k", src);
        assert.equal(up.manifest.chunkSize, undefined);
        assert.deepEqual(Buffer.from(encodeManifest(up.manifest)), await readFile(join(src, "MANIFEST.json")));
        const trust: TrustPolicy = { keys: [{ publicKey: generateKeyPairSync("ed25519").publicKey }] };
        assert.equal(await codeOf(transport(store, { trust }).download("k", join(dir, "a"))), "ARTIFACT_UNSIGNED");
        assert.equal(await codeOf(transport(store, { trust }).manifest("k")), "ARTIFACT_UNSIGNED");
        assert.deepEqual(await readdir(dir).then((n) => n.filter((x) => x === "a")), []);
        await transport(store, { trust: { ...trust, allowUnsigned: true } }).download("k", join(dir, "b"));
        await sameFiles(src, join(dir, "b"));
        await legacy.download("k", join(dir, "c"));
        await sameFiles(src, join(dir, "c"));
      });
    });

    it("refuses a tampered, replaced or foreign-signed manifest and an expired key, writing nothing", async () => {
      await withEnv(async ({ store, dir, transport, artifact }) => {
        const key = generateKeyPairSync("ed25519");
        const signer = manifestSigner(key.privateKey);
        const src = await artifact();
        await transport(store, { signer }).upload("k", src);
        const trust: TrustPolicy = { keys: [{ publicKey: key.publicKey }] };
        const pointerKey = "fleet/k.manifest.json";
        const original = (await store.readSmall(pointerKey, { maxBytes: MAX_MANIFEST_BYTES }))?.bytes;
        assert.ok(original);
        const put = (bytes: Uint8Array) => store.put(pointerKey, once(bytes), { size: bytes.byteLength });

        // Any byte of the manifest: each changed byte is refused (unparseable or a broken signature).
        const text = Buffer.from(original);
        const positions = [10, text.indexOf("createdAt") + 16, text.indexOf("chunks") + 12, text.length - 30];
        for (const at of positions) {
          const bad = Buffer.from(text);
          bad[at] = bad[at] === 0x31 ? 0x32 : 0x31;
          await put(bad);
          const code = await codeOf(transport(store, { trust }).download("k", join(dir, "x")));
          assert.ok(code === "SIGNATURE_INVALID" || code === "ARTIFACT_INVALID", `byte ${at}: ${code}`);
        }
        // Replaced by a manifest signed with an attacker's key, and by an unsigned one.
        const m = parseManifest(original);
        const evil = manifestSigner(generateKeyPairSync("ed25519").privateKey);
        await put(Buffer.from(encodeManifest(evil.sign(m))));
        assert.equal(await codeOf(transport(store, { trust }).download("k", join(dir, "x"))), "SIGNER_UNTRUSTED");
        const { signature: _s, ...unsigned } = m;
        await put(Buffer.from(encodeManifest(unsigned)));
        assert.equal(await codeOf(transport(store, { trust }).download("k", join(dir, "x"))), "ARTIFACT_UNSIGNED");
        // The genuine pointer again, but the key has expired.
        await put(original);
        const expired: TrustPolicy = { keys: [{ publicKey: key.publicKey, notAfter: new Date(Date.now() - 1000) }] };
        assert.equal(
          await codeOf(transport(store, { trust: expired }).download("k", join(dir, "x"))),
          "SIGNER_EXPIRED",
        );
        assert.deepEqual(
          (await readdir(dir)).filter((n) => n !== "src-0"),
          [],
        );
        // And a forged pointer never drives prune.
        assert.deepEqual(await transport(store, { trust }).prune("k", 0), []);
        await transport(store, { trust }).download("k", join(dir, "ok"));
        await sameFiles(src, join(dir, "ok"));
      });
    });

    it("an exporter with a trust policy replaces a forged pointer with a higher cursor; without one it defers", async () => {
      await withEnv(async ({ store, dir, transport, artifact }) => {
        const key = generateKeyPairSync("ed25519");
        const signer = manifestSigner(key.privateKey);
        const trust: TrustPolicy = { keys: [{ publicKey: key.publicKey }] };
        const src = await artifact();
        const first = await transport(store, { signer }).upload("k", src);
        assert.equal(first.outcome, "published");
        // Someone with write access puts an unsigned pointer with a far higher cursor.
        const { signature: _s, ...unsigned } = first.manifest;
        const forged = { ...unsigned, cursor: WatchCursor.fromRevision(10n ** 12n) };
        const pointerKey = "fleet/k.manifest.json";
        const forgedBytes = Buffer.from(encodeManifest(forged));
        await store.put(pointerKey, once(forgedBytes), { size: forgedBytes.byteLength });
        // Without a policy the exporter believes it and stands back (the pre-signing behaviour).
        assert.equal((await transport(store, { signer }).upload("k", src)).outcome, "superseded");
        // With one, the forged pointer counts for nothing: the genuine artifact goes back up.
        const again = await transport(store, { signer, trust }).upload("k", src);
        assert.equal(again.outcome, "published");
        const now = await store.readSmall(pointerKey, { maxBytes: MAX_MANIFEST_BYTES });
        assert.ok(now && !Buffer.from(now.bytes).equals(forgedBytes));
        await transport(store, { trust }).download("k", join(dir, "ok"));
        await sameFiles(src, join(dir, "ok"));
      });
    });

    it("checks every payload byte a download uses: a flipped byte in any file is CHUNK_CORRUPTED", async () => {
      await withEnv(async ({ store, dir, transport, artifact }) => {
        const key = generateKeyPairSync("ed25519");
        const src = await artifact();
        const up = await transport(store, { signer: manifestSigner(key.privateKey) }).upload("k", src);
        const trust: TrustPolicy = { keys: [{ publicKey: key.publicKey }] };
        const payloadKey = up.payloadKey;
        const original = await readAll(store, payloadKey);
        const bytes = Buffer.from(encodeManifest(up.manifest));
        const spans = payloadLayout(up.manifest, bytes);
        // The computed layout matches what was packed: each span holds the file's bytes.
        for (const [i, f] of up.manifest.files.entries()) {
          const s = spans[i] as { offset: number; storedSize: number };
          const onDisk = await readFile(join(src, f.path));
          assert.ok(original.subarray(s.offset, s.offset + s.storedSize).equals(onDisk), f.path);
        }
        const write = (b: Buffer) => store.put(payloadKey, once(b), { size: b.byteLength });
        for (const s of spans.filter((x) => x.storedSize > 0)) {
          for (const at of [s.offset, s.offset + s.storedSize - 1]) {
            const bad = Buffer.from(original);
            bad[at] = (bad[at] as number) ^ 1;
            await write(bad);
            const dest = join(dir, "x");
            assert.equal(
              await codeOf(transport(store, { trust }).download("k", dest)),
              "CHUNK_CORRUPTED",
              `byte ${at}`,
            );
            assert.deepEqual(await leftovers(dir), [], "a corrupt artifact leaves no resume stage");
          }
        }
        // A byte no file uses (a tar header) changes nothing that is read.
        const header = Buffer.from(original);
        const at = (spans[0] as { offset: number }).offset - 400;
        header[at] = (header[at] as number) ^ 1;
        await write(header);
        await transport(store, { trust }).download("k", join(dir, "ok"));
        await sameFiles(src, join(dir, "ok"));
      });
    });

    it("refuses a file whose whole SHA-256 disagrees although every chunk matches (ARTIFACT_INVALID)", async () => {
      await withEnv(async ({ store, dir, transport, artifact }) => {
        const src = await artifact();
        const t = transport(store);
        const up = await t.upload("k", src);
        // An unsigned pointer rewritten by someone: same chunks, another file hash; the
        // payload copied to the name this pointer derives.
        const forged = {
          ...up.manifest,
          files: up.manifest.files.map((f, i) => (i === 0 ? { ...f, sha256: "0".repeat(64) } : f)),
        };
        const bytes = Buffer.from(encodeManifest(forged));
        const payload = await readAll(store, up.payloadKey);
        await store.put(t.payloadKey("k", bytes), once(payload), { size: payload.byteLength });
        await store.put("fleet/k.manifest.json", once(bytes), { size: bytes.byteLength });
        const code = await codeOf(t.download("k", join(dir, "x")));
        assert.equal(code, "ARTIFACT_INVALID");
        assert.deepEqual(
          (await readdir(dir)).filter((n) => !n.startsWith("src-")),
          [],
        );
      });
    });

    it("refetches a corrupt chunk, then fails with CHUNK_CORRUPTED", async () => {
      await withEnv(async ({ store, dir, transport, artifact }) => {
        const src = await artifact();
        await transport(store).upload("k", src);
        let first: number | undefined;
        const pick = (start: number) => {
          first ??= start;
          return start === first;
        };
        const flaky = new CorruptingStore(store, pick, 2);
        let refetched = -1;
        await transport(flaky, { chunkRetries: 2 }).download("k", join(dir, "a"), {
          onChunkStats: (s) => {
            refetched = s.refetched;
          },
        });
        assert.equal(refetched, 2);
        await sameFiles(src, join(dir, "a"));
        first = undefined;
        const broken = new CorruptingStore(store, pick, 99);
        assert.equal(
          await codeOf(transport(broken, { chunkRetries: 2 }).download("k", join(dir, "b"))),
          "CHUNK_CORRUPTED",
        );
        assert.equal(broken.corrupted.get(first as unknown as number), 3);
        assert.deepEqual(await leftovers(dir), []);
      });
    });

    it("resumes an interrupted download, fetching only the chunks still missing", async () => {
      await withEnv(async ({ store, dir, transport, artifact }) => {
        const src = await artifact();
        await transport(store).upload("k", src);
        const dest = join(dir, "dest");
        // The connection drops after 4 ranges: the chunks verified so far stay in the stage.
        let served = 0;
        const dropping = new FaultInjectingBlobStore(store, (op) => {
          if (op === "readRange" && ++served > 4) throw new SlipstreamError("BACKEND", "connection reset");
        });
        assert.equal(await codeOf(transport(dropping, { downloadConcurrency: 1 }).download("k", dest)), "BACKEND");
        assert.equal((await leftovers(dir)).length, 1, "the resume stage is kept");
        assert.deepEqual(
          (await readdir(dir)).filter((n) => n === "dest"),
          [],
        );
        const verified = new Set(dropping.calls.filter((c) => c.startsWith("readRange")).slice(0, 4));

        // An abort half-way keeps the stage too.
        const ctl = new AbortController();
        let seen = 0;
        const aborting = new FaultInjectingBlobStore(store, (op) => {
          if (op === "readRange" && ++seen === 2) ctl.abort();
        });
        assert.equal(
          await codeOf(transport(aborting, { downloadConcurrency: 1 }).download("k", dest, { signal: ctl.signal })),
          "ABORTED",
        );
        assert.equal((await leftovers(dir)).length, 1);
        verified.add(aborting.calls.filter((c) => c.startsWith("readRange"))[0] as string);
        // A torn record at the journal's end (a crash mid-append) proves nothing and is ignored.
        const [stageName] = await leftovers(dir);
        await appendFile(join(dir, stageName as string, "journal"), randomBytes(17));

        const resumed = new FaultInjectingBlobStore(store);
        let stats: { chunks: number; resumed: number; fetches: number } | undefined;
        await transport(resumed).download("k", dest, {
          onChunkStats: (s) => {
            stats = s;
          },
        });
        await sameFiles(src, dest);
        const secondRun = resumed.calls.filter((c) => c.startsWith("readRange"));
        assert.equal(stats?.resumed, 5, JSON.stringify(stats));
        assert.equal(secondRun.length, (stats?.chunks ?? 0) - 5);
        for (const c of secondRun) assert.ok(!verified.has(c), `${c} was verified already and fetched again`);
        assert.deepEqual(await leftovers(dir), [], "the stage is removed on success");
      });
    });

    it("two downloads of the same artifact beside each other at once both succeed (one resumable stage, one private)", async () => {
      await withEnv(async ({ store, dir, transport, artifact }) => {
        const src = await artifact();
        await transport(store).upload("k", src);
        const warnings: string[] = [];
        const noop = () => {};
        const t = transport(store, {
          logger: { debug: noop, info: noop, error: noop, warn: (msg: string) => warnings.push(msg) },
        });
        await Promise.all([t.download("k", join(dir, "a")), t.download("k", join(dir, "b"))]);
        assert.deepEqual(warnings, ["resume stage is in use by another download; using a private stage"]);
        await sameFiles(src, join(dir, "a"));
        await sameFiles(src, join(dir, "b"));
        assert.deepEqual(await leftovers(dir), []);
      });
    });

    it("sweeps resume stages abandoned for resumeMaxAgeMs, but not one a live process holds", async () => {
      await withEnv(async ({ store, dir, transport, artifact }) => {
        const src = await artifact();
        await transport(store).upload("k", src);
        const old = new Date(Date.now() - 3_600_000);
        const abandoned = join(dir, `${RESUME_PREFIX}00000000000000aa`);
        const held = join(dir, `${RESUME_PREFIX}00000000000000bb`);
        for (const d of [abandoned, held]) {
          await mkdir(d);
          await writeFile(join(d, "journal"), "");
        }
        // The lock names this (live) process, as a download running elsewhere in it would.
        const host = createHash("sha256").update(hostname()).digest("hex").slice(0, 8);
        await writeFile(join(held, "lock"), `${host}.${process.pid}`);
        for (const d of [abandoned, held]) {
          await utimes(join(d, "journal"), old, old);
          await utimes(d, old, old);
        }
        await transport(store, { resumeMaxAgeMs: 60_000 }).download("k", join(dir, "dest"));
        assert.deepEqual(await leftovers(dir), [`${RESUME_PREFIX}00000000000000bb`]);
      });
    });

    it("a stalled ranged read times out (TIMEOUT), keeps the stage, and the next attempt resumes", async () => {
      await withEnv(async ({ store, dir, transport, artifact }) => {
        const src = await artifact();
        await transport(store).upload("k", src);
        let served = 0;
        const stalling = new FaultInjectingBlobStore(store, (op, _key, signal) => {
          if (op === "readRange" && ++served > 3) return stallUntilAborted(signal);
        });
        const dest = join(dir, "dest");
        const t = transport(stalling, { timeoutMs: 300, downloadConcurrency: 1 });
        assert.equal(await codeOf(t.download("k", dest)), "TIMEOUT");
        assert.equal((await leftovers(dir)).length, 1);
        let resumed = -1;
        await transport(store).download("k", dest, {
          onChunkStats: (st) => {
            resumed = st.resumed;
          },
        });
        assert.equal(resumed, 3);
        await sameFiles(src, dest);
      });
    });

    it("encrypts payloads at rest; the manifest stays readable; a wrong or missing key writes nothing", async () => {
      await withEnv(async ({ store, dir, transport, artifact }) => {
        const fleet = symmetricKeyWrapper(randomBytes(32));
        const key = generateKeyPairSync("ed25519");
        const src = await artifact();
        const up = await transport(store, {
          signer: manifestSigner(key.privateKey),
          keyWrapper: fleet,
          encryptUploads: true,
        }).upload("k", src);
        assert.equal(up.manifest.encryption?.keyId, fleet.keyId);
        // Readable without any key (status, artifacts).
        const m = await transport(store).manifest("k");
        assert.equal(m.encryption?.algorithm, "aes-256-gcm");
        // No plaintext in the store.
        const payload = await readAll(store, up.payloadKey);
        const plain = await readFile(join(src, "data", "fold.snap"));
        assert.equal(payload.indexOf(plain.subarray(0, 64)), -1);

        const trust: TrustPolicy = { keys: [{ publicKey: key.publicKey }] };
        const wrong = symmetricKeyWrapper(randomBytes(32), fleet.keyId);
        assert.equal(
          await codeOf(transport(store, { trust, keyWrapper: wrong }).download("k", join(dir, "a"))),
          "DECRYPTION_FAILED",
        );
        assert.equal(await codeOf(transport(store, { trust }).download("k", join(dir, "a"))), "DECRYPTION_FAILED");
        assert.deepEqual(
          (await readdir(dir)).filter((n) => !n.startsWith("src-")),
          [],
        );
        const dest = join(dir, "b");
        await transport(store, { trust, keyWrapper: fleet }).download("k", dest);
        await sameFiles(src, dest);
      });
    });
  });
}
