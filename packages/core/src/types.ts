import type { WatchCursor } from "./cursor.js";
import type { VersionToken } from "./version.js";

/** One live key with its value and per-key version. */
export interface KvEntry {
  readonly key: string;
  readonly value: Uint8Array;
  readonly version: VersionToken;
}

/** One change of the bucket. A purge is folded like a delete everywhere. */
export type KvUpdate =
  | { readonly type: "put"; readonly entry: KvEntry }
  | { readonly type: "delete"; readonly key: string; readonly version: VersionToken }
  | { readonly type: "purge"; readonly key: string; readonly version: VersionToken };

/** The key of any update. */
export function updateKey(update: KvUpdate): string {
  return update.type === "put" ? update.entry.key : update.key;
}

/** The version of any update. */
export function updateVersion(update: KvUpdate): VersionToken {
  return update.type === "put" ? update.entry.version : update.version;
}

/**
 * What a watch covers. NATS prefixes are subject-token based: `"node."` covers `node.a` and
 * `node.a.b` but not `nodes.x`. Keep prefixes dot-terminated so that the byte prefix a
 * SnapshotStore ranges over and the subject filter agree. An empty `prefixes` list watches
 * nothing.
 */
export type WatchScope =
  | { readonly kind: "all" }
  | { readonly kind: "prefix"; readonly prefix: string }
  | { readonly kind: "prefixes"; readonly prefixes: readonly string[] };

/** The byte prefixes a scope covers in a fold (`all` → `[""]`). */
export function scopePrefixes(scope: WatchScope): string[] {
  switch (scope.kind) {
    case "all":
      return [""];
    case "prefix":
      return [scope.prefix];
    case "prefixes":
      return [...scope.prefixes];
  }
}

/** True when `key` lies inside `scope` (byte-prefix semantics). */
export function scopeContains(scope: WatchScope, key: string): boolean {
  return scopePrefixes(scope).some((p) => key.startsWith(p));
}

/** Options every network or long-running call accepts. */
export interface OpOptions {
  /** Aborts the operation with an `ABORTED` error. */
  signal?: AbortSignal;
}

/** Reads a KV bucket. */
export interface KvReader {
  /** The live value of `key`; deleted, purged, absent and empty-value (tombstone) keys → undefined. */
  get(key: string, opts?: OpOptions): Promise<KvEntry | undefined>;
  /**
   * The raw last put of `key`, including empty-value CAS tombstones with their version;
   * delete/purge markers and absent keys → undefined.
   */
  entry(key: string, opts?: OpOptions): Promise<KvEntry | undefined>;
  /** The live keys under `prefix` (all when omitted), streamed. */
  keys(prefix?: string, opts?: OpOptions): AsyncIterable<string>;
  /** The live entries under `prefix` (all when omitted), streamed. */
  scan(prefix?: string, opts?: OpOptions): AsyncIterable<KvEntry>;
}

/** Writes a KV bucket. */
export interface KvWriter {
  /** Unconditional write; returns the new version. */
  put(key: string, value: Uint8Array, opts?: OpOptions): Promise<VersionToken>;
  /** Write only if the key is absent or deleted/purged; else `ALREADY_EXISTS`. */
  create(key: string, value: Uint8Array, opts?: OpOptions): Promise<VersionToken>;
  /** Write only if the key's current version is `version`; else `REVISION_MISMATCH`. */
  update(key: string, value: Uint8Array, version: VersionToken, opts?: OpOptions): Promise<VersionToken>;
  /** Writes a delete marker. */
  delete(key: string, opts?: OpOptions): Promise<void>;
  /**
   * Writes an empty-value tombstone only if the key's current version is `version`
   * (`REVISION_MISMATCH` otherwise, also for a missing key); returns the tombstone's version.
   */
  deleteWithVersion(key: string, version: VersionToken, opts?: OpOptions): Promise<VersionToken>;
  /** Removes the key and its history. */
  purge(key: string, opts?: OpOptions): Promise<void>;
}

/** Options of {@link KvWatcher.watch}. */
export interface WatchOptions {
  /** Resume after this cursor (delta only). None/absent → state-sync: current values, then live. */
  from?: WatchCursor;
  /** Ends the iteration and releases server resources. */
  signal?: AbortSignal;
  /**
   * For a state-sync (no `from`): called once its re-list — the current value of every key
   * in scope — has been handed over in full: every update of the re-list was yielded before
   * the call, and no live update after it. Optional for implementations (the NATS watcher
   * calls it); `watchApplied` uses it to finish a resync (keys that vanished between its
   * listing and the re-list).
   */
  onRelisted?: () => void;
}

/** Streams the changes of a bucket. */
export interface KvWatcher {
  /**
   * An async iterable of updates in revision order. Raises `CURSOR_EXPIRED` when `from` lies
   * before what the server still retains; breaking the loop or aborting releases the watch.
   */
  watch(scope: WatchScope, opts?: WatchOptions): AsyncIterable<KvUpdate>;
  /**
   * Optional: the same updates as {@link KvWatcher.watch}, in the same order and with the
   * same errors, handed over as arrays of whatever arrived together (never empty). A
   * consumer that handles many updates per step (such as `watchApplied`) saves a promise
   * per update. Implementations that lack it are read one update at a time.
   */
  watchBatches?(scope: WatchScope, opts?: WatchOptions): AsyncIterable<readonly KvUpdate[]>;
}

/** What a KV implementation can do. */
export interface KvCapabilities {
  cas: boolean;
  streamingWatch: boolean;
  prefixWatch: boolean;
  /** Several prefixes on one server-side consumer. */
  multiFilterWatch: boolean;
  purge: boolean;
  ttl: boolean;
  globalOrdering: boolean;
}

/** A named bucket vending its roles. */
export interface KvStore {
  readonly name: string;
  readonly reader: KvReader;
  readonly writer: KvWriter;
  readonly watcher: KvWatcher;
}

/** One payload file of an artifact. */
export interface ArtifactFile {
  /** Relative path under `data/`, forward slashes. */
  readonly path: string;
  readonly size: number;
  /** 64 lowercase hex digits. */
  readonly sha256: string;
  /**
   * Optional (written by a transport): SHA-256 of each chunk of this file as stored in the
   * remote payload (ciphertext and tag when encrypted), `ExportManifest.chunkSize` plaintext
   * bytes per chunk, so a downloader verifies every range before it uses it.
   */
  readonly chunks?: readonly string[];
}

/** How an artifact's remote payload is encrypted (AES-256-GCM per chunk); the manifest stays plain. */
export interface ArtifactEncryption {
  readonly algorithm: "aes-256-gcm";
  /** Which fleet key (or KMS key) wrapped the data key. */
  readonly keyId: string;
  /** The per-artifact data key, wrapped; base64. */
  readonly wrappedKey: string;
  /** Per-artifact random nonce base (12 bytes, hex); a chunk's nonce is this XOR its index. */
  readonly nonceSalt: string;
}

/** An Ed25519 signature over the canonical manifest without this field. */
export interface ArtifactSignature {
  readonly algorithm: "ed25519";
  /** First 16 hex digits of SHA-256 of the raw 32-byte public key. */
  readonly keyId: string;
  /** The signature, base64. */
  readonly value: string;
}

/** The manifest of an exported fold (see `MANIFEST.json`). */
export interface ExportManifest {
  readonly schemaVersion: 1;
  readonly backend: string;
  readonly backendVersion: string;
  readonly cursor: WatchCursor;
  /**
   * The key prefixes the artifact holds (sorted, none a prefix of another); absent = the
   * whole bucket. An import for a node whose scope this does not cover is refused with
   * `SCOPE_NOT_COVERED`.
   */
  readonly scope?: readonly string[];
  readonly createdAt: Date;
  /**
   * Who exported the artifact (free-form, e.g. `host:pid`): at most 256 printable
   * characters. Absent when the exporter set none; then the manifest has no such field.
   */
  readonly exporter?: string;
  readonly files: readonly ArtifactFile[];
  /** Optional: plaintext bytes per chunk of `files[].chunks` (present exactly when they are). */
  readonly chunkSize?: number;
  /** Optional: the remote payload is encrypted (see {@link ArtifactEncryption}). */
  readonly encryption?: ArtifactEncryption;
  /** Optional: the exporter's signature (see {@link ArtifactSignature}). */
  readonly signature?: ArtifactSignature;
}

/** Progress of a long transfer. */
export interface Progress {
  /** What is happening: "export", "upload", "download", "import", … */
  readonly phase: string;
  readonly bytesDone: number;
  /** Undefined when unknown. */
  readonly bytesTotal?: number;
}

/** Receives {@link Progress} reports; must not throw. */
export type ProgressFn = (progress: Progress) => void;

/** Options of {@link SnapshotStore.exportTo}. */
export interface ExportOptions extends OpOptions {
  onProgress?: ProgressFn;
  /**
   * Recorded as the manifest's `exporter`: who exported (free-form, at most 256 printable
   * characters; else `INVALID_ARGUMENT`). @defaultValue none (the manifest has no exporter)
   */
  exporter?: string;
  /**
   * Export only the keys within this scope (a partial artifact; its manifest records the
   * scope). It must lie within what the fold holds (`SCOPE_NOT_COVERED` otherwise).
   * @defaultValue everything the fold holds
   */
  scope?: WatchScope;
  /**
   * Before exporting, wait up to this many milliseconds for the store's background
   * maintenance to finish ({@link SnapshotStore.quiesce}: LevelDB's queued compactions), so
   * the artifact ships a settled file set and every node that imports it starts without the
   * exporter's compaction backlog. 0 exports at once. Stores without `quiesce` ignore it.
   * A store's `exportTo` waits before it pauses applies; `AppliedWatch.requestExport` waits
   * before it pauses the watch, and defaults to 10 000.
   * @defaultValue 0
   */
  quiesceMs?: number;
}

/** Options of {@link SnapshotStore.quiesce}. */
export interface QuiesceOptions extends OpOptions {
  /** Give up waiting after this many milliseconds (resolving to false). @defaultValue 10 000 */
  timeoutMs?: number;
}

/**
 * A durable fold: key → entry plus the cursor naming what has been applied. `apply` commits
 * a batch and its cursor atomically (data and cursor together).
 */
export interface SnapshotStore {
  /** Backend id written into artifacts, e.g. "leveldb", "memory". */
  readonly backend: string;
  /** Everything at or below this cursor has been applied and committed. */
  readonly cursor: WatchCursor;
  /**
   * The key prefixes this fold holds, when it was imported from an artifact for a narrower
   * scope (see `FoldScope`); undefined = the whole bucket. Optional for implementations:
   * a store without it holds (and exports) whatever was applied to it.
   */
  readonly scope?: readonly string[] | undefined;
  /**
   * Applies puts (upsert, empty values kept) and deletes/purges (remove) and sets the cursor,
   * all or nothing. An empty batch still advances and persists the cursor.
   */
  apply(batch: readonly KvUpdate[], cursor: WatchCursor): Promise<void>;
  get(key: string): Promise<KvEntry | undefined>;
  /** Entries whose key starts with `prefix` (byte prefix), in ascending byte order. */
  range(prefix: string): AsyncIterable<KvEntry>;
  /**
   * Writes a verified artifact of the fold at exactly {@link SnapshotStore.cursor} to
   * `destDir` (absent or empty), atomically. The caller keeps `apply` paused meanwhile.
   */
  exportTo(destDir: string, opts?: ExportOptions): Promise<ExportManifest>;
  /**
   * Optional: resolves once the store has no background maintenance queued (for LevelDB, no
   * compaction due), true, or false once `timeoutMs` passed first. Applies may go on
   * meanwhile. Exports call it when asked to ({@link ExportOptions.quiesceMs}).
   */
  quiesce?(opts?: QuiesceOptions): Promise<boolean>;
  close(): Promise<void>;
}

/** Imports a verified artifact into a fresh store at `destDir` (a store's static `import`). */
export type SnapshotImporter = (artifactDir: string, destDir: string) => Promise<SnapshotStore>;
