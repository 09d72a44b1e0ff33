/**
 * The benchmark data set: route-like keys and deterministic printable values (so LevelDB's
 * Snappy compression sees realistic, not trivially compressible, bytes).
 */
import { type KvUpdate, VersionToken } from "@slipstream/core";

/** Key of entry `i`: `route.svc-<i mod 1000, 6 digits>.<i, 8 digits>` (1000 services). */
export function keyOf(i: number): string {
  return `route.svc-${String(i % 1000).padStart(6, "0")}.${String(i).padStart(8, "0")}`;
}

const ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/=";

/**
 * Value of entry `i` in generation `gen`: `valueBytes` printable bytes from a small LCG
 * seeded by both, so every (entry, generation) differs.
 */
export function valueFor(i: number, valueBytes: number, gen = 0): Uint8Array {
  const out = new Uint8Array(valueBytes);
  let x = (i * 2654435761 + gen * 40503 + 1) >>> 0;
  for (let j = 0; j < valueBytes; j++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[j] = ALPHABET.charCodeAt((x >>> 24) % ALPHABET.length);
  }
  return out;
}

/**
 * Put updates of entries `from..from+count-1` (entry i at revision i + 1); build them up
 * front where generation must not be timed.
 */
export function putUpdates(count: number, valueBytes: number, from = 0): KvUpdate[] {
  const out: KvUpdate[] = new Array(count);
  for (let n = 0; n < count; n++) {
    const i = from + n;
    out[n] = {
      type: "put",
      entry: { key: keyOf(i), value: valueFor(i, valueBytes), version: VersionToken.fromRevision(BigInt(i + 1)) },
    };
  }
  return out;
}
