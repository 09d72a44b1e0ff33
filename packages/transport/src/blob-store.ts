/**
 * The BlobStore SPI: the small contract a transport package (filesystem, S3, Azure, …)
 * implements so that {@link ArtifactTransport} can publish artifacts through it. Keep
 * implementations thin; the protocol (pointer swap, pruning, tar format) lives above.
 */
import { artifactInvalid, SlipstreamError } from "@slipstream/core";

/** Options every BlobStore call accepts. */
export interface BlobOpOptions {
  /** Aborts the call; it rejects with `ABORTED` (or `TIMEOUT` when a transport deadline fired). */
  signal?: AbortSignal;
}

/** Options of {@link BlobStore.put}. */
export interface BlobPutOptions extends BlobOpOptions {
  /** The exact size of the body, when known (stores that need a content length use it). */
  size?: number;
  /**
   * Called whenever the store has moved bytes to the backend (e.g. a part or block was
   * accepted). A store that reads its body ahead and uploads in parallel calls it so the
   * caller's idle deadline sees progress while no new body chunk is being pulled.
   */
  onProgress?: () => void;
}

/** Options of {@link BlobStore.readSmall}. */
export interface BlobReadSmallOptions extends BlobOpOptions {
  /** The most bytes the caller accepts; a larger object is refused (see {@link objectTooLarge}). */
  maxBytes: number;
}

/** A streamed object body. */
export interface BlobBody {
  /** The object's size in bytes. */
  readonly size: number;
  /**
   * The bytes, streamed. Consume them, or end the iteration early with `return()` (a `break`
   * out of `for await`), which must release the underlying resource even before the first
   * `next()` — a bare Node Readable does not, so wrap it.
   */
  readonly body: AsyncIterable<Uint8Array>;
  /**
   * Optional: the caller is done with `chunk`, a chunk `body` yielded (has written or copied
   * it and keeps no reference), so the store may read later bytes into its memory. Chunks
   * never released are simply not reused; a caller may ignore this.
   */
  readonly release?: (chunk: Uint8Array) => void;
}

/** A small object read whole, with the version token a conditional replace compares. */
export interface SmallBlob {
  readonly bytes: Uint8Array;
  /** Opaque version of exactly these bytes (an ETag, a generation, a content hash). */
  readonly version: string;
}

/** One listed object. */
export interface BlobInfo {
  readonly key: string;
  readonly size: number;
  /** When the object was last written. */
  readonly lastModified: Date;
}

/** The condition of {@link BlobStore.conditionalPut}. */
export type PutCondition =
  /** Create-only: succeeds only if no object exists at the key. */
  | { readonly ifAbsent: true }
  /** Replace-if-version: succeeds only if the object exists and its version is this one. */
  | { readonly ifVersion: string };

/**
 * Result of a conditional put. A lost race is an expected outcome, reported as
 * `{ status: "conflict" }`, never thrown.
 */
export type ConditionalPutResult =
  | { readonly status: "written"; readonly version: string }
  | { readonly status: "conflict" };

/** What a BlobStore can do. */
export interface BlobStoreCapabilities {
  /**
   * True when {@link BlobStore.conditionalPut} is atomic against concurrent writers
   * (create-only and compare-and-swap on the version). Without it the published pointer
   * cannot be kept monotonic and {@link ArtifactTransport} refuses to publish unless the
   * caller opts into `allowNonAtomicPointer`.
   */
  readonly conditionalWrites: boolean;
  /**
   * True when {@link BlobStore.put} is done with each chunk of its body — has written or
   * copied it, and keeps no reference — before it pulls the next one. A producer may then
   * reuse a chunk's memory once the next chunk is pulled (the artifact upload reads files
   * into a few reused buffers instead of a fresh one per read). Leave it unset when `put`
   * queues chunks (as a multipart upload does).
   * @defaultValue false
   */
  readonly putReadsSequentially?: boolean;
}

/**
 * Object storage as slipstream needs it. Keys are `/`-separated paths of non-empty
 * segments (no `.`/`..`, no backslash); a store validates them and refuses others with
 * `INVALID_ARGUMENT`. Failures of the backend are `BACKEND` errors; an aborted signal gives
 * `ABORTED` (or the signal's own SlipstreamError reason, e.g. `TIMEOUT`).
 */
export interface BlobStore {
  readonly capabilities: BlobStoreCapabilities;

  /**
   * Streams `body` into an object at `key`, replacing any existing one. The object becomes
   * visible only once complete: a failed or aborted put leaves the previous object (or
   * none) in place, never a prefix of the body.
   */
  put(key: string, body: AsyncIterable<Uint8Array>, opts?: BlobPutOptions): Promise<void>;

  /** Opens `key` for streaming; `undefined` when there is no such object. */
  get(key: string, opts?: BlobOpOptions): Promise<BlobBody | undefined>;

  /**
   * Optional: reads bytes `[start, end)` of `key` whole (a ranged GET); `undefined` when there
   * is no such object. A range past the end returns the bytes that exist (possibly none).
   * Chunked downloads issue several at once; without it they read through {@link get},
   * skipping to each range (correct, but slower).
   */
  readRange?(key: string, start: number, end: number, opts?: BlobOpOptions): Promise<Uint8Array | undefined>;

  /**
   * Reads a small object whole together with its version; `undefined` when absent. An
   * object larger than `maxBytes` is refused with `ARTIFACT_INVALID` (see
   * {@link objectTooLarge}) without reading more than `maxBytes + 1` bytes.
   */
  readSmall(key: string, opts: BlobReadSmallOptions): Promise<SmallBlob | undefined>;

  /**
   * Writes `bytes` at `key` if `condition` holds, atomically against every other writer.
   * Stores whose {@link BlobStoreCapabilities.conditionalWrites} is false throw `BACKEND`.
   */
  conditionalPut(
    key: string,
    bytes: Uint8Array,
    condition: PutCondition,
    opts?: BlobOpOptions,
  ): Promise<ConditionalPutResult>;

  /** The objects whose key starts with `prefix` (a plain string prefix), in any order. */
  list(prefix: string, opts?: BlobOpOptions): AsyncIterable<BlobInfo>;

  /** Deletes `key`; deleting an absent object is not an error. */
  delete(key: string, opts?: BlobOpOptions): Promise<void>;
}

/** The error {@link BlobStore.readSmall} raises for an object above its cap. */
export function objectTooLarge(key: string, maxBytes: number, size?: number): SlipstreamError {
  const found = size === undefined ? "more" : `${size} bytes`;
  return artifactInvalid(`object ${key} exceeds ${maxBytes} bytes (found ${found})`);
}

/** The error a store without conditional writes raises from {@link BlobStore.conditionalPut}. */
export function conditionalWritesUnsupported(store: string): SlipstreamError {
  return new SlipstreamError("BACKEND", `${store} does not support conditional writes`);
}

const MAX_KEY_BYTES = 1024;

/**
 * Why `key` is not a valid blob key, or undefined. Valid: `/`-separated non-empty segments,
 * none `.` or `..`, no backslash, NUL or other control character, at most 1024 bytes.
 */
export function blobKeyProblem(key: unknown): string | undefined {
  if (typeof key !== "string") return "must be a string";
  if (key.length === 0) return "is empty";
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) return `is longer than ${MAX_KEY_BYTES} bytes`;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(key)) return "contains a control character";
  if (key.includes("\\")) return "contains a backslash";
  if (key.startsWith("/")) return "is absolute";
  for (const seg of key.split("/")) {
    if (seg === "") return "has an empty segment";
    if (seg === "." || seg === "..") return `has a '${seg}' segment`;
  }
  return undefined;
}

/** Throws `INVALID_ARGUMENT` unless `key` is a valid blob key (see {@link blobKeyProblem}). */
export function assertBlobKey(key: string, what = "key"): void {
  const problem = blobKeyProblem(key);
  if (problem) {
    throw new SlipstreamError("INVALID_ARGUMENT", `${what} ${JSON.stringify(String(key).slice(0, 200))} ${problem}`);
  }
}
