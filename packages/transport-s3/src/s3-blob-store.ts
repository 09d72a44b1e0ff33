/**
 * The BlobStore SPI over Amazon S3 (and S3-compatible servers) with the AWS SDK v3. The user
 * configures and hands in the S3Client (credentials, region, endpoint, retries); this class
 * never reads the environment.
 */
import { Readable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import {
  abortedError,
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
  conditionalWritesUnsupported,
  objectTooLarge,
  type PutCondition,
  parallelRanges,
  type SmallBlob,
} from "@slipstream/transport";
import { guardedBody, readCapped } from "./body.js";
import {
  backendError,
  isInvalidRange,
  isMissingObject,
  isNoSuchUpload,
  isPreconditionLost,
  s3ErrorInfo,
} from "./s3-errors.js";

const MiB = 1024 * 1024;

/** Default size of one multipart upload part: 8 MiB. */
export const DEFAULT_PART_SIZE_BYTES = 8 * MiB;
/** S3's smallest allowed part (except the last one): 5 MiB. */
export const MIN_PART_SIZE_BYTES = 5 * MiB;
/** Default number of parts uploaded concurrently: 4. */
export const DEFAULT_QUEUE_SIZE = 4;
/** Most parts uploaded concurrently this store allows: 8. */
export const MAX_QUEUE_SIZE = 8;
/**
 * Once a put's body has been read completely, the remaining parts and the completion of the
 * multipart upload get this many times `timeoutMs` between two signs of progress: S3 may
 * take longer to assemble a large object than to answer one request.
 */
export const FINISH_TIMEOUT_FACTOR = 4;

/** Options of {@link S3BlobStore}. */
export interface S3BlobStoreOptions {
  /** A configured client (region, credentials, endpoint, `forcePathStyle` for most S3-compatibles). */
  client: S3Client;
  /** The bucket holding the objects; it must exist. */
  bucket: string;
  /**
   * A key prefix inside the bucket (`/`-separated segments, a trailing `/` is ignored): key
   * `a/b` is stored as `<prefix>/a/b`, and `list()` only sees objects under it.
   * @defaultValue none (keys are object names)
   */
  prefix?: string;
  /**
   * Whether the server enforces `If-None-Match: *` and `If-Match` on PutObject. AWS S3 does
   * (since 2024); several S3-compatible servers (s3rver, older MinIO and others) silently
   * ignore them, which would let two exporters move the published pointer backwards. Set
   * `false` for such servers: `conditionalPut` then throws `BACKEND` and ArtifactTransport
   * refuses to publish unless given `allowNonAtomicPointer: true`.
   * @defaultValue true
   */
  conditionalWrites?: boolean;
  /**
   * Size of one multipart upload part (at least 5 MiB). A body that fits in one part is sent
   * with a single PutObject. One put holds about `1.5 × partSizeBytes × (queueSize + 1)` of
   * memory (lib-storage copies each part once while cutting it): about 60 MiB by default.
   * @defaultValue 8 MiB
   */
  partSizeBytes?: number;
  /**
   * Parts uploaded concurrently by one put (1 to 8).
   * @defaultValue 4
   */
  queueSize?: number;
  /**
   * Bound of every request: a small call (readSmall, conditionalPut, delete, one page of a
   * listing, the response headers of get) fails with `TIMEOUT` after this long; a streamed
   * put or get fails when no data moved for this long (choose it above the time one part
   * takes on your slowest link).
   * @defaultValue 30 000
   */
  timeoutMs?: number;
  /** Receives debug and warning messages (attribute keys `key`, `bucket`). @defaultValue silent */
  logger?: Logger;
}

type SendOptions = { abortSignal?: AbortSignal };
type Send = (command: unknown, options?: SendOptions) => Promise<unknown>;

function contentRangeTotal(range: string | undefined): number | undefined {
  const m = range === undefined ? null : /\/(\d+)\s*$/.exec(range);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

function asReadable(body: unknown, what: string): Readable {
  if (body instanceof Readable) return body;
  throw new SlipstreamError("BACKEND", `${what}: the S3 client returned a body that is not a Node Readable`);
}

/**
 * Objects in an S3 bucket. Puts stream through `@aws-sdk/lib-storage` (multipart, bounded
 * memory; S3 shows an object only once its upload completes); the pointer's conditional
 * writes use `If-None-Match: *` / `If-Match: <ETag>`; versions are ETags.
 *
 * @example
 * ```ts
 * const store = new S3BlobStore({ client: new S3Client({ region: "eu-west-1" }), bucket: "artifacts" });
 * const transport = new ArtifactTransport(store);
 * ```
 */
export class S3BlobStore implements BlobStore {
  /** Whether `conditionalPut` is available (the `conditionalWrites` option). */
  readonly capabilities: BlobStoreCapabilities;
  /** The bucket. */
  readonly bucket: string;
  /** The key prefix inside the bucket, without a trailing `/` (`""` for none). */
  readonly prefix: string;
  readonly #client: S3Client;
  readonly #send: Send;
  readonly #partSize: number;
  readonly #queueSize: number;
  readonly #timeoutMs: number;
  readonly #log: Logger;

  /** Validates the options (a `TypeError` names the first bad one); makes no request. */
  constructor(opts: S3BlobStoreOptions) {
    if (typeof opts !== "object" || opts === null) throw new TypeError("S3BlobStore needs an options object");
    const { client, bucket } = opts;
    if (typeof client !== "object" || client === null || typeof client.send !== "function") {
      throw new TypeError("client must be an S3Client from @aws-sdk/client-s3");
    }
    if (typeof bucket !== "string" || bucket.length === 0) throw new TypeError("bucket must be a non-empty string");
    let prefix = opts.prefix ?? "";
    if (typeof prefix !== "string") throw new TypeError("prefix must be a string");
    if (prefix.endsWith("/")) prefix = prefix.slice(0, -1);
    if (prefix !== "") assertBlobKey(prefix, "prefix");
    const partSize = opts.partSizeBytes ?? DEFAULT_PART_SIZE_BYTES;
    if (!Number.isSafeInteger(partSize) || partSize < MIN_PART_SIZE_BYTES) {
      throw new TypeError(`partSizeBytes must be an integer of at least ${MIN_PART_SIZE_BYTES} (5 MiB)`);
    }
    const queueSize = opts.queueSize ?? DEFAULT_QUEUE_SIZE;
    if (!Number.isSafeInteger(queueSize) || queueSize < 1 || queueSize > MAX_QUEUE_SIZE) {
      throw new TypeError(`queueSize must be an integer from 1 to ${MAX_QUEUE_SIZE}`);
    }
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (typeof timeoutMs !== "number" || !(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
      throw new TypeError("timeoutMs must be a positive number");
    }
    const conditionalWrites = opts.conditionalWrites ?? true;
    if (typeof conditionalWrites !== "boolean") throw new TypeError("conditionalWrites must be a boolean");

    this.capabilities = Object.freeze({ conditionalWrites });
    this.bucket = bucket;
    this.prefix = prefix;
    this.#client = client;
    this.#send = client.send.bind(client) as Send;
    this.#partSize = partSize;
    this.#queueSize = queueSize;
    this.#timeoutMs = timeoutMs;
    this.#log = opts.logger ?? silentLogger;
  }

  /** The S3 object key of `key` (validated, prefix prepended). */
  objectKey(key: string): string {
    assertBlobKey(key);
    return this.prefix === "" ? key : `${this.prefix}/${key}`;
  }

  /** One request bounded by `timeoutMs` and the caller's signal; SDK failures become `BACKEND`. */
  async #call<T>(what: string, signal: AbortSignal | undefined, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    try {
      return await withTimeout(what, this.#timeoutMs, signal, fn);
    } catch (err) {
      throw backendError(what, err);
    }
  }

  /**
   * Streams `body` to `key` with lib-storage's `Upload`: one PutObject when it fits in a part,
   * else a multipart upload (`queueSize` parts in flight). S3 shows the object only once the
   * upload completes. On failure or abort every in-flight request is cancelled and the
   * multipart upload is aborted. Rejects with `ABORTED` (the signal), `TIMEOUT` (no progress
   * for `timeoutMs`), `INVALID_ARGUMENT` (`opts.size` disagrees with the body) or `BACKEND`.
   */
  async put(key: string, body: AsyncIterable<Uint8Array>, opts: BlobPutOptions = {}): Promise<void> {
    const objectKey = this.objectKey(key);
    const what = `s3 put ${key}`;
    throwIfAborted(opts.signal, what);
    if (body === null || typeof (body as Partial<AsyncIterable<Uint8Array>>)[Symbol.asyncIterator] !== "function") {
      throw new TypeError("body must be an AsyncIterable<Uint8Array>");
    }

    // One controller for the whole upload: the caller's abort, an idle timeout, or a
    // failure fires it, which ends Upload.done() at once and cancels every in-flight request.
    const ctl = new AbortController();
    const fire = (err: SlipstreamError): void => {
      if (!ctl.signal.aborted) ctl.abort(err);
    };
    const onAbort = (): void => fire(abortedError(opts.signal, what));
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    let bodyDone = false;
    let idle: NodeJS.Timeout | undefined;
    const touch = (): void => {
      if (ctl.signal.aborted) return;
      clearTimeout(idle);
      const ms = bodyDone ? FINISH_TIMEOUT_FACTOR * this.#timeoutMs : this.#timeoutMs;
      idle = setTimeout(() => fire(new SlipstreamError("TIMEOUT", `${what} stalled: no progress for ${ms} ms`)), ms);
    };

    const expected = opts.size;
    // The caller's own failure, kept so it is what put() reports (lib-storage reports a failed
    // multipart abort instead when that fails too).
    let sourceError: unknown;
    async function* counted(): AsyncGenerator<Uint8Array> {
      let n = 0;
      try {
        for await (const chunk of body) {
          n += chunk.byteLength;
          touch();
          yield chunk;
        }
      } catch (err) {
        sourceError = err;
        throw err;
      }
      if (expected !== undefined && n !== expected) {
        sourceError = new SlipstreamError(
          "INVALID_ARGUMENT",
          `${what}: the body has ${n} bytes, the caller declared ${expected}`,
        );
        throw sourceError;
      }
      bodyDone = true;
      touch();
    }

    // Upload gets a view of the client whose requests carry our signal (lib-storage passes
    // none); AbortMultipartUpload gets its own deadline so the cleanup still goes out after
    // the upload's signal fired.
    const send = this.#send;
    const timeoutMs = this.#timeoutMs;
    const scoped = Object.create(this.#client, {
      send: {
        value: (command: unknown, options?: SendOptions) =>
          send(command, {
            ...options,
            abortSignal: command instanceof AbortMultipartUploadCommand ? AbortSignal.timeout(timeoutMs) : ctl.signal,
          }),
      },
    }) as S3Client;

    const readable = Readable.from(counted(), { objectMode: false });
    let upload: Upload | undefined;
    try {
      touch();
      upload = new Upload({
        client: scoped,
        params: { Bucket: this.bucket, Key: objectKey, Body: readable },
        partSize: this.#partSize,
        queueSize: this.#queueSize,
        leavePartsOnError: false,
        abortController: ctl,
      });
      upload.on("httpUploadProgress", () => {
        touch();
        opts.onProgress?.();
      });
      await upload.done();
    } catch (err) {
      const reason: unknown = ctl.signal.reason;
      fire(new SlipstreamError("ABORTED", `${what} failed`));
      // Stop reading the caller's body (closes its iterator once it yields again).
      readable.destroy();
      await this.#abortMultipart(upload, key, objectKey);
      if (SlipstreamError.is(reason)) throw reason;
      throw backendError(what, sourceError ?? err);
    } finally {
      clearTimeout(idle);
      opts.signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Aborts the multipart upload of a failed put so its parts do not linger (lib-storage tries
   * too, in the background; a second abort is answered NoSuchUpload, which is fine). Parts of
   * an upload whose creation was cut off before S3 answered cannot be named here: a bucket
   * lifecycle rule `AbortIncompleteMultipartUpload` collects those.
   */
  async #abortMultipart(upload: Upload | undefined, key: string, objectKey: string): Promise<void> {
    const uploadId = upload?.uploadId;
    if (uploadId === undefined) return;
    try {
      await withTimeout(`s3 abort multipart upload of ${key}`, this.#timeoutMs, undefined, (signal) =>
        this.#send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey, UploadId: uploadId }), {
          abortSignal: signal,
        }),
      );
      this.#log.debug("aborted the multipart upload of a failed put", { key, bucket: this.bucket });
    } catch (err) {
      if (isNoSuchUpload(err)) return;
      this.#log.warn("could not abort the multipart upload of a failed put; its parts stay until a lifecycle rule", {
        key,
        bucket: this.bucket,
        uploadId,
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }

  /**
   * GetObject, streamed. The first request asks for the first part (`partSizeBytes`); an
   * object that fits arrives whole in it. A larger one continues as ranged GetObjects of
   * `partSizeBytes`, up to `queueSize` in flight, each pinned to the first answer's ETag
   * (If-Match) and delivered in order: memory stays about `(queueSize + 1) × partSizeBytes`.
   * Each wait for data is bounded by `timeoutMs`; `opts.signal` also ends the stream. Read
   * the body to the end or call `return()` on its iterator (a `for await` with `break`
   * does), or the connection stays open. `undefined` when there is no such object.
   */
  async get(key: string, opts: BlobOpOptions = {}): Promise<BlobBody | undefined> {
    const objectKey = this.objectKey(key);
    const what = `s3 get ${key}`;
    const attempt = (signal: AbortSignal, ranged: boolean): Promise<GetObjectCommandOutput | undefined> =>
      this.#client
        .send(
          new GetObjectCommand({
            Bucket: this.bucket,
            Key: objectKey,
            ...(ranged ? { Range: `bytes=0-${this.#partSize - 1}` } : {}),
          }),
          { abortSignal: signal },
        )
        .catch((err: unknown) => {
          if (isMissingObject(err)) return undefined;
          // A range on an empty object is refused (416); ask again without one.
          if (ranged && isInvalidRange(err)) return attempt(signal, false);
          throw err;
        });
    const res = await this.#call(what, opts.signal, (signal) => attempt(signal, true));
    if (res === undefined) return undefined;
    const stream = asReadable(res.Body, what);
    const length = res.ContentLength;
    // A 206 carries the total in Content-Range; a server that ignores Range answers 200 with
    // the whole object, whose length is then Content-Length.
    const total = contentRangeTotal(res.ContentRange) ?? length;
    if (typeof length !== "number" || typeof total !== "number") {
      stream.destroy();
      throw new SlipstreamError("BACKEND", `${what}: the response has no Content-Length`);
    }
    if (total === 0) {
      // Some S3 implementations answer a range on an empty object with 206 and a bogus body
      // ("bytes 0-0/0") instead of 416: the total says it all.
      stream.destroy();
      return { size: 0, body: (async function* () {})() };
    }
    const head = guardedBody(stream, { what, size: length, idleMs: this.#timeoutMs, signal: opts.signal });
    if (length >= total) return { size: total, body: head };
    const etag = res.ETag;
    return {
      size: total,
      body: chainBodies(head, () =>
        parallelRanges({
          size: total,
          start: length,
          partBytes: this.#partSize,
          concurrency: this.#queueSize,
          ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
          readRange: (start, end, signal) => this.#readRange(objectKey, what, start, end, etag, signal),
        }),
      ),
    };
  }

  /** One ranged GetObject read whole; `undefined` when absent. Bounded by `timeoutMs`. */
  async readRange(key: string, start: number, end: number, opts: BlobOpOptions = {}): Promise<Uint8Array | undefined> {
    if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && 0 <= start && start <= end)) {
      throw new SlipstreamError("INVALID_ARGUMENT", `bad range ${start}-${end}`);
    }
    if (start === end) return new Uint8Array(0);
    const objectKey = this.objectKey(key);
    const signal = opts.signal ?? new AbortController().signal;
    try {
      return await this.#readRange(objectKey, `s3 get ${key}`, start, end, undefined, signal);
    } catch (err) {
      if (isMissingObject(err) || isMissingObject((err as { cause?: unknown }).cause)) return undefined;
      // A range starting past the end (416): nothing there.
      if (isInvalidRange(err) || isInvalidRange((err as { cause?: unknown }).cause)) return new Uint8Array(0);
      throw err;
    }
  }

  /** One ranged GetObject read whole, pinned to `etag`; bounded by `timeoutMs`. */
  #readRange(
    objectKey: string,
    what: string,
    start: number,
    end: number,
    etag: string | undefined,
    signal: AbortSignal,
  ): Promise<Uint8Array> {
    const range = `${what} bytes ${start}-${end - 1}`;
    return this.#call(range, signal, async (s) => {
      const res = await this.#client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: objectKey,
          Range: `bytes=${start}-${end - 1}`,
          ...(etag !== undefined ? { IfMatch: etag } : {}),
        }),
        { abortSignal: s },
      );
      const stream = asReadable(res.Body, range);
      const out = Buffer.allocUnsafe(end - start);
      let n = 0;
      try {
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          if (n + chunk.byteLength > out.length) {
            throw new SlipstreamError("BACKEND", `${range}: the answer is longer than the range`);
          }
          chunk.copy(out, n);
          n += chunk.byteLength;
        }
      } finally {
        stream.destroy();
      }
      return n === out.length ? out : out.subarray(0, n);
    });
  }

  /**
   * A ranged GetObject (`Range: bytes=0-<maxBytes>`), so at most `maxBytes + 1` bytes travel;
   * the object's size comes from Content-Range. The version is the ETag (quotes included).
   */
  async readSmall(key: string, opts: BlobReadSmallOptions): Promise<SmallBlob | undefined> {
    const objectKey = this.objectKey(key);
    const maxBytes = opts?.maxBytes;
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new TypeError("maxBytes must be a non-negative integer");
    const what = `s3 read ${key}`;
    const attempt = async (signal: AbortSignal, ranged: boolean): Promise<SmallBlob | undefined> => {
      let res: GetObjectCommandOutput;
      try {
        // Asking for maxBytes + 1 bytes tells "exactly at the cap" from "over it" without
        // transferring a large object.
        res = await this.#client.send(
          new GetObjectCommand({
            Bucket: this.bucket,
            Key: objectKey,
            ...(ranged ? { Range: `bytes=0-${maxBytes}` } : {}),
          }),
          { abortSignal: signal },
        );
      } catch (err) {
        if (isMissingObject(err)) return undefined;
        // An empty object has no byte 0: S3 answers 416 to any range; read it whole.
        if (ranged && isInvalidRange(err)) return attempt(signal, false);
        throw err;
      }
      const stream = asReadable(res.Body, what);
      const onAbort = (): void => {
        stream.destroy();
      };
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        // A server that ignores Range answers 200 with the whole object: its length is then
        // Content-Length; a 206 carries the total in Content-Range.
        const total = contentRangeTotal(res.ContentRange) ?? res.ContentLength;
        if (total !== undefined && total > maxBytes) throw objectTooLarge(key, maxBytes, total);
        if (typeof res.ETag !== "string" || res.ETag === "") {
          throw new SlipstreamError("BACKEND", `${what}: the response has no ETag (needed as the object's version)`);
        }
        // An empty object: some servers answer the range with "bytes 0-0/0" and a body they
        // never send (s3rver); there is nothing to read.
        if (total === 0) return { bytes: new Uint8Array(0), version: res.ETag };
        const bytes = await readCapped(stream, maxBytes);
        if (bytes === undefined) throw objectTooLarge(key, maxBytes);
        return { bytes, version: res.ETag };
      } finally {
        signal.removeEventListener("abort", onAbort);
        if (!stream.destroyed) stream.destroy();
      }
    };
    return this.#call(what, opts.signal, (signal) => attempt(signal, true));
  }

  /**
   * PutObject with `If-None-Match: *` (`ifAbsent`) or `If-Match: <ETag>` (`ifVersion`). A 412
   * PreconditionFailed, a 409 ConditionalRequestConflict, or a 404 on a replace is
   * `{ status: "conflict" }`. Throws `BACKEND` when the store was built with
   * `conditionalWrites: false`.
   */
  async conditionalPut(
    key: string,
    bytes: Uint8Array,
    condition: PutCondition,
    opts: BlobOpOptions = {},
  ): Promise<ConditionalPutResult> {
    const objectKey = this.objectKey(key);
    if (!(bytes instanceof Uint8Array)) throw new TypeError("bytes must be a Uint8Array");
    const ifAbsent = typeof condition === "object" && condition !== null && "ifAbsent" in condition;
    const ifVersion =
      typeof condition === "object" && condition !== null && "ifVersion" in condition ? condition.ifVersion : undefined;
    if (!ifAbsent && (typeof ifVersion !== "string" || ifVersion === "")) {
      throw new TypeError("condition must be { ifAbsent: true } or { ifVersion: <non-empty string> }");
    }
    if (!this.capabilities.conditionalWrites) {
      throw conditionalWritesUnsupported(`S3BlobStore for bucket ${this.bucket} (conditionalWrites: false)`);
    }
    const what = `s3 conditional put ${key}`;
    try {
      const res = await withTimeout(what, this.#timeoutMs, opts.signal, (signal) =>
        this.#client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: objectKey,
            Body: bytes,
            ContentLength: bytes.byteLength,
            ...(ifAbsent ? { IfNoneMatch: "*" } : { IfMatch: ifVersion }),
          }),
          { abortSignal: signal },
        ),
      );
      if (typeof res.ETag !== "string" || res.ETag === "") {
        throw new SlipstreamError("BACKEND", `${what}: the response has no ETag (needed as the object's version)`);
      }
      return { status: "written", version: res.ETag };
    } catch (err) {
      // A replace of a missing object lost too: the version it names is gone.
      if (isPreconditionLost(err) || (!ifAbsent && isMissingObject(err))) {
        this.#log.debug("conditional put lost", { key, bucket: this.bucket, code: s3ErrorInfo(err).code });
        return { status: "conflict" };
      }
      throw backendError(what, err);
    }
  }

  /**
   * ListObjectsV2 under the store's prefix + `prefix`, page by page (each page bounded by
   * `timeoutMs`). Objects whose names are not valid keys (written by other tools) are skipped.
   */
  async *list(prefix: string, opts: BlobOpOptions = {}): AsyncGenerator<BlobInfo> {
    if (typeof prefix !== "string") throw new TypeError("prefix must be a string");
    const what = `s3 list ${prefix === "" ? "(all)" : prefix}`;
    const base = this.prefix === "" ? "" : `${this.prefix}/`;
    let token: string | undefined;
    do {
      const page = await this.#call(what, opts.signal, (signal) =>
        this.#client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: base + prefix,
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
          { abortSignal: signal },
        ),
      );
      for (const item of page.Contents ?? []) {
        const full = item.Key;
        if (full === undefined || !full.startsWith(base)) continue;
        const key = full.slice(base.length);
        // Objects written by other tools may have names no BlobStore key can have.
        if (blobKeyProblem(key) !== undefined) {
          this.#log.debug("list skips an object whose name is not a valid key", { key: full, bucket: this.bucket });
          continue;
        }
        yield { key, size: item.Size ?? 0, lastModified: item.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  /** DeleteObject; an absent object is not an error. */
  async delete(key: string, opts: BlobOpOptions = {}): Promise<void> {
    const objectKey = this.objectKey(key);
    const what = `s3 delete ${key}`;
    // S3 answers 204 for an absent key too; a 404 from a stricter server means the same.
    await this.#call(what, opts.signal, (signal) =>
      this.#client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: objectKey }), { abortSignal: signal }).then(
        () => undefined,
        (err: unknown) => {
          if (!isMissingObject(err)) throw err;
        },
      ),
    );
  }
}
