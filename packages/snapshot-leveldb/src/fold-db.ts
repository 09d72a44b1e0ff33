/**
 * The on-disk side of a LevelDB fold (format generation 1, see format.ts): opening or
 * creating a directory as a fold, validating its meta records, atomic commits of data plus
 * cursor plus count, streamed iteration, and the read-only inspection export and import use
 * to check a copied fold. Semantics (KvUpdate folding, locking, artifacts) live in store.ts.
 */
import { lstat, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { type FoldScope, SlipstreamError, throwIfAborted, type VersionToken, type WatchCursor } from "@slipstream/core";
import { Level } from "level";
import { mapLevelError, mapOpenError } from "./errors.js";
import {
  checkFormat,
  DATA_END,
  DATA_PREFIX,
  dataKeyLength,
  decodeCount,
  decodeCursor,
  decodeScope,
  encodeCount,
  encodeCursor,
  encodeFormat,
  encodeScope,
  META_COUNT,
  META_CURSOR,
  META_FORMAT,
  META_SCOPE,
  metaKey,
  writeDataKey,
} from "./format.js";
import { decodeValueRecord, valueRecordLength, writeValueRecord } from "./record.js";

/** Lookups of at least this many keys run as two parallel halves (see {@link FoldDb.hasMany}). */
const SPLIT_LOOKUP_AT = 256;

/** LevelDB tuning passed through to classic-level. */
export interface LevelTuning {
  /** Block cache in bytes (classic-level default 8 MiB). */
  cacheSize?: number;
  /** Memtable size in bytes (classic-level default 4 MiB). */
  writeBufferSize?: number;
  /** Snappy compression of blocks (default true). */
  compression?: boolean;
}

interface ClassicExtras {
  compactRange(start: Buffer, end: Buffer): Promise<void>;
  approximateSize(start: Buffer, end: Buffer): Promise<number>;
  getProperty(name: string): string;
}

// Every fold key starts with "!" (0x21) and sorts below '"' (0x22): the whole fold.
const ALL_START = Buffer.from("!");
const ALL_END = Buffer.from('"');
const FORMAT_KEY = metaKey(META_FORMAT);
const CURSOR_KEY = metaKey(META_CURSOR);
const COUNT_KEY = metaKey(META_COUNT);
const SCOPE_KEY = metaKey(META_SCOPE);

/** "absent" and "empty" may be created; "occupied" must already be a fold. */
async function dirState(dir: string): Promise<"absent" | "empty" | "occupied"> {
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(dir); // follows a symlinked fold directory
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return "absent";
    throw SlipstreamError.wrap(err, "BACKEND", `checking fold directory ${dir}`);
  }
  if (!st.isDirectory()) {
    throw new SlipstreamError("SNAPSHOT_INVALID_FORMAT", `${dir} is not a directory; a LevelDB fold is a directory`);
  }
  return (await readdir(dir)).length === 0 ? "empty" : "occupied";
}

async function requireCurrentFile(dir: string): Promise<void> {
  let isFile = false;
  try {
    isFile = (await lstat(join(dir, "CURRENT"))).isFile();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "ENOENT" && code !== "ENOTDIR") {
      throw SlipstreamError.wrap(err, "BACKEND", `checking fold directory ${dir}`);
    }
  }
  if (!isFile) {
    throw new SlipstreamError(
      "SNAPSHOT_INVALID_FORMAT",
      `${dir} holds files but is not a LevelDB database (no CURRENT file); refusing to create a fold over them`,
    );
  }
}

function makeDb(dir: string, create: boolean, exclusive: boolean, tuning: LevelTuning) {
  return new Level<Buffer, Buffer>(dir, {
    keyEncoding: "buffer",
    valueEncoding: "buffer",
    createIfMissing: create,
    errorIfExists: exclusive,
    ...(tuning.cacheSize !== undefined ? { cacheSize: tuning.cacheSize } : {}),
    ...(tuning.writeBufferSize !== undefined ? { writeBufferSize: tuning.writeBufferSize } : {}),
    ...(tuning.compression !== undefined ? { compression: tuning.compression } : {}),
  });
}

/** One atomic write in the making (see {@link FoldDb.write}); commit or discard it. */
export class FoldWrite {
  readonly #batch: ChainedBatch;
  readonly #dir: string;

  /** @internal */
  constructor(batch: ChainedBatch, dir: string) {
    this.#batch = batch;
    this.#dir = dir;
  }

  /** Puts a data record under a root key. */
  put(key: Buffer, value: Buffer): void {
    this.#batch.put(key, value);
  }

  /**
   * Puts the entry `key` → value record (`[ver_len][version][value]`, see record.ts) without
   * allocating either: both are encoded into one scratch buffer that is reused, because
   * classic-level's chained batch copies key and value into its native WriteBatch at `put`
   * (a hydration of millions of keys otherwise churns two small buffers per entry).
   */
  putEntry(key: string, version: VersionToken, value: Uint8Array): void {
    const keyLen = dataKeyLength(key);
    const need = keyLen + valueRecordLength(version, value);
    if (scratch.length < need) scratch = Buffer.allocUnsafeSlow(Math.max(need, scratch.length * 2));
    writeDataKey(scratch, key);
    writeValueRecord(scratch, keyLen, version, value);
    this.#batch.put(scratch.subarray(0, keyLen), scratch.subarray(keyLen, need));
  }

  /** Deletes a root key. */
  del(key: Buffer): void {
    this.#batch.del(key);
  }

  /** Records the key prefixes the fold holds (undefined: the whole bucket, no record). */
  setScope(scope: FoldScope): void {
    if (scope === undefined) this.#batch.del(SCOPE_KEY);
    else this.#batch.put(SCOPE_KEY, encodeScope(scope));
  }

  /** Adds the meta records and writes everything in one LevelDB batch. */
  async commit(cursor: WatchCursor, count: number, sync: boolean): Promise<void> {
    const b = this.#batch;
    try {
      b.put(FORMAT_KEY, encodeFormat());
      b.put(CURSOR_KEY, encodeCursor(cursor));
      b.put(COUNT_KEY, encodeCount(count));
      await b.write({ sync });
    } catch (err) {
      await b.close().catch(() => {});
      throw mapLevelError(err, `writing a batch to ${this.#dir}`);
    }
  }

  /** Drops the ops gathered so far (nothing is written). */
  async discard(): Promise<void> {
    await this.#batch.close();
  }
}

type ChainedBatch = ReturnType<ReturnType<typeof makeDb>["batch"]>;

// Shared by every FoldWrite (JS is single-threaded and putEntry is synchronous); grows to
// the largest entry seen.
let scratch: Buffer = Buffer.allocUnsafeSlow(64 * 1024);

/** A LevelDB directory opened as a fold. Binary keys and values only; no JSON anywhere. */
export class FoldDb {
  readonly dir: string;
  /** The cursor record as read at open. */
  readonly initialCursor: WatchCursor;
  /** The count record as read at open. */
  readonly initialCount: number;
  /** The scope record as read at open (undefined: the whole bucket). */
  readonly initialScope: FoldScope;
  /** True when this open created (or initialised) the fold. */
  readonly created: boolean;
  readonly #db;

  private constructor(
    dir: string,
    db: ReturnType<typeof makeDb>,
    cursor: WatchCursor,
    count: number,
    created: boolean,
    scope: FoldScope = undefined,
  ) {
    this.dir = dir;
    this.#db = db;
    this.initialCursor = cursor;
    this.initialCount = count;
    this.initialScope = scope;
    this.created = created;
  }

  /**
   * Opens `dir` as a fold. `mode: "open"` creates an absent or empty directory, and
   * initialises a LevelDB that holds no key at all (a crash between creating the database
   * and writing its format record); `mode: "inspect"` only accepts an existing fold. A
   * directory holding files that are not a LevelDB, a LevelDB without the slipstream
   * `format` record, a generation this version does not read, a cursor record over 10
   * bytes or a bad count record → `SNAPSHOT_INVALID_FORMAT`; a held LOCK → `BACKEND`.
   */
  static async open(dir: string, mode: "open" | "inspect", tuning: LevelTuning = {}): Promise<FoldDb> {
    const state = mode === "open" ? await dirState(dir) : "occupied";
    // LevelDB writes LOCK and LOG before it looks for CURRENT: check first, so a directory
    // that is not a LevelDB is refused without a single byte written into it.
    if (state === "occupied") await requireCurrentFile(dir);
    const db = makeDb(dir, state !== "occupied", false, tuning);
    try {
      await db.open();
    } catch (err) {
      throw mapOpenError(err, dir);
    }
    try {
      const [format, cursorRecord, countRecord, scopeRecord] = await db.getMany([
        FORMAT_KEY,
        CURSOR_KEY,
        COUNT_KEY,
        SCOPE_KEY,
      ]);
      if (format === undefined) {
        const anyKey = await db.keys({ limit: 1 }).all();
        if (mode === "open" && anyKey.length === 0) {
          await db.batch(
            [
              { type: "put", key: FORMAT_KEY, value: encodeFormat() },
              { type: "put", key: COUNT_KEY, value: encodeCount(0) },
            ],
            { sync: true },
          );
          return new FoldDb(dir, db, decodeCursor(undefined, dir), 0, true);
        }
        throw new SlipstreamError(
          "SNAPSHOT_INVALID_FORMAT",
          anyKey.length === 0
            ? `${dir} is an empty LevelDB database without a slipstream format record; it is not a slipstream fold`
            : `${dir} is a LevelDB database but not a slipstream fold: it has no "format" record in the "meta" sublevel`,
        );
      }
      checkFormat(format, dir);
      const cursor = decodeCursor(cursorRecord, dir);
      const count = decodeCount(countRecord, dir);
      const scope = decodeScope(scopeRecord, dir);
      return new FoldDb(dir, db, cursor, count, false, scope);
    } catch (err) {
      await db.close().catch(() => {});
      throw mapLevelError(err, `reading fold metadata at ${dir}`);
    }
  }

  /** The value record stored under the root data key `key`, or undefined. */
  async getRecord(key: Buffer): Promise<Buffer | undefined> {
    try {
      return await this.#db.get(key);
    } catch (err) {
      throw mapLevelError(err, `reading ${this.dir}`);
    }
  }

  /** The value records stored under the root data keys `keys` (positional). */
  async getRecords(keys: Buffer[]): Promise<Array<Buffer | undefined>> {
    if (keys.length === 0) return [];
    try {
      return await this.#db.getMany(keys);
    } catch (err) {
      throw mapLevelError(err, `reading ${this.dir}`);
    }
  }

  /**
   * Which of the root data keys `keys` are present. A long list is looked up as two halves
   * on two threads at once (LevelDB reads run in parallel; a lookup of a random key is a
   * table-block read, so one thread at a time leaves the second core idle). Callers hold the
   * store's exclusive section: no write lands between the halves.
   */
  async hasMany(keys: Buffer[]): Promise<boolean[]> {
    if (keys.length === 0) return [];
    try {
      if (keys.length < SPLIT_LOOKUP_AT) return await this.#db.hasMany(keys);
      const half = keys.length >> 1;
      const [a, b] = await Promise.all([this.#db.hasMany(keys.slice(0, half)), this.#db.hasMany(keys.slice(half))]);
      for (const x of b) a.push(x);
      return a;
    } catch (err) {
      throw mapLevelError(err, `reading ${this.dir}`);
    }
  }

  /**
   * Starts one atomic write: data ops go in with {@link FoldWrite.put}/{@link FoldWrite.del},
   * and {@link FoldWrite.commit} adds the cursor and the entry count and writes it all in ONE
   * LevelDB batch (data and cursor together: after any crash the recovered cursor names
   * exactly the recovered data). A chained batch, measured several times cheaper per op than
   * abstract-level's array batch in a busy process.
   */
  write(): FoldWrite {
    return new FoldWrite(this.#db.batch(), this.dir);
  }

  /**
   * Streams data records whose root keys lie in `[gte, lt)` (defaults: the whole data
   * sublevel), ascending byte order, in chunks of at most `chunk` entries; keys are ROOT keys
   * (with the data prefix). Only one chunk is held at a time; the iterator is closed when the
   * consumer stops early.
   */
  async *rawRecords(opts: { gte?: Buffer; lt?: Buffer; chunk?: number }): AsyncGenerator<Array<[Buffer, Buffer]>> {
    const it = this.#db.iterator({
      gte: opts.gte ?? DATA_PREFIX,
      lt: opts.lt ?? DATA_END,
    });
    try {
      for (;;) {
        let items: Array<[Buffer, Buffer]>;
        try {
          items = await it.nextv(opts.chunk ?? 256);
        } catch (err) {
          throw mapLevelError(err, `iterating ${this.dir}`);
        }
        if (items.length === 0) return;
        yield items;
      }
    } finally {
      await it.close();
    }
  }

  /**
   * Reads every data record and checks it decodes: the key is UTF-8 and the value a valid
   * value record. Returns the number of records. Used on untrusted copies (imports), so a
   * fold that would fail on its first read never goes into place.
   */
  async verifyRecords(signal?: AbortSignal): Promise<number> {
    let scanned = 0;
    const utf8 = new TextDecoder("utf-8", { fatal: true });
    const it = this.#db.iterator({ gte: DATA_PREFIX, lt: DATA_END });
    try {
      for (;;) {
        throwIfAborted(signal, "fold verification");
        let batch: [Buffer, Buffer][];
        try {
          batch = await it.nextv(4096);
        } catch (err) {
          throw mapLevelError(err, `reading ${this.dir}`);
        }
        if (batch.length === 0) break;
        for (const [k, v] of batch) {
          let key: string;
          try {
            key = utf8.decode(k.subarray(DATA_PREFIX.length));
          } catch (err) {
            throw new SlipstreamError("SNAPSHOT_INVALID_FORMAT", `record ${scanned} has a key that is not UTF-8`, {
              cause: err,
            });
          }
          decodeValueRecord(v, key);
          scanned++;
        }
      }
    } finally {
      await it.close();
    }
    return scanned;
  }

  /**
   * File numbers of the table files of LevelDB's current version (the `leveldb.sstables`
   * property): exactly the tables a checkpoint of the directory must hold.
   */
  liveTables(): number[] {
    const text = (this.#db as unknown as ClassicExtras).getProperty("leveldb.sstables");
    const out: number[] = [];
    for (const m of text.matchAll(/^\s*(\d+):/gm)) out.push(Number(m[1]));
    return out;
  }

  /**
   * Whether LevelDB has compaction work queued: its own size-triggered scores, computed
   * from the current version's files (`leveldb.sstables`) as LevelDB does — level 0 by file
   * count over {@link L0_COMPACTION_TRIGGER}, level n ≥ 1 by bytes over its target (10 MiB
   * × 10^(n−1)); a score of 1 or more means a compaction is due or running.
   */
  compactionBacklog(): boolean {
    return compactionBacklogOf((this.#db as unknown as ClassicExtras).getProperty("leveldb.sstables"));
  }

  /** Approximate bytes on disk of the whole fold. */
  async approximateSize(): Promise<number> {
    return (this.#db as unknown as ClassicExtras).approximateSize(ALL_START, ALL_END);
  }

  /**
   * Writes the memtable into a level-0 table (and starts a fresh write-ahead log): LevelDB
   * flushes it at the start of every manual compaction, and this one's range holds no key,
   * so nothing else is compacted. A checkpoint taken afterwards carries an empty log, which
   * the importer has nothing to replay from.
   */
  async flushMemtable(): Promise<void> {
    try {
      await (this.#db as unknown as ClassicExtras).compactRange(ALL_END, ALL_END);
    } catch (err) {
      throw mapLevelError(err, `flushing the memtable of ${this.dir}`);
    }
  }

  /** Full manual compaction of the fold's key space. */
  async compact(): Promise<void> {
    try {
      await (this.#db as unknown as ClassicExtras).compactRange(ALL_START, ALL_END);
    } catch (err) {
      throw mapLevelError(err, `compacting ${this.dir}`);
    }
  }

  async close(): Promise<void> {
    await this.#db.close();
  }
}

/** LevelDB's `kL0_CompactionTrigger`: level 0 compacts from this many files on. */
export const L0_COMPACTION_TRIGGER = 4;
/** LevelDB's `kNumLevels`; the last level is never compacted further. */
const LEVELS = 7;
/** LevelDB's target size of level 1 (`MaxBytesForLevel(1)`), ×10 per further level. */
const LEVEL1_BYTES = 10 * 1048576;

/**
 * {@link FoldDb.compactionBacklog} of a `leveldb.sstables` listing: lines `--- level N ---`
 * followed by one ` <number>:<size>[<smallest> .. <largest>]` line per table.
 */
export function compactionBacklogOf(sstables: string): boolean {
  const files = new Array<number>(LEVELS).fill(0);
  const bytes = new Array<number>(LEVELS).fill(0);
  let level = -1;
  for (const line of sstables.split("\n")) {
    const header = /^--- level (\d+) ---$/.exec(line);
    if (header) {
      level = Number(header[1]);
      continue;
    }
    const table = /^\s*\d+:(\d+)\[/.exec(line);
    if (table && level >= 0 && level < LEVELS) {
      files[level] = (files[level] ?? 0) + 1;
      bytes[level] = (bytes[level] ?? 0) + Number(table[1]);
    }
  }
  if ((files[0] ?? 0) >= L0_COMPACTION_TRIGGER) return true;
  let target = LEVEL1_BYTES;
  for (let l = 1; l < LEVELS - 1; l++, target *= 10) {
    if ((bytes[l] ?? 0) >= target) return true;
  }
  return false;
}

/** What {@link inspectFold} found in a copied fold. */
export interface FoldInspection {
  cursor: WatchCursor;
  /** The `scope` record (undefined: the whole bucket). */
  scope: FoldScope;
  /** The `count` record. */
  count: number;
  /** Entries actually present in the `data` sublevel, when the records were read. */
  scanned: number | undefined;
}

/**
 * Opens an existing fold (never creating one) and reads its cursor and count record; with
 * `records`, also reads every data record and checks it decodes. Then closes it. Opening a
 * LevelDB writes to its directory (LOG, LOCK, log recovery), so callers inspect only copies
 * they own.
 */
export async function inspectFold(
  dir: string,
  opts: { signal?: AbortSignal | undefined; records?: boolean } = {},
): Promise<FoldInspection> {
  const fold = await FoldDb.open(dir, "inspect");
  try {
    const scanned = opts.records ? await fold.verifyRecords(opts.signal) : undefined;
    return { cursor: fold.initialCursor, scope: fold.initialScope, count: fold.initialCount, scanned };
  } finally {
    await fold.close();
  }
}
