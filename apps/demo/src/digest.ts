/**
 * A content digest of a key/value set: sha256 over the entries in ascending key order, each
 * as length-prefixed key and value. Two folds (or a fold and a bucket) hold the same data
 * exactly when their digests are equal.
 */
import { createHash, type Hash } from "node:crypto";
import type { KvEntry } from "@slipstream/core";

const enc = new TextEncoder();

function lengthPrefixed(hash: Hash, bytes: Uint8Array): void {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(bytes.length);
  hash.update(len);
  hash.update(bytes);
}

/** Digest of entries that arrive already in ascending key order (a LevelDB range). */
export async function digestOrdered(entries: AsyncIterable<KvEntry>): Promise<{ keys: number; digest: string }> {
  const hash = createHash("sha256");
  let keys = 0;
  let last: string | undefined;
  for await (const e of entries) {
    if (last !== undefined && !(last < e.key)) throw new Error(`entries out of order: ${last} then ${e.key}`);
    last = e.key;
    lengthPrefixed(hash, enc.encode(e.key));
    lengthPrefixed(hash, e.value);
    keys += 1;
  }
  return { keys, digest: hash.digest("hex") };
}

/** Digest of entries in any order (a bucket listing): sorted first, then as {@link digestOrdered}. */
export async function digestUnordered(entries: AsyncIterable<KvEntry>): Promise<{ keys: number; digest: string }> {
  const all: KvEntry[] = [];
  for await (const e of entries) all.push(e);
  // Keys are ASCII here, so UTF-16 order equals LevelDB's byte order.
  all.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  async function* sorted(): AsyncIterable<KvEntry> {
    yield* all;
  }
  return digestOrdered(sorted());
}
