/**
 * Benchmark 6 — download: a signed, chunked artifact fetched as parallel verified ranges
 * into a resumable stage (trust checked, every chunk hashed, written and fsync'd, every file
 * re-hashed, atomic rename), against reading the same payload object raw from the same
 * store (one streamed `get`, bytes discarded): the store's own read rate.
 */
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { manifestSigner, SlipstreamError, type TrustPolicy } from "@slipstream/core";
import { tempDir } from "@slipstream/testkit";
import {
  ArtifactTransport,
  FaultInjectingBlobStore,
  makeTestArtifact,
  symmetricKeyWrapper,
} from "@slipstream/transport";
import { FsBlobStore } from "@slipstream/transport-fs";
import { RssSampler } from "./memory.js";
import type { BenchOptions } from "./options.js";
import { type BenchResult, type Check, check, perSecond, rateRatio } from "./result.js";

const MiB = 1024 * 1024;
const FILE_BYTES = 4 * MiB;

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const value = await fn();
  return [value, performance.now() - t0];
}

/**
 * Writes a synthetic artifact of `entries × valueBytes × 8` bytes (16–512 MiB) in 4 MiB
 * random files (about the size of LevelDB tables), uploads it signed and chunked (4 MiB
 * chunks) to an `FsBlobStore`, and an encrypted and an unchunked copy under other keys.
 * Then `rounds` times, best of each: the raw streamed read of the payload object, and
 * ours (`download` with a trust policy). Details: encrypted and unchunked (streamed tar)
 * download rates, and a resume check (a download aborted half-way, then resumed, fetches
 * only the missing chunks).
 */
export async function benchDownload(o: BenchOptions): Promise<BenchResult> {
  const t0 = performance.now();
  const mem = new RssSampler();
  await using dir = await tempDir("slipstream-bench-download-");
  const w = (name: string): string => join(dir.path, name);
  const payloadBytes = Math.min(512 * MiB, Math.max(16 * MiB, o.entries * o.valueBytes * 8));
  o.log?.(`download: writing a ${Math.round(payloadBytes / MiB)} MiB artifact`);
  const extra: Record<string, Uint8Array> = {};
  for (let at = 0, i = 0; at < payloadBytes; at += FILE_BYTES, i++) {
    extra[`tables/${String(i).padStart(6, "0")}.ldb`] = randomBytes(Math.min(FILE_BYTES, payloadBytes - at));
  }
  await makeTestArtifact(w("artifact"), { revision: 42n, extra });
  // The payload is on disk now; its buffers must not count in the phases' RSS.
  for (const k of Object.keys(extra)) delete extra[k];

  const keys = generateKeyPairSync("ed25519");
  const trust: TrustPolicy = { keys: [{ publicKey: keys.publicKey }] };
  const fleet = symmetricKeyWrapper(randomBytes(32));
  const store = new FsBlobStore(w("remote"));
  const signer = manifestSigner(keys.privateKey);
  const up = await new ArtifactTransport(store, { signer }).upload("signed", w("artifact"));
  await new ArtifactTransport(store, { signer, keyWrapper: fleet, encryptUploads: true }).upload(
    "encrypted",
    w("artifact"),
  );
  const legacy = await new ArtifactTransport(store).upload("plain", w("artifact"));
  const sizeOf = async (key: string): Promise<number> => {
    for await (const item of store.list(key)) if (item.key === key) return item.size;
    return 0;
  };
  const objectBytes = await sizeOf(up.payloadKey);
  const chunks = up.manifest.files.reduce((n, f) => n + (f.chunks?.length ?? 0), 0);
  const ours = new ArtifactTransport(store, { trust, keyWrapper: fleet });
  const plainTransport = new ArtifactTransport(store);

  let rawMs = Number.POSITIVE_INFINITY;
  let oursMs = Number.POSITIVE_INFINITY;
  let encryptedMs = Number.POSITIVE_INFINITY;
  let streamedMs = Number.POSITIVE_INFINITY;
  for (let r = 0; r < o.rounds; r++) {
    o.log?.(`download: round ${r + 1}/${o.rounds}`);
    // One forced collection before the first round only (see RssSampler.phase).
    mem.phase("baseline", { collect: r === 0 });
    const [, raw] = await timed(async () => {
      const got = await store.get(up.payloadKey);
      let n = 0;
      for await (const c of got?.body ?? []) n += c.byteLength;
      return n;
    });
    rawMs = Math.min(rawMs, raw);
    mem.phase("ours", { collect: false });
    const [, ms] = await timed(() => ours.download("signed", w(`dl-${r}`)));
    oursMs = Math.min(oursMs, ms);
    await rm(w(`dl-${r}`), { recursive: true, force: true });
    mem.phase("encrypted", { collect: false });
    const [, enc] = await timed(() => ours.download("encrypted", w(`enc-${r}`)));
    encryptedMs = Math.min(encryptedMs, enc);
    await rm(w(`enc-${r}`), { recursive: true, force: true });
    mem.phase("streamed", { collect: false });
    const [, st] = await timed(() => plainTransport.download("plain", w(`st-${r}`)));
    streamedMs = Math.min(streamedMs, st);
    await rm(w(`st-${r}`), { recursive: true, force: true });
  }

  // Resume: abort after half the chunks, then download again and count the ranged reads.
  mem.phase("resume");
  const ctl = new AbortController();
  let served = 0;
  const half = Math.floor(chunks / 2);
  const aborting = new FaultInjectingBlobStore(store, (op) => {
    if (op === "readRange" && ++served > half) ctl.abort();
  });
  let aborted = "resolved";
  await new ArtifactTransport(aborting, { trust, downloadConcurrency: 1 })
    .download("signed", w("resume"), { signal: ctl.signal })
    .catch((err: unknown) => {
      aborted = SlipstreamError.is(err) ? err.code : String(err);
    });
  const counting = new FaultInjectingBlobStore(store);
  let resumed = -1;
  await new ArtifactTransport(counting, { trust }).download("signed", w("resume"), {
    onChunkStats: (s) => {
      resumed = s.resumed;
    },
  });
  const refetched = counting.calls.filter((c) => c.startsWith("readRange")).length;

  const checks: Check[] = [
    check("download aborted half-way reports ABORTED", "ABORTED", aborted),
    check("resumed download skipped the verified chunks", half, resumed),
    check("resumed download fetched only the missing chunks", chunks - half, refetched),
    check("manifest is signed", signer.keyId, up.manifest.signature?.keyId ?? "none"),
  ];
  const rate = (ms: number) => perSecond(objectBytes, ms) / MiB;
  const rawRate = rate(rawMs);
  const oursRate = rate(oursMs);
  return {
    id: "download",
    title:
      "download: signed chunked artifact, parallel verified ranges into a resumable stage, vs a raw streamed read of the payload object (fs store)",
    baseline: { label: "raw get of the payload object", value: rawRate, unit: "MiB/s" },
    ours: { label: "signed, chunked, verified download", value: oursRate, unit: "MiB/s" },
    ratio: rateRatio(oursRate, rawRate),
    details: {
      payloadObjectBytes: objectBytes,
      legacyPayloadObjectBytes: await sizeOf(legacy.payloadKey),
      files: up.manifest.files.length,
      chunks,
      chunkBytes: up.manifest.chunkSize ?? 0,
      rawMs,
      oursMs,
      encryptedMiBps: rate(encryptedMs),
      unchunkedStreamedMiBps: rate(streamedMs),
      rounds: o.rounds,
    },
    checks,
    memory: mem.stop(),
    wallMs: performance.now() - t0,
  };
}
