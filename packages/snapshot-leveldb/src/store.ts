import { rm } from "node:fs/promises";
import { join } from "node:path";
import {
  artifactInvalid,
  cursorMismatch,
  describeScope,
  type ExportManifest,
  type ExportOptions,
  expectBackend,
  exportArtifact,
  type FoldScope,
  type ImportTransfer,
  type KvEntry,
  type KvUpdate,
  type Logger,
  type ProgressFn,
  type QuiesceOptions,
  resolveExportScope,
  resolveImportScope,
  SlipstreamError,
  type SnapshotStore,
  sameScope,
  silentLogger,
  sleep,
  throwIfAborted,
  VersionToken,
  verifyAndStageImport,
  WatchCursor,
  type WatchScope,
} from "@slipstream/core";
import { ARTIFACT_VERSION, READABLE_ARTIFACT_VERSIONS } from "./artifact-version.js";
import { checkpointLevelDb, TableDigests } from "./checkpoint.js";
import { FoldDb, type FoldWrite, inspectFold, type LevelTuning } from "./fold-db.js";
import { BACKEND_ID, DATA_PREFIX, dataKey, FORMAT_GENERATION, prefixUpperBound } from "./format.js";
import { KeyFilter } from "./key-filter.js";
import { decodeValueRecord } from "./record.js";
import { narrowFold, writeScopedFold } from "./scoped.js";

/** Options of {@link LevelSnapshotStore.open}. */
export interface LevelSnapshotStoreOptions extends LevelTuning {
  /**
   * fsync every apply batch. Off by default: a tail lost to power loss is re-fetched from
   * the (equally lost) cursor, because data and cursor are committed together.
   * @defaultValue false
   */
  sync?: boolean;
  /** Where diagnostics go. @defaultValue silent */
  logger?: Logger;
}

/** Options of {@link LevelSnapshotStore.import}. */
export interface LevelImportOptions extends LevelSnapshotStoreOptions {
  signal?: AbortSignal;
  onProgress?: ProgressFn;
  /**
   * How the payload files reach the fold: `"copy"` (the artifact stays untouched),
   * `"link"` (hard-link the table files, which LevelDB never writes again, and copy the
   * rest; the artifact may be deleted afterwards but must not be rewritten in place) or
   * `"move"` (the artifact directory is scratch and is consumed). Every byte is hashed
   * exactly once whichever is chosen; link and move fall back to copy across filesystems.
   * @defaultValue "copy"
   */
  transfer?: ImportTransfer;
  /**
   * With `transfer: "move"` only: every payload file was already checked against this
   * artifact's manifest while it was written into a private scratch directory (what
   * `importRemote`'s streamed download does, and passes on through its hints), so the move
   * skips the second hashing pass. Never set it for an artifact you did not verify.
   * @defaultValue false
   */
  hashesVerified?: boolean;
  /**
   * With `transfer: "move"` only: every payload file's data is already durable (fsynced by
   * whoever wrote it, as `importRemote`'s download does and passes on through its hints), so
   * the move fsyncs the stage's directories instead of each file.
   * @defaultValue false
   */
  durable?: boolean;
  /**
   * Also read every record of the staged fold and check it decodes, before it goes into
   * place. The SHA-256 of every file already proves the bytes are the ones the exporter
   * verified, so this only guards against an exporter that shipped a fold that was already
   * damaged; it reads the whole fold once more.
   * @defaultValue false
   */
  verifyRecords?: boolean;
  /**
   * The scope of the node importing. The artifact's scope must cover it
   * (`SCOPE_NOT_COVERED` otherwise, before anything is written); the whole artifact is
   * verified first, then only the keys of this scope are kept (exact count), and the fold
   * records the scope ({@link LevelSnapshotStore.scope}), so its own exports say what they hold.
   * @defaultValue the whole bucket (a partial artifact is refused)
   */
  scope?: WatchScope;
}

// Table files: LevelDB never writes to one after it is created, so an import may link them.
const TABLE_FILE = /^\d+\.(?:ldb|sst)$/;

/** Operator-facing figures of a fold. */
export interface LevelStoreStats {
  /** Number of entries (kept in the meta sublevel, updated in every apply batch; O(1)). */
  entries: number;
  cursor: WatchCursor;
  /** LevelDB's estimate of the bytes on disk. */
  approximateBytes: number;
  formatGeneration: number;
  directory: string;
}

// Chunk sizes for streamed copies: bounded memory whatever the fold size.
const RANGE_CHUNK = 256;
// Runtime files LevelDB writes on open; not part of a fold's state, so not shipped.
const RUNTIME_FILES = ["LOG", "LOG.old", "LOCK"];

function closedError(dir: string): SlipstreamError {
  return new SlipstreamError("BACKEND", `LevelDB fold at ${dir} is closed`);
}

// A lone surrogate has no UTF-8 form (it would be stored as U+FFFD, aliasing another key).
// String.prototype.isWellFormed (Node ≥ 20) is ES2024; typed here to keep the ES2023 lib.
const isWellFormed = (String.prototype as unknown as { isWellFormed: (this: string) => boolean }).isWellFormed;

function checkKey(key: string, where: string): void {
  if (!isWellFormed.call(key)) {
    throw new SlipstreamError(
      "INVALID_ARGUMENT",
      `${where} ${JSON.stringify(key)} contains a lone surrogate; keys must be valid Unicode`,
    );
  }
}

/** How often {@link LevelSnapshotStore.quiesce} looks at LevelDB's file set (ms). */
const QUIESCE_POLL_MS = 20;
/** {@link QuiesceOptions.timeoutMs}'s default. */
const DEFAULT_QUIESCE_MS = 10_000;

function checkWaitMs(value: number | undefined, what: string): void {
  if (value !== undefined && !(typeof value === "number" && Number.isFinite(value) && value >= 0)) {
    throw new TypeError(`${what} must be a finite number ≥ 0`);
  }
}

function checkUpdate(u: unknown, i: number): asserts u is KvUpdate {
  if (typeof u !== "object" || u === null) throw new TypeError(`batch[${i}] must be a KvUpdate object`);
  const up = u as Partial<Record<string, unknown>>;
  if (up.type === "put") {
    const e = up.entry as Partial<KvEntry> | undefined;
    if (typeof e !== "object" || e === null) throw new TypeError(`batch[${i}].entry must be a KvEntry`);
    if (typeof e.key !== "string") throw new TypeError(`batch[${i}].entry.key must be a string`);
    if (!(e.value instanceof Uint8Array)) throw new TypeError(`batch[${i}].entry.value must be a Uint8Array`);
    if (!(e.version instanceof VersionToken)) throw new TypeError(`batch[${i}].entry.version must be a VersionToken`);
    checkKey(e.key, `batch[${i}].entry.key`);
  } else if (up.type === "delete" || up.type === "purge") {
    if (typeof up.key !== "string") throw new TypeError(`batch[${i}].key must be a string`);
    if (!(up.version instanceof VersionToken)) throw new TypeError(`batch[${i}].version must be a VersionToken`);
    checkKey(up.key, `batch[${i}].key`);
  } else {
    throw new TypeError(`batch[${i}].type must be "put", "delete" or "purge"`);
  }
}

/**
 * A durable {@link SnapshotStore} on LevelDB (through `level` / classic-level), for folds
 * from a few keys to tens of millions. Keys and value records live in the `data` sublevel,
 * the cursor, the entry count and the format generation in the `meta` sublevel; every
 * {@link LevelSnapshotStore.apply} is one LevelDB batch holding all of them.
 *
 * Reads (`get`, `range`, `count`, `stats`) run concurrently with everything; `apply` and
 * `exportTo` are serialised (an apply issued during an export waits for it).
 */
export class LevelSnapshotStore implements SnapshotStore, AsyncDisposable {
  /** Backend id written into artifacts. */
  readonly backend = BACKEND_ID;
  /** The fold directory. */
  readonly directory: string;
  readonly #fold: FoldDb;
  readonly #sync: boolean;
  readonly #logger: Logger;
  #cursor: WatchCursor;
  #count: number;
  readonly #scope: FoldScope;
  /** Which keys may exist (see key-filter.ts); complete only for a fold opened empty. */
  readonly #filter: KeyFilter;
  #closed = false;
  #exporting = false;
  // Serialises apply / export / close: the count bookkeeping needs applies in order, and an
  // export must see exactly one cursor.
  #tail: Promise<unknown> = Promise.resolve();
  readonly #background = new Set<Promise<unknown>>();
  // Digests of the table files the last export shipped: the next one re-hashes only new tables.
  readonly #digests = new TableDigests();

  private constructor(fold: FoldDb, opts: LevelSnapshotStoreOptions) {
    this.directory = fold.dir;
    this.#fold = fold;
    this.#sync = opts.sync ?? false;
    this.#logger = opts.logger ?? silentLogger;
    this.#cursor = fold.initialCursor;
    this.#count = fold.initialCount;
    this.#scope = fold.initialScope;
    this.#filter = new KeyFilter(fold.initialCount === 0);
  }

  /**
   * Opens the fold in `dir`, creating it when `dir` is absent or empty. {@link cursor} is
   * the persisted resume cursor (none when fresh).
   *
   * @throws SlipstreamError `SNAPSHOT_INVALID_FORMAT` when `dir` holds something that is
   *   not a slipstream fold, an unreadable format generation or a corrupt meta record;
   *   `BACKEND` when another process (or store) holds the LevelDB LOCK;
   *   `SNAPSHOT_CORRUPTED` when LevelDB reports corruption.
   */
  static async open(dir: string, opts: LevelSnapshotStoreOptions = {}): Promise<LevelSnapshotStore> {
    if (typeof dir !== "string" || dir.length === 0) throw new TypeError("dir must be a non-empty string");
    checkOptions(opts);
    const fold = await FoldDb.open(dir, "open", opts);
    const store = new LevelSnapshotStore(fold, opts);
    store.#logger.debug(fold.created ? "created LevelDB fold" : "opened LevelDB fold", {
      dir,
      cursor: store.#cursor.toHex(),
      entries: store.#count,
    });
    return store;
  }

  /**
   * Imports a verified artifact into a fresh fold at `destDir` (absent or empty) and opens
   * it. Every size and hash is re-checked while copying into a hidden stage beside
   * `destDir`, the staged copy is opened and its cursor must equal the manifest's, then one
   * atomic rename publishes it. A bad artifact never becomes a fold; on any failure (or a
   * crash) nothing appears at `destDir`.
   *
   * @throws SlipstreamError `ARTIFACT_INVALID` for any defect of the artifact or a busy `destDir`.
   */
  static async import(
    artifactDir: string,
    destDir: string,
    opts: LevelImportOptions = {},
  ): Promise<LevelSnapshotStore> {
    if (typeof artifactDir !== "string" || artifactDir.length === 0) {
      throw new TypeError("artifactDir must be a non-empty string");
    }
    if (typeof destDir !== "string" || destDir.length === 0) throw new TypeError("destDir must be a non-empty string");
    checkOptions(opts);
    const logger = opts.logger ?? silentLogger;
    const keep = resolveImportScope(opts.scope);
    let kept: number | undefined;
    const manifest = await verifyAndStageImport(artifactDir, destDir, {
      checkBackend: expectBackend(BACKEND_ID, READABLE_ARTIFACT_VERSIONS),
      ...(opts.scope !== undefined ? { scope: opts.scope } : {}),
      ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
      ...(opts.onProgress !== undefined ? { onProgress: opts.onProgress } : {}),
      ...(opts.transfer !== undefined ? { transfer: opts.transfer } : {}),
      ...(opts.hashesVerified === true ? { hashesVerified: true } : {}),
      ...(opts.durable === true ? { durable: true } : {}),
      linkable: (path) => TABLE_FILE.test(path),
      verifyStaged: async (stageDir, m) => {
        // Every byte is already proven by its hash; opening checks the structure (every table
        // the MANIFEST names is present, the log replays) and the meta records.
        let found: Awaited<ReturnType<typeof inspectFold>>;
        try {
          found = await inspectFold(stageDir, { signal: opts.signal, records: opts.verifyRecords === true });
        } catch (err) {
          if (SlipstreamError.is(err, "ABORTED")) throw err;
          const detail = err instanceof Error ? err.message.replaceAll(stageDir, "<payload>") : String(err);
          throw artifactInvalid(`artifact payload is not a readable slipstream LevelDB fold: ${detail}`, err);
        }
        if (!found.cursor.equals(m.cursor)) throw cursorMismatch(found.cursor, m);
        if (found.scanned !== undefined && found.scanned !== found.count) {
          throw artifactInvalid(
            `artifact payload holds ${found.scanned} entries but its entry count record says ${found.count}`,
          );
        }
        if (!sameScope(found.scope, m.scope)) {
          throw artifactInvalid(
            `artifact payload records scope ${describeScope(found.scope)}; its manifest declares ${describeScope(m.scope)}`,
          );
        }
        // Verified as a whole (every hash, the structure, cursor and scope); only now are
        // the keys outside the node's scope dropped, in the stage, before it goes into place.
        if (keep !== undefined && !sameScope(keep, m.scope)) {
          try {
            kept = await narrowFold(stageDir, keep, opts.signal);
          } catch (err) {
            if (SlipstreamError.is(err, "ABORTED")) throw err;
            throw SlipstreamError.wrap(err, "BACKEND", "narrowing the imported fold to its scope");
          }
        }
      },
    });
    logger.info("imported LevelDB fold", {
      dir: destDir,
      cursor: manifest.cursor.toHex(),
      ...(keep !== undefined ? { scope: keep, entries: kept } : {}),
    });
    return LevelSnapshotStore.open(destDir, opts);
  }

  /** Everything at or below this cursor has been applied and committed. */
  get cursor(): WatchCursor {
    return this.#cursor;
  }

  /**
   * The key prefixes this fold holds, recorded by a scoped import; undefined = the whole
   * bucket. Its exports carry it in their manifest.
   */
  get scope(): readonly string[] | undefined {
    return this.#scope;
  }

  /**
   * Applies puts (upsert, empty values kept) and deletes/purges (remove), the cursor and the
   * new entry count in one LevelDB batch: all or nothing. An empty batch still advances and
   * persists the cursor. Waits while an export runs.
   */
  apply(batch: readonly KvUpdate[], cursor: WatchCursor): Promise<void> {
    if (!Array.isArray(batch)) return Promise.reject(new TypeError("batch must be an array of KvUpdate"));
    if (!(cursor instanceof WatchCursor)) return Promise.reject(new TypeError("cursor must be a WatchCursor"));
    try {
      batch.forEach(checkUpdate);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.#closed) return Promise.reject(closedError(this.directory));
    return this.#exclusive(() => this.#applyNow(batch, cursor));
  }

  async #applyNow(batch: readonly KvUpdate[], cursor: WatchCursor): Promise<void> {
    const write = this.#fold.write();
    let count: number;
    try {
      const fresh = this.#freshBatch(batch, write);
      count =
        fresh.next === batch.length ? fresh.count : await this.#lookedUpBatch(batch, fresh.next, fresh.count, write);
    } catch (err) {
      await write.discard().catch(() => {});
      throw err;
    }
    // Data and cursor together: one batch, so the recovered cursor always names the data.
    await write.commit(cursor, count, this.#sync);
    this.#cursor = cursor;
    this.#count = count;
  }

  /**
   * Writes the batch's ops for as long as the key filter proves each key absent before the
   * batch and no key repeats (a hydration or a replay: no read at all). Returns the entry
   * count so far and `next`, the first update not written (the batch's length when all were):
   * updates before it have distinct keys, each absent before the batch.
   */
  #freshBatch(batch: readonly KvUpdate[], write: FoldWrite): { count: number; next: number } {
    const filter = this.#filter;
    let count = this.#count;
    if (!filter.complete) return { count, next: 0 };
    for (let i = 0; i < batch.length; i++) {
      const u = batch[i] as KvUpdate;
      // A repeat within the batch shows up here too: its first put added it to the filter.
      // A put's key is added in the same probe (before the commit: a key of a batch that
      // then fails is only a "maybe").
      if (u.type === "put") {
        if (!filter.addIfNew(u.entry.key)) return { count, next: i };
        write.putEntry(u.entry.key, u.entry.version, u.entry.value);
        count++;
      } else {
        if (filter.mightContain(u.key)) return { count, next: i };
        // Deleting an absent key changes nothing, but stays in the batch (harmless, exact).
        write.del(dataKey(u.key));
      }
    }
    return { count, next: batch.length };
  }

  /**
   * Writes the batch's ops from `start` on (those before it are written, see #freshBatch)
   * and returns the new entry count, learning which keys already exist: keys the filter has
   * never seen since the fold was empty are certainly absent, and the rest are looked up in
   * one native hasMany per batch (exact count).
   */
  async #lookedUpBatch(batch: readonly KvUpdate[], start: number, count: number, write: FoldWrite): Promise<number> {
    const filter = this.#filter;
    // Presence as of the update being processed. Keys before `start` were absent before the
    // batch, so after their own op a put's key is present and a delete's is not.
    const present = new Map<string, boolean>();
    for (let i = 0; i < start; i++) {
      const u = batch[i] as KvUpdate;
      present.set(u.type === "put" ? u.entry.key : u.key, u.type === "put");
    }
    let lookup: string[] | undefined;
    for (let i = start; i < batch.length; i++) {
      const u = batch[i] as KvUpdate;
      const key = u.type === "put" ? u.entry.key : u.key;
      if (present.has(key)) continue;
      if (filter.mightContain(key)) {
        present.set(key, true); // placeholder, resolved by the lookup below
        (lookup ??= []).push(key);
      } else {
        present.set(key, false);
      }
    }
    if (lookup !== undefined) {
      const has = await this.#fold.hasMany(lookup.map(dataKey));
      for (let i = 0; i < lookup.length; i++) present.set(lookup[i] as string, has[i] === true);
    }
    for (let i = start; i < batch.length; i++) {
      const u = batch[i] as KvUpdate;
      if (u.type === "put") {
        const { key, value, version } = u.entry;
        write.putEntry(key, version, value);
        if (!present.get(key)) count++;
        present.set(key, true);
        filter.add(key);
      } else {
        write.del(dataKey(u.key));
        if (present.get(u.key)) count--;
        present.set(u.key, false);
      }
    }
    return count;
  }

  /** The entry of `key`, or undefined when absent or deleted. */
  async get(key: string): Promise<KvEntry | undefined> {
    if (typeof key !== "string") throw new TypeError("key must be a string");
    if (this.#closed) throw closedError(this.directory);
    const record = await this.#fold.getRecord(dataKey(key));
    if (record === undefined) return undefined;
    const { version, value } = decodeValueRecord(record, key);
    return { key, value, version };
  }

  /**
   * The entries of `keys`, positionally (undefined where absent), in one LevelDB call from
   * one implicit snapshot. Duplicates and an empty list are fine.
   */
  async getMany(keys: readonly string[]): Promise<Array<KvEntry | undefined>> {
    if (!Array.isArray(keys) || keys.some((k) => typeof k !== "string")) {
      throw new TypeError("keys must be an array of strings");
    }
    if (this.#closed) throw closedError(this.directory);
    const records = await this.#fold.getRecords(keys.map((k) => dataKey(k)));
    return records.map((record, i) => {
      if (record === undefined) return undefined;
      const key = keys[i] as string;
      const { version, value } = decodeValueRecord(record, key);
      return { key, value, version };
    });
  }

  /**
   * Entries whose key starts with `prefix` (byte prefix of the UTF-8 key), in ascending byte
   * order, streamed from a LevelDB iterator (its implicit snapshot): memory stays bounded
   * whatever the fold size. Breaking the loop closes the iterator.
   */
  range(prefix: string): AsyncIterable<KvEntry> {
    if (typeof prefix !== "string") throw new TypeError("prefix must be a string");
    const fold = this.#fold;
    const store = this;
    return {
      async *[Symbol.asyncIterator]() {
        if (store.#closed) throw closedError(store.directory);
        // Bounds in root-key space: the data prefix keeps them inside the data sublevel, and
        // since DATA_PREFIX does not end in 0xff an upper bound always exists.
        const gte = dataKey(prefix);
        const lt = prefixUpperBound(gte);
        for await (const chunk of fold.rawRecords({ gte, ...(lt ? { lt } : {}), chunk: RANGE_CHUNK })) {
          for (const [k, v] of chunk) {
            const key = k.toString("utf8", DATA_PREFIX.length);
            const { version, value } = decodeValueRecord(v, key);
            yield { key, value, version };
          }
        }
      },
    };
  }

  /** The number of entries, O(1): kept in the meta sublevel by every apply batch. */
  async count(): Promise<number> {
    if (this.#closed) throw closedError(this.directory);
    return this.#count;
  }

  /** Entry count, cursor, approximate disk bytes and format generation. */
  async stats(): Promise<LevelStoreStats> {
    if (this.#closed) throw closedError(this.directory);
    return {
      entries: this.#count,
      cursor: this.#cursor,
      approximateBytes: await this.#fold.approximateSize(),
      formatGeneration: FORMAT_GENERATION,
      directory: this.directory,
    };
  }

  /**
   * A full manual compaction (LevelDB `compactRange` over the whole fold): smaller files and
   * steadier read latency after a bulk hydration. Optional; state is unchanged.
   */
  async settle(): Promise<void> {
    if (this.#closed) throw closedError(this.directory);
    // Not serialised with applies (a compaction may take long); close() waits for it.
    const run = this.#fold.compact();
    this.#background.add(run);
    try {
      await run;
    } finally {
      this.#background.delete(run);
    }
  }

  /**
   * Writes a verified artifact of the fold at exactly {@link cursor} to `destDir` (absent or
   * empty), as a file checkpoint of the live LevelDB: the immutable table files are
   * hard-linked into the stage's `data/` (copied where a link is impossible), `CURRENT`, the
   * MANIFEST and the write-ahead log are byte-copied, and a background compaction that moves
   * the live file set meanwhile makes the checkpoint start over. Applies issued meanwhile
   * wait; reads go on. The copy is re-opened and its cursor and entry count compared with
   * the live store's, then sealed (hashes, manifest last) and renamed into place in one
   * step. On failure nothing appears at `destDir`.
   */
  async exportTo(destDir: string, opts: ExportOptions = {}): Promise<ExportManifest> {
    if (typeof destDir !== "string" || destDir.length === 0) throw new TypeError("destDir must be a non-empty string");
    checkWaitMs(opts.quiesceMs, "quiesceMs");
    if (this.#closed) throw closedError(this.directory);
    const scope = resolveExportScope(this.#scope, opts.scope);
    // Quiesce before taking the turn: applies go on while LevelDB compacts.
    if ((opts.quiesceMs ?? 0) > 0) {
      await this.quiesce({ timeoutMs: opts.quiesceMs, ...(opts.signal !== undefined ? { signal: opts.signal } : {}) });
    }
    if (!sameScope(scope, this.#scope)) return this.#exclusive(() => this.#exportScopedNow(destDir, scope ?? [], opts));
    return this.#exclusive(() => this.#exportNow(destDir, opts));
  }

  /**
   * Flushes LevelDB's memtable into a table, then waits until no compaction is due — level 0
   * below its compaction trigger and every level within its target size, LevelDB's own rule
   * — polling the live file set every {@link QUIESCE_POLL_MS} ms, for at most `timeoutMs`.
   * Applies and reads go on meanwhile. A fold just loaded in bulk carries a backlog of
   * compactions and a full memtable; an artifact exported from it hands both to every node
   * that imports it, whose LevelDB then replays the log and compacts while the node catches
   * up. Exports quiesce first when asked ({@link ExportOptions.quiesceMs};
   * `AppliedWatch.requestExport` does by default).
   *
   * @returns true once quiet; false when `timeoutMs` passed first or the store closed
   * @throws SlipstreamError `ABORTED` when `signal` aborts
   */
  async quiesce(opts: QuiesceOptions = {}): Promise<boolean> {
    checkWaitMs(opts.timeoutMs, "timeoutMs");
    const deadline = performance.now() + (opts.timeoutMs ?? DEFAULT_QUIESCE_MS);
    throwIfAborted(opts.signal, "quiesce");
    if (this.#closed) return false;
    // Not serialised with applies; close() waits for it. LevelDB runs it after a compaction in
    // progress, so it is waited for only until the deadline.
    let flush: { done: boolean; error?: unknown } = { done: false };
    const flushing = this.#fold.flushMemtable().then(
      () => {
        flush = { done: true };
      },
      (error: unknown) => {
        flush = { done: true, error };
      },
    );
    this.#background.add(flushing);
    void flushing.finally(() => this.#background.delete(flushing));
    for (;;) {
      throwIfAborted(opts.signal, "quiesce");
      if (flush.error !== undefined) throw flush.error;
      if (this.#closed) return false;
      if (flush.done && !this.#fold.compactionBacklog()) return true;
      const left = deadline - performance.now();
      if (left <= 0) {
        this.#logger.debug("LevelDB fold still has compactions queued", { dir: this.directory });
        return false;
      }
      const nap = sleep(Math.min(QUIESCE_POLL_MS, left), opts.signal);
      if (flush.done) {
        await nap;
      } else {
        // The flush may win the race; an abort after that must not reject the nap unheard.
        nap.catch(() => {});
        await Promise.race([nap, flushing]);
      }
    }
  }

  /**
   * A partial artifact: a checkpoint would ship every table, so the entries of `scope` are
   * copied into a fresh fold in the stage instead (through the fold's write path), which
   * records the scope; re-opened and checked (cursor, count, scope), then sealed.
   */
  async #exportScopedNow(destDir: string, scope: readonly string[], opts: ExportOptions): Promise<ExportManifest> {
    if (this.#closed) throw closedError(this.directory);
    const cursor = this.#cursor;
    this.#exporting = true;
    try {
      let written = -1;
      const manifest = await exportArtifact(destDir, {
        backend: BACKEND_ID,
        backendVersion: ARTIFACT_VERSION,
        cursor,
        scope,
        ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
        ...(opts.onProgress !== undefined ? { onProgress: opts.onProgress } : {}),
        ...(opts.exporter !== undefined ? { exporter: opts.exporter } : {}),
        writePayload: async (dataDir) => {
          written = await writeScopedFold(this.#fold, dataDir, scope, cursor, {
            signal: opts.signal,
            onBytes: (bytesDone) => opts.onProgress?.({ phase: "export", bytesDone }),
          });
          await this.#verifyCopy(dataDir, cursor, written, scope);
        },
        verifyStaged: async (_stageDir, m) => {
          if (!m.cursor.equals(cursor)) throw cursorMismatch(m.cursor, m);
        },
      });
      this.#logger.info("exported a scoped LevelDB fold", {
        dir: destDir,
        cursor: cursor.toHex(),
        scope,
        entries: written,
      });
      return manifest;
    } finally {
      this.#exporting = false;
    }
  }

  /**
   * Re-opens an exported copy (it replays the copied log and checks that every table its
   * MANIFEST names is present) and compares cursor, count and scope with what was exported,
   * then removes the runtime files opening wrote. Opening a LevelDB writes to its directory,
   * so this runs before sealing: the seal hashes the files as they will be shipped.
   */
  async #verifyCopy(dataDir: string, cursor: WatchCursor, count: number, scope: FoldScope): Promise<void> {
    let found: FoldDb;
    try {
      found = await FoldDb.open(dataDir, "inspect");
    } catch (err) {
      throw new SlipstreamError("BACKEND", `export verification failed: the copy does not open as a fold`, {
        cause: err,
      });
    }
    try {
      if (
        !found.initialCursor.equals(cursor) ||
        found.initialCount !== count ||
        !sameScope(found.initialScope, scope)
      ) {
        throw new SlipstreamError(
          "BACKEND",
          `export verification failed: the copy has cursor ${found.initialCursor.toHex() || "none"}, entry count record ${found.initialCount} and scope ${describeScope(found.initialScope)}; expected cursor ${cursor.toHex() || "none"}, ${count} entries and scope ${describeScope(scope)}`,
        );
      }
    } finally {
      await found.close();
    }
    for (const f of RUNTIME_FILES) await rm(join(dataDir, f), { force: true });
  }

  async #exportNow(destDir: string, opts: ExportOptions): Promise<ExportManifest> {
    if (this.#closed) throw closedError(this.directory);
    // Exactly one cursor: applies are held off (#exclusive) until the checkpoint is taken.
    const cursor = this.#cursor;
    const count = this.#count;
    const linked = new Set<string>();
    this.#exporting = true;
    try {
      const manifest = await exportArtifact(destDir, {
        backend: BACKEND_ID,
        backendVersion: ARTIFACT_VERSION,
        cursor,
        scope: this.#scope,
        ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
        ...(opts.onProgress !== undefined ? { onProgress: opts.onProgress } : {}),
        ...(opts.exporter !== undefined ? { exporter: opts.exporter } : {}),
        hashFile: this.#digests.hash,
        // Linked tables: LevelDB fsynced each when it wrote it; seal fsyncs their directory.
        durable: (path) => linked.has(path),
        writePayload: async (dataDir) => {
          for (const name of await this.#writeCheckpoint(dataDir, cursor, count, opts)) linked.add(name);
        },
        verifyStaged: async (_stageDir, m) => {
          if (!m.cursor.equals(cursor)) throw cursorMismatch(m.cursor, m);
          if (!m.files.some((f) => f.path === "data/CURRENT")) {
            throw new SlipstreamError("BACKEND", "exported LevelDB copy has no CURRENT file");
          }
        },
      });
      this.#digests.settle(true);
      this.#logger.info("exported LevelDB fold", { dir: destDir, cursor: cursor.toHex(), entries: count });
      return manifest;
    } catch (err) {
      this.#digests.settle(false);
      throw err;
    } finally {
      this.#exporting = false;
    }
  }

  /** Takes and checks the checkpoint; returns the names of the table files it hard-linked. */
  async #writeCheckpoint(dataDir: string, cursor: WatchCursor, count: number, opts: ExportOptions): Promise<string[]> {
    const { linkedFiles, ...taken } = await checkpointLevelDb(this.#fold, dataDir, {
      signal: opts.signal,
      onBytes: (bytesDone) => opts.onProgress?.({ phase: "export", bytesDone }),
    });
    this.#logger.debug("took a LevelDB checkpoint", { dir: this.directory, ...taken });
    await this.#verifyCopy(dataDir, cursor, count, this.#scope);
    return linkedFiles;
  }

  /** True while an export runs (applies wait for it). */
  get exporting(): boolean {
    return this.#exporting;
  }

  /** Closes the database after queued applies and exports finish. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) {
      await this.#tail;
      return;
    }
    this.#closed = true;
    await this.#exclusive(async () => {
      await Promise.allSettled([...this.#background]);
      await this.#fold.close();
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn);
    this.#tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }
}

function checkOptions(opts: LevelSnapshotStoreOptions): void {
  if (typeof opts !== "object" || opts === null) throw new TypeError("options must be an object");
  if (opts.sync !== undefined && typeof opts.sync !== "boolean") throw new TypeError("sync must be a boolean");
  if (opts.compression !== undefined && typeof opts.compression !== "boolean") {
    throw new TypeError("compression must be a boolean");
  }
  for (const name of ["cacheSize", "writeBufferSize"] as const) {
    const v = opts[name];
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) {
      throw new TypeError(`${name} must be a non-negative integer number of bytes`);
    }
  }
}
