/**
 * An in-RAM SnapshotStore: the fold lives in a sorted map, nothing is written anywhere
 * except an artifact on export (and the verified copy an import leaves at its destination).
 * For tests and small services that rebuild their fold from NATS or an artifact at start.
 */
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { ExportManifest, ExportOptions, KvEntry, KvUpdate, SnapshotStore, WatchScope } from "@slipstream/core";
import {
  artifactInvalid,
  cursorMismatch,
  describeScope,
  expectBackend,
  exportArtifact,
  inFoldScope,
  resolveExportScope,
  resolveImportScope,
  SlipstreamError,
  sameScope,
  VersionToken,
  verifyAndStageImport,
  WatchCursor,
} from "@slipstream/core";

/** Backend id written into memory-store artifacts. */
export const MEMORY_BACKEND = "memory";
/** Format generation of the memory-store payload. */
export const MEMORY_BACKEND_VERSION = "1";
/** The single payload file of a memory-store artifact, under `data/`. */
export const MEMORY_PAYLOAD_FILE = "fold.jsonl";

const FORMAT = "slipstream-memory-fold";
/** Up to this many keys the sorted index is maintained on every insert/remove. */
const INCREMENTAL_SORT_LIMIT = 50_000;

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

interface Slot {
  readonly keyBytes: Buffer;
  entry: KvEntry;
}

/**
 * The state a {@link MemorySnapshotStore} folds into. Several store instances opened over the
 * same backing one after the other behave like reopening a durable store (tests simulate a
 * restart this way). Treat it as opaque.
 */
export class MemoryBacking {
  /** key → slot */
  readonly map = new Map<string, Slot>();
  /**
   * Slots sorted by UTF-8 key bytes (byte order, like LevelDB), or undefined when it must be
   * rebuilt. Small folds keep it up to date on every insert; large ones rebuild it lazily at
   * the next range, so bulk applies stay O(1) per update.
   */
  #sorted: Slot[] | undefined = [];
  cursor: WatchCursor = WatchCursor.none();
  /** The key prefixes the fold holds (set by a scoped import); undefined = the whole bucket. */
  scope: readonly string[] | undefined;
  /** The store instance attached to this backing, if any (one at a time). */
  owner: MemorySnapshotStore | undefined;

  /** Slots in key byte order. */
  sorted(): Slot[] {
    if (!this.#sorted) this.#sorted = [...this.map.values()].sort((a, b) => compareBytes(a.keyBytes, b.keyBytes));
    return this.#sorted;
  }

  /** Index in `sorted` of the first slot whose key bytes are ≥ `bytes`. */
  static lowerBound(sorted: readonly Slot[], bytes: Uint8Array): number {
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareBytes((sorted[mid] as Slot).keyBytes, bytes) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  upsert(entry: KvEntry): void {
    const slot = this.map.get(entry.key);
    if (slot) {
      slot.entry = entry;
      return;
    }
    const keyBytes = Buffer.from(entry.key, "utf8");
    const fresh: Slot = { keyBytes, entry };
    this.map.set(entry.key, fresh);
    const sorted = this.#sorted;
    if (sorted && sorted.length < INCREMENTAL_SORT_LIMIT) {
      sorted.splice(MemoryBacking.lowerBound(sorted, keyBytes), 0, fresh);
    } else {
      this.#sorted = undefined;
    }
  }

  remove(key: string): void {
    const slot = this.map.get(key);
    if (!slot) return;
    this.map.delete(key);
    const sorted = this.#sorted;
    if (sorted && sorted.length < INCREMENTAL_SORT_LIMIT) {
      // Distinct keys can share bytes (lone surrogates encode as U+FFFD): find this very slot.
      let i = MemoryBacking.lowerBound(sorted, slot.keyBytes);
      while (i < sorted.length && sorted[i] !== slot) i++;
      sorted.splice(i, 1);
    } else {
      this.#sorted = undefined;
    }
  }
}

function copyEntry(e: KvEntry): KvEntry {
  return { key: e.key, value: Uint8Array.from(e.value), version: e.version };
}

function checkUpdate(u: KvUpdate, i: number): void {
  if (typeof u !== "object" || u === null) throw new TypeError(`batch[${i}] must be a KvUpdate`);
  if (u.type === "put") {
    const e = u.entry;
    if (typeof e?.key !== "string") throw new TypeError(`batch[${i}].entry.key must be a string`);
    if (!(e.value instanceof Uint8Array)) throw new TypeError(`batch[${i}].entry.value must be a Uint8Array`);
    if (!(e.version instanceof VersionToken)) throw new TypeError(`batch[${i}].entry.version must be a VersionToken`);
  } else if (u.type === "delete" || u.type === "purge") {
    if (typeof u.key !== "string") throw new TypeError(`batch[${i}].key must be a string`);
  } else {
    throw new TypeError(`batch[${i}] has unknown type ${JSON.stringify((u as { type: unknown }).type)}`);
  }
}

/** Header line of `fold.jsonl`. */
interface PayloadHeader {
  format: typeof FORMAT;
  version: 1;
  cursor: string;
  entries: number;
  /** The prefixes a partial fold holds; absent = the whole bucket. */
  scope?: string[];
}

/** Serialises a fold: a header line, then one `{k, v (base64), ver (hex)}` line per entry in key byte order. */
function encodePayload(entries: readonly KvEntry[], cursor: WatchCursor, scope: readonly string[] | undefined): string {
  const header: PayloadHeader = {
    format: FORMAT,
    version: 1,
    cursor: cursor.toHex(),
    entries: entries.length,
    ...(scope !== undefined ? { scope: [...scope] } : {}),
  };
  const lines = [JSON.stringify(header)];
  for (const e of entries) {
    lines.push(JSON.stringify({ k: e.key, v: Buffer.from(e.value).toString("base64"), ver: e.version.toHex() }));
  }
  return `${lines.join("\n")}\n`;
}

/** Parses `fold.jsonl` strictly; any deviation → `SNAPSHOT_INVALID_FORMAT`. */
function decodePayload(text: string): {
  cursor: WatchCursor;
  scope: readonly string[] | undefined;
  entries: KvEntry[];
} {
  const bad = (why: string) => new SlipstreamError("SNAPSHOT_INVALID_FORMAT", `memory fold payload: ${why}`);
  const lines = text.split("\n");
  if (lines.at(-1) !== "") throw bad("missing trailing newline");
  lines.pop();
  let header: PayloadHeader;
  try {
    header = JSON.parse(lines[0] ?? "") as PayloadHeader;
  } catch {
    throw bad("unreadable header line");
  }
  if (header?.format !== FORMAT) throw bad(`format is ${JSON.stringify(header?.format)}, expected ${FORMAT}`);
  if (header.version !== 1) throw bad(`unsupported payload version ${JSON.stringify(header.version)}`);
  let cursor: WatchCursor;
  try {
    cursor = WatchCursor.fromHex(String(header.cursor));
  } catch (err) {
    throw bad(`cursor: ${(err as Error).message}`);
  }
  const scope = header.scope;
  if (scope !== undefined && (!Array.isArray(scope) || scope.some((p) => typeof p !== "string"))) {
    throw bad("scope must be an array of strings");
  }
  if (header.entries !== lines.length - 1)
    throw bad(`header declares ${header.entries} entries, found ${lines.length - 1}`);
  const entries: KvEntry[] = [];
  let prev: Buffer | undefined;
  for (let i = 1; i < lines.length; i++) {
    let rec: { k?: unknown; v?: unknown; ver?: unknown };
    try {
      rec = JSON.parse(lines[i] as string) as typeof rec;
    } catch {
      throw bad(`line ${i + 1} is not JSON`);
    }
    if (typeof rec.k !== "string" || typeof rec.v !== "string" || typeof rec.ver !== "string") {
      throw bad(`line ${i + 1} must hold string fields k, v, ver`);
    }
    const keyBytes = Buffer.from(rec.k, "utf8");
    if (prev && compareBytes(prev, keyBytes) >= 0) throw bad(`line ${i + 1}: keys are not strictly ascending`);
    prev = keyBytes;
    let version: VersionToken;
    try {
      version = VersionToken.fromHex(rec.ver);
    } catch (err) {
      throw bad(`line ${i + 1}: version: ${(err as Error).message}`);
    }
    entries.push({ key: rec.k, value: new Uint8Array(Buffer.from(rec.v, "base64")), version });
  }
  return { cursor, scope, entries };
}

async function loadPayloadFile(path: string): Promise<ReturnType<typeof decodePayload>> {
  return decodePayload(await readFile(path, "utf8"));
}

/** Options of {@link MemorySnapshotStore}. */
export interface MemorySnapshotStoreOptions {
  /**
   * Fold into this shared state instead of a fresh one. Closing the store and constructing
   * a new one over the same backing simulates a reopen of a durable store.
   */
  backing?: MemoryBacking;
}

/**
 * A SnapshotStore held in RAM. `apply` is atomic (validated first, then applied without an
 * await in between); `range` is in ascending UTF-8 byte order over a byte prefix; artifacts
 * carry one payload file `data/fold.jsonl` (backend "memory", backendVersion "1").
 *
 * @example
 * ```ts
 * const store = new MemorySnapshotStore();
 * await store.apply([{ type: "put", entry }], WatchCursor.fromRevision(1n));
 * ```
 */
export class MemorySnapshotStore implements SnapshotStore {
  readonly backend = MEMORY_BACKEND;
  readonly #backing: MemoryBacking;
  #closed = false;

  constructor(opts: MemorySnapshotStoreOptions = {}) {
    const backing = opts.backing ?? new MemoryBacking();
    if (!(backing instanceof MemoryBacking)) throw new TypeError("backing must be a MemoryBacking");
    if (backing.owner && !backing.owner.#closed) {
      throw new SlipstreamError("BACKEND", "this MemoryBacking is already open in another MemorySnapshotStore");
    }
    backing.owner = this;
    this.#backing = backing;
  }

  /** The shared state this store folds into (pass it to a new store to "reopen"). */
  get backing(): MemoryBacking {
    return this.#backing;
  }

  get cursor(): WatchCursor {
    return this.#backing.cursor;
  }

  /** The key prefixes this fold holds (see {@link SnapshotStore.scope}); undefined = the whole bucket. */
  get scope(): readonly string[] | undefined {
    return this.#backing.scope;
  }

  /** Number of entries held. */
  get size(): number {
    return this.#backing.map.size;
  }

  #open(): MemoryBacking {
    if (this.#closed) throw new SlipstreamError("BACKEND", "memory snapshot store is closed");
    return this.#backing;
  }

  async apply(batch: readonly KvUpdate[], cursor: WatchCursor): Promise<void> {
    const b = this.#open();
    if (!Array.isArray(batch)) throw new TypeError("batch must be an array of KvUpdate");
    if (!(cursor instanceof WatchCursor)) throw new TypeError("cursor must be a WatchCursor");
    batch.forEach(checkUpdate);
    // Data and cursor together: everything below runs without an await, so no reader and
    // no export ever observes half a batch.
    for (const u of batch) {
      if (u.type === "put") b.upsert(copyEntry(u.entry));
      else b.remove(u.key);
    }
    b.cursor = cursor;
  }

  async get(key: string): Promise<KvEntry | undefined> {
    const slot = this.#open().map.get(key);
    return slot ? copyEntry(slot.entry) : undefined;
  }

  async *range(prefix: string): AsyncIterable<KvEntry> {
    if (typeof prefix !== "string") throw new TypeError("prefix must be a string");
    const b = this.#open();
    const p = Buffer.from(prefix, "utf8");
    // Snapshot the matching slots first: an apply during the iteration must not shift it.
    const out: KvEntry[] = [];
    const sorted = b.sorted();
    for (let i = MemoryBacking.lowerBound(sorted, p); i < sorted.length; i++) {
      const slot = sorted[i] as Slot;
      if (slot.keyBytes.length < p.length || compareBytes(slot.keyBytes.subarray(0, p.length), p) !== 0) break;
      out.push(slot.entry);
    }
    for (const e of out) yield copyEntry(e);
  }

  /**
   * Writes `data/fold.jsonl` at exactly the current cursor, verified, atomically renamed
   * into place. With `opts.scope`, only the keys of that scope (which must lie within
   * {@link scope}, else `SCOPE_NOT_COVERED`); the manifest records the artifact's scope.
   */
  async exportTo(destDir: string, opts: ExportOptions = {}): Promise<ExportManifest> {
    const b = this.#open();
    const scope = resolveExportScope(b.scope, opts.scope);
    // Taken synchronously, so the artifact is the fold at exactly this cursor.
    const entries = b
      .sorted()
      .map((s) => s.entry)
      .filter((e) => inFoldScope(scope, e.key));
    const cursor = b.cursor;
    return exportArtifact(destDir, {
      backend: MEMORY_BACKEND,
      backendVersion: MEMORY_BACKEND_VERSION,
      cursor,
      scope,
      signal: opts.signal,
      onProgress: opts.onProgress,
      exporter: opts.exporter,
      writePayload: async (dataDir) => {
        await writeFile(join(dataDir, MEMORY_PAYLOAD_FILE), encodePayload(entries, cursor, scope), { flag: "wx" });
      },
      verifyStaged: async (stageDir, manifest) => {
        const staged = await loadPayloadFile(join(stageDir, "data", MEMORY_PAYLOAD_FILE));
        if (!staged.cursor.equals(manifest.cursor)) throw cursorMismatch(staged.cursor, manifest);
        if (staged.entries.length !== entries.length) {
          throw new SlipstreamError(
            "BACKEND",
            `exported fold holds ${staged.entries.length} entries; the store holds ${entries.length}`,
          );
        }
      },
    });
  }

  /**
   * Imports a verified memory-store artifact. The verified payload copy is left at `destDir`
   * (so the destination is claimed exactly like a durable store's would be) and loaded into
   * a fresh store; later applies stay in RAM. `backing` lets a test keep the imported state
   * for a later "reopen". `scope` is the importing node's: the artifact's scope must cover
   * it (`SCOPE_NOT_COVERED` otherwise, nothing written), and only its keys are kept.
   */
  static async import(
    artifactDir: string,
    destDir: string,
    opts: { backing?: MemoryBacking; signal?: AbortSignal; scope?: WatchScope } = {},
  ): Promise<MemorySnapshotStore> {
    const checkVersion = expectBackend(MEMORY_BACKEND, [MEMORY_BACKEND_VERSION]);
    const keep = resolveImportScope(opts.scope);
    await verifyAndStageImport(artifactDir, destDir, {
      signal: opts.signal,
      ...(opts.scope !== undefined ? { scope: opts.scope } : {}),
      checkBackend: (m) => {
        checkVersion(m);
        const paths = m.files.map((f) => f.path);
        if (paths.length !== 1 || paths[0] !== `data/${MEMORY_PAYLOAD_FILE}`) {
          throw artifactInvalid(
            `a memory-store artifact holds exactly data/${MEMORY_PAYLOAD_FILE}; the manifest lists ${JSON.stringify(paths)}`,
          );
        }
      },
      verifyStaged: async (stageDir, manifest) => {
        let staged: { cursor: WatchCursor; scope: readonly string[] | undefined };
        try {
          staged = await loadPayloadFile(join(stageDir, MEMORY_PAYLOAD_FILE));
        } catch (err) {
          throw artifactInvalid(`staged memory fold does not load: ${(err as Error).message}`, err);
        }
        if (!staged.cursor.equals(manifest.cursor)) throw cursorMismatch(staged.cursor, manifest);
        if (!sameScope(staged.scope, manifest.scope)) {
          throw artifactInvalid(
            `memory fold payload records scope ${describeScope(staged.scope)}; its manifest declares ${describeScope(manifest.scope)}`,
          );
        }
      },
    });
    const { cursor, entries } = await loadPayloadFile(join(destDir, MEMORY_PAYLOAD_FILE));
    const store = new MemorySnapshotStore({ backing: opts.backing });
    // Verified as a whole above; only now are the keys outside the node's scope left out.
    await store.apply(
      entries.filter((e) => inFoldScope(keep, e.key)).map((entry) => ({ type: "put", entry })),
      cursor,
    );
    store.#backing.scope = keep;
    return store;
  }

  async close(): Promise<void> {
    this.#closed = true;
  }
}

/** `open`/`import` over directories, as the conformance suite and restart tests want them. */
export interface MemoryStoreFactory {
  /** Opens the store "in" `dir`: the same dir after `close()` reopens the same state; a wiped (removed) dir starts fresh. */
  open(dir: string): Promise<MemorySnapshotStore>;
  /** {@link MemorySnapshotStore.import}, remembering the imported state under `destDir` for later `open`s. */
  import(artifactDir: string, destDir: string, opts?: { scope?: WatchScope }): Promise<MemorySnapshotStore>;
}

/**
 * Simulates durable directories for memory stores: state is kept per resolved directory
 * path in this process, so close + `open(dir)` behaves like reopening a durable store.
 * The directory is created (empty) as a marker; removing it wipes the state.
 */
export function memoryStoreFactory(): MemoryStoreFactory {
  const backings = new Map<string, MemoryBacking>();
  return {
    async open(dir) {
      const abs = resolve(dir);
      let exists = true;
      try {
        await stat(abs);
      } catch {
        exists = false;
      }
      if (!exists) {
        backings.delete(abs);
        await mkdir(abs);
      }
      let backing = backings.get(abs);
      if (!backing) {
        backing = new MemoryBacking();
        backings.set(abs, backing);
      }
      return new MemorySnapshotStore({ backing });
    },
    async import(artifactDir, destDir, opts = {}) {
      const backing = new MemoryBacking();
      const store = await MemorySnapshotStore.import(artifactDir, destDir, {
        backing,
        ...(opts.scope !== undefined ? { scope: opts.scope } : {}),
      });
      backings.set(resolve(destDir), backing);
      return store;
    },
  };
}
