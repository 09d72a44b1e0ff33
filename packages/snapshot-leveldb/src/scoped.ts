/**
 * Partial folds: writing a fold of only some prefixes (a scoped export) and narrowing a
 * staged copy to a node's prefixes (a scoped import). Both go through the fold's own write
 * path (FoldWrite batches that carry cursor, count and scope together), so the result is a
 * fold like any other, with an exact entry count and a `scope` record. Either way only the
 * ranges of the scope are read.
 */
import { readdir, rename, rm, rmdir } from "node:fs/promises";
import { join } from "node:path";
import { fsyncPath, throwIfAborted, type WatchCursor } from "@slipstream/core";
import { FoldDb } from "./fold-db.js";
import { dataKey, prefixUpperBound } from "./format.js";

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

/** Where a narrowed fold is built inside the stage it replaces. */
const NARROW_DIR = ".slipstream-narrow";

/**
 * Narrows the staged (already verified) fold at `dir` to the keys of `keep`: the entries of
 * `keep` are copied into a fresh fold (cursor unchanged, exact count, `keep` as its scope)
 * built inside the stage, which then replaces the stage's files. Only the kept ranges are
 * read, so a narrow node pays for what it keeps, not for the artifact's other keys (and no
 * tombstones or compaction of them). Returns the entries kept.
 */
export async function narrowFold(
  dir: string,
  keep: readonly string[],
  signal: AbortSignal | undefined,
): Promise<number> {
  const source = await FoldDb.open(dir, "inspect");
  const narrowed = join(dir, NARROW_DIR);
  let kept: number;
  try {
    kept = await writeScopedFold(source, narrowed, keep, source.initialCursor, { signal });
  } finally {
    await source.close();
  }
  // The stage is private and not yet in place: a crash here leaves only a stage to sweep.
  for (const name of await readdir(dir)) {
    if (name !== NARROW_DIR) await rm(join(dir, name), { recursive: true, force: true });
  }
  for (const name of await readdir(narrowed)) await rename(join(narrowed, name), join(dir, name));
  await rmdir(narrowed);
  await fsyncPath(dir);
  return kept;
}
