import { type KvUpdate, VersionToken, WatchCursor } from "@slipstream/core";
import type { LevelSnapshotStore } from "../src/index.js";

const enc = new TextEncoder();

export function put(key: string, value: string | Uint8Array, revision: number | bigint): KvUpdate {
  return {
    type: "put",
    entry: {
      key,
      value: typeof value === "string" ? enc.encode(value) : value,
      version: VersionToken.fromRevision(BigInt(revision)),
    },
  };
}

export function del(key: string, revision: number | bigint): KvUpdate {
  return { type: "delete", key, version: VersionToken.fromRevision(BigInt(revision)) };
}

export function at(revision: number | bigint): WatchCursor {
  return WatchCursor.fromRevision(BigInt(revision));
}

export async function keysOf(store: LevelSnapshotStore, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of store.range(prefix)) out.push(e.key);
  return out;
}

export async function dump(store: LevelSnapshotStore, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of store.range(prefix)) {
    out.push(`${e.key}|${e.version.toHex()}|${Buffer.from(e.value).toString("hex")}`);
  }
  return out;
}

/** A seeded pseudo-random `rand(n)` in 0..n-1 (an LCG): random workloads that replay exactly. */
export function seededRandom(seed: number): (n: number) => number {
  let state = seed;
  return (n) => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state % n;
  };
}
