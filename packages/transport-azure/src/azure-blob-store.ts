/**
 * A BlobStore over one Azure Blob Storage container, driven by the `@azure/storage-blob`
 * client the user configured and handed in. Puts stage blocks and commit the block list
 * last (visible only when complete); conditional writes are the service's own `If-None-Match:
 * *` / `If-Match: <ETag>` on a single Put Blob, so the published pointer stays monotonic
 * against any number of writers.
 */
import { randomUUID } from "node:crypto";
import type { Readable } from "node:stream";
import type { BlockBlobClient, ContainerClient } from "@azure/storage-blob";
import {
  DEFAULT_TIMEOUT_MS,
  type Logger,
  SlipstreamError,
  silentLogger,
  throwIfAborted,
  withTimeout,
} from "@slipstream/core";
import {
  assertBlobKey,
  type BlobBody,
  type BlobInfo,
  type BlobOpOptions,
  type BlobPutOptions,
  type BlobReadSmallOptions,
  type BlobStore,
  type BlobStoreCapabilities,
  blobKeyProblem,
  type ConditionalPutResult,
  chainBodies,
  objectTooLarge,
  type PutCondition,
  parallelRanges,
  type SmallBlob,
} from "@slipstream/transport";
import { azureErrorCode, httpStatus, isBlobNotFound, toSlipstreamError } from "./azure-errors.js";
import { IdleDeadline } from "./deadline.js";

const MiB = 1024 * 1024;
/** Default size of one staged block. */
export const DEFAULT_BLOCK_SIZE_BYTES = 4 * MiB;
/** Default number of blocks uploaded at once. */
export const DEFAULT_CONCURRENCY = 4;
/** Bytes per ranged read of a streamed `get` (at least one block). */
const DOWNLOAD_RANGE_BYTES = 8 * MiB;
/** Azure's limit of committed blocks per block blob. */
const MAX_BLOCKS = 50_000;
/** Azure's limit on the length of a blob name. */
const MAX_BLOB_NAME_BYTES = 1024;
const MIN_BLOCK_SIZE_BYTES = 64 * 1024;
const MAX_BLOCK_SIZE_BYTES = 256 * MiB;
const MAX_CONCURRENCY = 64;
const CONTENT_TYPE = "application/octet-stream";

/** Options of {@link AzureBlobStore}. */
export interface AzureBlobStoreOptions {
  /**
   * The container to store objects in, from a `BlobServiceClient` you configured
   * (credentials, endpoint, retry policy). The container must exist; this store never
   * creates or deletes containers.
   */
  container: ContainerClient;
  /**
   * Prepended to every key as a folder (`prefix/key`), so several stores can share a
   * container; listed keys come back without it. A trailing `/` is optional.
   * @defaultValue "" (keys are blob names)
   */
  prefix?: string;
  /**
   * Size of one staged block of a streamed put, from 64 KiB to 256 MiB. A put holds at most
   * `(concurrency + 1) × blockSizeBytes` in memory; an object may have at most 50 000 blocks.
   * @defaultValue 4 MiB
   */
  blockSizeBytes?: number;
  /**
   * Blocks of one put uploaded in parallel (1–64).
   * @defaultValue 4
   */
  concurrency?: number;
  /**
   * Bound of every wait on the service: a whole request for small calls (`readSmall`,
   * `conditionalPut`, `delete`, opening a `get`), and "no progress for this long" for streamed
   * ones (a put, each chunk of a `get` body, each page of a `list`). Exceeding it rejects
   * with `TIMEOUT` and aborts the request.
   * @defaultValue 30 000
   */
  timeoutMs?: number;
  /** Receives debug lines (lost conditional writes, skipped blob names). @defaultValue silent */
  logger?: Logger;
}

function positiveInt(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new TypeError(`${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

function normalisePrefix(prefix: unknown): string {
  if (prefix === undefined || prefix === "") return "";
  if (typeof prefix !== "string") throw new TypeError("prefix must be a string");
  const trimmed = prefix.replace(/\/+$/, "");
  const problem = blobKeyProblem(trimmed);
  if (problem) throw new TypeError(`prefix ${JSON.stringify(prefix)} ${problem}`);
  return `${trimmed}/`;
}

/** A block id: base64 of a fixed-length string (Azure wants every id of a blob equally long). */
function blockId(uploadId: string, index: number): string {
  return Buffer.from(`${uploadId}-${index.toString().padStart(11, "0")}`).toString("base64");
}

/** Regroups a byte stream into blocks of exactly `size` bytes (the last may be shorter). */
async function* blocksOf(
  body: AsyncIterable<Uint8Array>,
  size: number,
  signal: AbortSignal,
  onChunk: () => void,
): AsyncGenerator<Buffer> {
  let block = Buffer.allocUnsafe(size);
  let filled = 0;
  for await (const chunk of body) {
    throwIfAborted(signal, "put");
    onChunk();
    let offset = 0;
    while (offset < chunk.byteLength) {
      const take = Math.min(size - filled, chunk.byteLength - offset);
      block.set(chunk.subarray(offset, offset + take), filled);
      filled += take;
      offset += take;
      if (filled === size) {
        yield block;
        block = Buffer.allocUnsafe(size);
        filled = 0;
      }
    }
  }
  throwIfAborted(signal, "put");
  if (filled > 0) yield block.subarray(0, filled);
}

/** Total size from a `Content-Range: bytes a-b/total` answer. */
function totalFromContentRange(range: string | undefined): number | undefined {
  const m = range === undefined ? null : /\/(\d+)\s*$/.exec(range);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

/**
 * Objects as block blobs in one Azure container, with real conditional writes
 * (`capabilities.conditionalWrites: true`): create-only is `If-None-Match: *`, replace is
 * `If-Match: <ETag>`, and the version of an object is its ETag.
 *
 * @example
 * ```ts
 * const service = BlobServiceClient.fromConnectionString(connectionString);
 * const store = new AzureBlobStore({ container: service.getContainerClient("artifacts") });
 * const transport = new ArtifactTransport(store, { prefix: "prod" });
 * ```
 */
export class AzureBlobStore implements BlobStore {
  /** Conditional writes are enforced by the service. */
  readonly capabilities: BlobStoreCapabilities = { conditionalWrites: true };
  /** The container's name (for logs and messages). */
  readonly containerName: string;
  /** The normalised key prefix: `""` or a folder ending in `/`. */
  readonly prefix: string;
  readonly #container: ContainerClient;
  readonly #blockSize: number;
  readonly #concurrency: number;
  readonly #timeoutMs: number;
  readonly #log: Logger;

  /** @throws TypeError on an invalid option (not a container client, sizes out of range, a bad prefix). */
  constructor(opts: AzureBlobStoreOptions) {
    const container = (opts as Partial<AzureBlobStoreOptions> | undefined)?.container;
    if (
      typeof container !== "object" ||
      container === null ||
      typeof container.getBlockBlobClient !== "function" ||
      typeof container.listBlobsFlat !== "function"
    ) {
      throw new TypeError("container must be a ContainerClient from @azure/storage-blob");
    }
    this.#container = container;
    this.containerName = container.containerName;
    this.prefix = normalisePrefix(opts.prefix);
    this.#blockSize = positiveInt(
      "blockSizeBytes",
      opts.blockSizeBytes ?? DEFAULT_BLOCK_SIZE_BYTES,
      MIN_BLOCK_SIZE_BYTES,
      MAX_BLOCK_SIZE_BYTES,
    );
    this.#concurrency = positiveInt("concurrency", opts.concurrency ?? DEFAULT_CONCURRENCY, 1, MAX_CONCURRENCY);
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (typeof timeoutMs !== "number" || !(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
      throw new TypeError(`timeoutMs must be a positive number, got ${String(timeoutMs)}`);
    }
    this.#timeoutMs = timeoutMs;
    this.#log = opts.logger ?? silentLogger;
  }

  /** The blob name of `key` (validated; the prefix prepended). */
  blobName(key: string): string {
    assertBlobKey(key);
    const name = this.prefix + key;
    if (Buffer.byteLength(name) > MAX_BLOB_NAME_BYTES) {
      throw new SlipstreamError(
        "INVALID_ARGUMENT",
        `key ${JSON.stringify(key.slice(0, 100))} with prefix ${JSON.stringify(this.prefix)} exceeds Azure's ${MAX_BLOB_NAME_BYTES}-byte blob name limit`,
      );
    }
    return name;
  }

  #blob(key: string): BlockBlobClient {
    return this.#container.getBlockBlobClient(this.blobName(key));
  }

  /** One request bounded by timeoutMs and the caller's signal; failures mapped to slipstream codes. */
  async #call<T>(what: string, signal: AbortSignal | undefined, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    let inner: AbortSignal | undefined;
    try {
      return await withTimeout(`azure blob store: ${what}`, this.#timeoutMs, signal, (s) => {
        inner = s;
        return fn(s);
      });
    } catch (err) {
      throw toSlipstreamError(err, what, inner);
    }
  }

  /**
   * Streams `body` into `key`: stages it block by block (`concurrency` at a time) and commits
   * the block list last, so the object appears (or is replaced) only when complete; a body
   * that fits in one block is a single Put Blob. A failed, aborted or timed-out put commits
   * nothing; its staged blocks are never visible and Azure discards them. Rejects with
   * `ABORTED`, `TIMEOUT` (no progress for `timeoutMs`) or `BACKEND`.
   */
  async put(key: string, body: AsyncIterable<Uint8Array>, opts: BlobPutOptions = {}): Promise<void> {
    const blob = this.#blob(key);
    throwIfAborted(opts.signal, `azure blob store: put ${key}`);
    const deadline = new IdleDeadline(`azure blob store: put ${key}`, this.#timeoutMs, opts.signal);
    try {
      await deadline.run((signal) =>
        this.#stageAndCommit(blob, key, body, signal, () => {
          deadline.arm();
          opts.onProgress?.();
        }),
      );
    } catch (err) {
      throw toSlipstreamError(err, `put ${key}`, deadline.signal);
    } finally {
      deadline.dispose();
    }
  }

  async #stageAndCommit(
    blob: BlockBlobClient,
    key: string,
    body: AsyncIterable<Uint8Array>,
    signal: AbortSignal,
    progress: () => void,
  ): Promise<void> {
    const uploadId = randomUUID();
    const ids: string[] = [];
    const inflight = new Set<Promise<void>>();
    // Aborts the staging requests still in flight once this put has failed for any reason.
    const stages = new AbortController();
    const onAbort = (): void => stages.abort(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    let failure: { err: unknown } | undefined;
    const stage = async (block: Buffer): Promise<void> => {
      if (ids.length >= MAX_BLOCKS) {
        throw new SlipstreamError(
          "BACKEND",
          `azure blob store: ${key} needs more than ${MAX_BLOCKS} blocks of ${this.#blockSize} bytes; raise blockSizeBytes`,
        );
      }
      const id = blockId(uploadId, ids.length);
      ids.push(id);
      const staged: Promise<void> = blob
        .stageBlock(id, block, block.byteLength, { abortSignal: stages.signal })
        .then(
          () => progress(),
          (err: unknown) => {
            failure ??= { err };
            stages.abort(err);
          },
        )
        .finally(() => inflight.delete(staged));
      inflight.add(staged);
      while (inflight.size >= this.#concurrency) await Promise.race(inflight);
      if (failure) throw failure.err;
    };
    // The first block is held back until a second one exists: a body that fits in one block
    // goes up as a single Put Blob (one request, just as atomic).
    let first: Buffer | undefined;
    try {
      for await (const block of blocksOf(body, this.#blockSize, signal, progress)) {
        if (failure) throw failure.err;
        if (ids.length === 0 && first === undefined) {
          first = block;
          continue;
        }
        if (first !== undefined) {
          await stage(first);
          first = undefined;
        }
        await stage(block);
      }
      await Promise.all(inflight);
      if (failure) throw failure.err;
      throwIfAborted(signal, `azure blob store: put ${key}`);
      const headers = { blobHTTPHeaders: { blobContentType: CONTENT_TYPE } };
      if (ids.length === 0) {
        const whole = first ?? Buffer.alloc(0);
        await blob.upload(whole, whole.byteLength, { abortSignal: signal, ...headers });
        return;
      }
      // Visible only when complete: the blob (or its new content) exists from this commit on.
      await blob.commitBlockList(ids, { abortSignal: signal, ...headers });
    } catch (err) {
      stages.abort(err);
      await Promise.allSettled(inflight);
      throw err;
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Opens `key` for streaming; `undefined` when there is no such blob. The first request
   * asks for the first 8 MiB (or one block, if larger); a larger blob continues as ranged
   * reads of that size, up to `concurrency` in flight, pinned to the first answer's ETag and
   * delivered in order (memory about `(concurrency + 1) ×` the range size). The body is
   * bounded by the caller's signal and by `timeoutMs` of no data while a chunk or a range is
   * awaited; returning early from its iterator closes the connections.
   */
  async get(key: string, opts: BlobOpOptions = {}): Promise<BlobBody | undefined> {
    const blob = this.#blob(key);
    const what = `get ${key}`;
    throwIfAborted(opts.signal, `azure blob store: ${what}`);
    const deadline = new IdleDeadline(`azure blob store: ${what}`, this.#timeoutMs, opts.signal);
    const rangeBytes = Math.max(this.#blockSize, DOWNLOAD_RANGE_BYTES);
    let stream: Readable | undefined;
    try {
      let res: Awaited<ReturnType<BlockBlobClient["download"]>>;
      try {
        res = await deadline.run((signal) => blob.download(0, rangeBytes, { abortSignal: signal }));
      } catch (err) {
        // A range on an empty blob is refused; read it without one.
        if (httpStatus(err) !== 416) throw err;
        res = await deadline.run((signal) => blob.download(0, undefined, { abortSignal: signal }));
      }
      stream = res.readableStreamBody as Readable | undefined;
      if (!stream) throw new SlipstreamError("BACKEND", `azure blob store: ${what}: the answer has no body stream`);
      const length = res.contentLength ?? 0;
      const total = totalFromContentRange(res.contentRange) ?? length;
      deadline.disarm();
      const head = streamBody(stream, deadline, what);
      if (length >= total) return { size: total, body: head };
      // The rest as ranged reads in parallel, pinned to this version of the blob.
      const conditions = res.etag ? { ifMatch: res.etag } : undefined;
      return {
        size: total,
        body: chainBodies(head, () =>
          parallelRanges({
            size: total,
            start: length,
            partBytes: rangeBytes,
            concurrency: this.#concurrency,
            ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
            readRange: (start, end, signal) =>
              this.#call(`${what} bytes ${start}-${end - 1}`, signal, async (s) => {
                const part = await blob.download(start, end - start, {
                  abortSignal: s,
                  ...(conditions ? { conditions } : {}),
                });
                const body = part.readableStreamBody as Readable | undefined;
                const out = Buffer.allocUnsafe(end - start);
                let n = 0;
                try {
                  for await (const chunk of body ?? []) {
                    const buf = chunk as Buffer;
                    if (n + buf.byteLength > out.length) {
                      throw new SlipstreamError("BACKEND", `azure blob store: ${what}: a range answer is too long`);
                    }
                    buf.copy(out, n);
                    n += buf.byteLength;
                  }
                } finally {
                  body?.destroy();
                }
                return n === out.length ? out : out.subarray(0, n);
              }),
          }),
        ),
      };
    } catch (err) {
      stream?.destroy();
      deadline.dispose();
      if (isBlobNotFound(err)) return undefined;
      throw toSlipstreamError(err, what, deadline.signal);
    }
  }

  /** Reads bytes `[start, end)` of `key` with one ranged Get Blob; `undefined` when absent. */
  async readRange(key: string, start: number, end: number, opts: BlobOpOptions = {}): Promise<Uint8Array | undefined> {
    if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && 0 <= start && start <= end)) {
      throw new SlipstreamError("INVALID_ARGUMENT", `bad range ${start}-${end}`);
    }
    if (start === end) return new Uint8Array(0);
    const blob = this.#blob(key);
    const what = `get ${key} bytes ${start}-${end - 1}`;
    try {
      return await this.#call(what, opts.signal, async (s) => {
        const part = await blob.download(start, end - start, { abortSignal: s });
        const body = part.readableStreamBody as Readable | undefined;
        const out = Buffer.allocUnsafe(end - start);
        let n = 0;
        try {
          for await (const chunk of body ?? []) {
            const buf = chunk as Buffer;
            if (n + buf.byteLength > out.length) {
              throw new SlipstreamError("BACKEND", `azure blob store: ${what}: the answer is too long`);
            }
            buf.copy(out, n);
            n += buf.byteLength;
          }
        } finally {
          body?.destroy();
        }
        return out.subarray(0, n);
      });
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      if (isBlobNotFound(err) || isBlobNotFound(cause)) return undefined;
      if (httpStatus(err) === 416 || httpStatus(cause) === 416) return new Uint8Array(0);
      throw err;
    }
  }

  /**
   * Reads a small blob whole with its ETag as version; `undefined` when absent. Asks for a
   * range of `maxBytes + 1` bytes, so it never transfers more than that; a larger blob is
   * refused with `ARTIFACT_INVALID`.
   */
  async readSmall(key: string, opts: BlobReadSmallOptions): Promise<SmallBlob | undefined> {
    const maxBytes = opts?.maxBytes;
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
      throw new TypeError(`maxBytes must be a non-negative integer, got ${String(maxBytes)}`);
    }
    const blob = this.#blob(key);
    return this.#call(`read ${key}`, opts.signal, async (signal) => {
      let res: Awaited<ReturnType<BlockBlobClient["download"]>>;
      try {
        res = await blob.download(0, maxBytes + 1, { abortSignal: signal });
      } catch (err) {
        if (isBlobNotFound(err)) return undefined;
        // A range on an empty blob is refused; read it without one (still capped below).
        if (httpStatus(err) !== 416) throw err;
        try {
          res = await blob.download(0, undefined, { abortSignal: signal });
        } catch (again) {
          if (isBlobNotFound(again)) return undefined;
          throw again;
        }
      }
      const stream = res.readableStreamBody as Readable | undefined;
      try {
        const total = totalFromContentRange(res.contentRange) ?? res.contentLength;
        if (total !== undefined && total > maxBytes) throw objectTooLarge(key, maxBytes, total);
        if (!res.etag) throw new SlipstreamError("BACKEND", `azure blob store: read ${key}: the answer has no ETag`);
        const chunks: Buffer[] = [];
        let n = 0;
        for await (const chunk of stream ?? []) {
          const buf = chunk as Buffer;
          n += buf.byteLength;
          if (n > maxBytes) throw objectTooLarge(key, maxBytes);
          chunks.push(buf);
        }
        return { bytes: new Uint8Array(Buffer.concat(chunks, n)), version: res.etag };
      } finally {
        stream?.destroy();
      }
    });
  }

  /**
   * One Put Blob with `If-None-Match: *` (create-only) or `If-Match: <version>` (replace).
   * A lost race — 409 BlobAlreadyExists, 412 ConditionNotMet, or 404 when the blob to
   * replace is gone — is `{ status: "conflict" }`; success returns the new ETag.
   */
  async conditionalPut(
    key: string,
    bytes: Uint8Array,
    condition: PutCondition,
    opts: BlobOpOptions = {},
  ): Promise<ConditionalPutResult> {
    if (!(bytes instanceof Uint8Array)) throw new TypeError("bytes must be a Uint8Array");
    const ifAbsent = typeof condition === "object" && condition !== null && "ifAbsent" in condition;
    const ifVersion = ifAbsent ? undefined : (condition as { ifVersion?: unknown } | null)?.ifVersion;
    if (
      ifAbsent ? (condition as { ifAbsent: unknown }).ifAbsent !== true : typeof ifVersion !== "string" || !ifVersion
    ) {
      throw new TypeError("condition must be { ifAbsent: true } or { ifVersion: <non-empty string> }");
    }
    const blob = this.#blob(key);
    const conditions = ifAbsent ? { ifNoneMatch: "*" } : { ifMatch: ifVersion as string };
    const what = `${ifAbsent ? "create" : "replace"} ${key}`;
    return this.#call(what, opts.signal, async (signal): Promise<ConditionalPutResult> => {
      try {
        const res = await blob.upload(bytes, bytes.byteLength, {
          conditions,
          abortSignal: signal,
          blobHTTPHeaders: { blobContentType: CONTENT_TYPE },
        });
        if (!res.etag) throw new SlipstreamError("BACKEND", `azure blob store: ${what}: the answer has no ETag`);
        return { status: "written", version: res.etag };
      } catch (err) {
        if (isLostRace(err, ifAbsent)) {
          this.#log.debug("azure blob store: conditional write lost", {
            key,
            status: httpStatus(err),
            code: azureErrorCode(err),
          });
          return { status: "conflict" };
        }
        throw err;
      }
    });
  }

  /**
   * The blobs whose key starts with `prefix`, a page (up to 1000) at a time, each page
   * bounded by `timeoutMs`. Blob names under the store's prefix that are not valid keys
   * (written by other tools) are skipped.
   */
  async *list(prefix: string, opts: BlobOpOptions = {}): AsyncGenerator<BlobInfo> {
    if (typeof prefix !== "string") throw new TypeError("prefix must be a string");
    const what = `list ${prefix || "(all)"}`;
    throwIfAborted(opts.signal, `azure blob store: ${what}`);
    const deadline = new IdleDeadline(`azure blob store: ${what}`, this.#timeoutMs, opts.signal);
    try {
      const pages = this.#container
        .listBlobsFlat({ prefix: this.prefix + prefix, abortSignal: deadline.signal })
        .byPage({ maxPageSize: 1000 });
      for (;;) {
        deadline.arm();
        const page = await deadline.run(() => pages.next());
        deadline.disarm();
        if (page.done) return;
        for (const item of page.value.segment.blobItems) {
          const key = item.name.slice(this.prefix.length);
          if (!item.name.startsWith(this.prefix) || blobKeyProblem(key) !== undefined) {
            this.#log.debug("azure blob store: skipping a blob name that is not a valid key", { key: item.name });
            continue;
          }
          yield { key, size: item.properties.contentLength ?? 0, lastModified: item.properties.lastModified };
        }
      }
    } catch (err) {
      throw toSlipstreamError(err, what, deadline.signal);
    } finally {
      deadline.dispose();
    }
  }

  /** Deletes `key` and its snapshots; a missing blob is not an error. */
  async delete(key: string, opts: BlobOpOptions = {}): Promise<void> {
    const blob = this.#blob(key);
    await this.#call(`delete ${key}`, opts.signal, (signal) =>
      blob.deleteIfExists({ abortSignal: signal, deleteSnapshots: "include" }),
    );
  }
}

function isLostRace(err: unknown, ifAbsent: boolean): boolean {
  const status = httpStatus(err);
  const code = azureErrorCode(err);
  if (status === 409) return code === undefined || code === "BlobAlreadyExists";
  if (status === 412) return code === undefined || code === "ConditionNotMet";
  // Replace-if-version of a blob that vanished meanwhile: lost too.
  return !ifAbsent && isBlobNotFound(err);
}

/**
 * A download body as an async iterable: each awaited chunk is bounded by the deadline's idle
 * timer, the caller's signal destroys the stream at any time, and an early `return()` (even
 * before the first `next()`) closes the connection.
 */
function streamBody(stream: Readable, deadline: IdleDeadline, what: string): AsyncIterable<Uint8Array> {
  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    deadline.dispose();
  };
  const onFire = (): void => {
    stream.destroy(deadline.signal.reason as Error);
  };
  if (deadline.signal.aborted) onFire();
  else deadline.signal.addEventListener("abort", onFire, { once: true });
  let iterating = false;
  return {
    [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
      if (iterating) throw new TypeError(`azure blob store: ${what}: the body can be read once`);
      iterating = true;
      const inner = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
      return {
        async next(): Promise<IteratorResult<Uint8Array>> {
          if (finished) return { done: true, value: undefined };
          deadline.arm();
          try {
            const r = await inner.next();
            deadline.disarm();
            if (r.done) {
              deadline.signal.removeEventListener("abort", onFire);
              finish();
            }
            return r;
          } catch (err) {
            const mapped = toSlipstreamError(err, what, deadline.signal);
            deadline.signal.removeEventListener("abort", onFire);
            finish();
            throw mapped;
          }
        },
        async return(): Promise<IteratorResult<Uint8Array>> {
          deadline.signal.removeEventListener("abort", onFire);
          finish();
          stream.destroy();
          await inner.return?.();
          return { done: true, value: undefined };
        },
      };
    },
  };
}
