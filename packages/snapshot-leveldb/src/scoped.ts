/**
 * Partial folds: writing a fold of only some prefixes (a scoped export) and narrowing a
 * staged copy to a node's prefixes (a scoped import). Both go through the fold's own write
 * path (FoldWrite batches that carry cursor, count and scope together), so the result is a
 * fold like any other, with an exact entry count and a `scope` record.
 */
import { artifactInvalid, inFoldScope, throwIfAborted, type WatchCursor } from "@slipstream/core";
import { FoldDb } from "./fold-db.js";
import { DATA_PREFIX, dataKey, prefixUpperBound } from "./format.js";

// Records per LevelDB batch while copying or narrowing: bounded memory whatever the fold size.
const CHUNK = 4096;

/**
 * Copies the entries of `source` within `scope` (a non-empty prefix list) into a fresh fold
 * at `dataDir` (absent or empty), commits `cursor`, the exact count and the scope record,
 * and closes it. Returns the number of entries written. The caller holds `source`'s applies
 * off meanwhile, so every entry is at exactly `cursor`.
 */
export async function writeScopedFold(
  source: FoldDb,
  dataDir: string,
  scope: readonly string[],
  cursor: WatchCursor,
  opts: { signal?: AbortSignal | undefined; onBytes?: (bytesDone: number) => void },
): Promise<number> {
  const target = await FoldDb.open(dataDir, "open");
  let count = 0;
  let bytes = 0;
  try {
    let write = target.write();
    let pending = 0;
    for (const prefix of scope) {
      const gte = dataKey(prefix);
      const lt = prefixUpperBound(gte);
      for await (const chunk of source.rawRecords({ gte, ...(lt ? { lt } : {}), chunk: 256 })) {
        throwIfAborted(opts.signal, "scoped export");
        for (const [k, v] of chunk) {
          write.put(k, v);
          count++;
          pending++;
          bytes += k.length + v.length;
        }
        if (pending >= CHUNK) {
          // Interim commits are harmless: the stage is published only once sealed.
          await write.commit(cursor, count, false);
          write = target.write();
          pending = 0;
          opts.onBytes?.(bytes);
        }
      }
    }
    write.setScope(scope);
    await write.commit(cursor, count, true);
    opts.onBytes?.(bytes);
    // One compaction: the shipped fold is table files, not a long write-ahead log.
    await target.compact();
  } finally {
    await target.close();
  }
  return count;
}

/**
 * Narrows the staged (already verified) fold at `dir` to the keys of `keep`: deletes every
 * other entry, commits the exact remaining count, the unchanged cursor and `keep` as its
 * scope, then compacts. The count record must agree with the entries found
 * (`ARTIFACT_INVALID` otherwise). Returns the entries kept.
 */
export async function narrowFold(
  dir: string,
  keep: readonly string[],
  signal: AbortSignal | undefined,
): Promise<number> {
  const fold = await FoldDb.open(dir, "inspect");
  try {
    const cursor = fold.initialCursor;
    let total = 0;
    let kept = 0;
    let write = fold.write();
    let pending = 0;
    for await (const chunk of fold.rawRecords({ chunk: 1024 })) {
      throwIfAborted(signal, "scoped import");
      for (const [k] of chunk) {
        total++;
        const key = k.toString("utf8", DATA_PREFIX.length);
        if (inFoldScope(keep, key)) {
          kept++;
        } else {
          write.del(k);
          pending++;
        }
      }
      if (pending >= CHUNK) {
        // The count of an interim commit is not exact, but the stage is not published
        // unless the final commit below lands.
        await write.commit(cursor, fold.initialCount, false);
        write = fold.write();
        pending = 0;
      }
    }
    if (total !== fold.initialCount) {
      await write.discard();
      throw artifactInvalid(
        `artifact payload holds ${total} entries but its entry count record says ${fold.initialCount}`,
      );
    }
    write.setScope(keep);
    await write.commit(cursor, kept, true);
    await fold.compact();
    return kept;
  } finally {
    await fold.close();
  }
}
