/**
 * ArtifactTransport: moves artifacts between a local directory and a {@link BlobStore}
 * with the pointer-swap protocol. Payloads are write-once, content-addressed tars; the
 * pointer (the manifest bytes) is published last by a conditional write and never moves
 * backwards (invariant 6). Readers trust nothing: the payload is unpacked into a hidden
 * stage, checked against the pointer, and renamed into place only when whole (invariant 5).
 */
import { lstat, mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import {
  type ArtifactFile,
  artifactInvalid,
  assertManifestTrusted,
  CHUNK_SIZE_LIMITS,
  checkDestAvailable,
  createStageBeside,
  cursorRank,
  DEFAULT_TIMEOUT_MS,
  type ExportManifest,
  encodeManifest,
  type Logger,
  listPayload,
  MANIFEST_FILE,
  MAX_MANIFEST_BYTES,
  type ManifestSigner,
  PAYLOAD_DIR,
  type ProgressFn,
  parseManifest,
  payloadPrunable,
  pointerPublishAllowed,
  readManifest,
  renameIntoPlace,
  type SignatureCheck,
  SlipstreamError,
  silentLogger,
  TEMP_PREFIX,
  type TrustPolicy,
  validateTrustPolicy,
  type WatchCursor,
  withTimeout,
} from "@slipstream/core";
import { assertBlobKey, type BlobStore } from "./blob-store.js";
import { type ChunkSealing, DEFAULT_CHUNK_BYTES, firstChunkIndexes, hashChunks, storedChunks } from "./chunks.js";
import { tap, transferDeadline } from "./deadline.js";
import { type KeyWrapper, newArtifactKey, unwrapArtifactKey } from "./encryption.js";
import { storedFileSize } from "./layout.js";
import { parsePayloadName, payloadName, payloadPrefixOf, pointerKeyOf } from "./naming.js";
import {
  type ChunkedDownloadStats,
  DEFAULT_CHUNK_RETRIES,
  DEFAULT_DOWNLOAD_CONCURRENCY,
  DEFAULT_RESUME_MAX_AGE_MS,
  downloadChunked,
} from "./resumable-download.js";
import { packArtifact, payloadDirs, unpackArtifact } from "./tar.js";

/** Options of {@link ArtifactTransport}. */
export interface ArtifactTransportOptions {
  /**
   * Prefix of every object this transport writes (`/`-separated, no leading slash).
   * @defaultValue `""` (objects at the store's root)
   */
  prefix?: string;
  /**
   * Publish the pointer with a plain overwrite on stores without conditional writes. Two
   * exporters racing can then move the pointer backwards; only set this when a single
   * writer is guaranteed some other way.
   * @defaultValue false
   */
  allowNonAtomicPointer?: boolean;
  /**
   * Bound of every remote await, and the most a streamed transfer may go without progress.
   * @defaultValue 30 000
   */
  timeoutMs?: number;
  /**
   * Overall bound of one payload upload or download.
   * @defaultValue 21 600 000 (6 h)
   */
  transferTimeoutMs?: number;
  /** Where diagnostics go. @defaultValue silent */
  logger?: Logger;
  /**
   * Signs every uploaded manifest (see `manifestSigner` of `@slipstream/core`). Uploads are
   * then chunked too, so the signature covers every chunk hash.
   * @defaultValue unsigned
   */
  signer?: ManifestSigner;
  /**
   * The keys downloads trust. With a policy, `download` and `manifest` refuse unsigned
   * (`ARTIFACT_UNSIGNED`, unless `allowUnsigned`), wrongly signed (`SIGNATURE_INVALID`),
   * foreign (`SIGNER_UNTRUSTED`) and expired (`SIGNER_EXPIRED`) artifacts before anything is
   * written, `prune` acts only on a trusted pointer, and `upload` replaces a pointer the
   * policy refuses (whatever its cursor) instead of deferring to it — so exporters should
   * carry the policy too. Without one, everything is accepted unchecked, as before signing
   * existed.
   * @defaultValue no policy
   */
  trust?: TrustPolicy;
  /**
   * Wraps data keys for the fleet. Uploads are encrypted (AES-256-GCM per chunk, the
   * manifest stays readable) when `encryptUploads` is true; downloads of encrypted artifacts
   * unwrap their data key with it (`DECRYPTION_FAILED` without it or with the wrong key).
   */
  keyWrapper?: KeyWrapper;
  /** Encrypt uploaded payloads with {@link ArtifactTransportOptions.keyWrapper}. @defaultValue false */
  encryptUploads?: boolean;
  /**
   * Plaintext bytes per chunk of uploads (4 KiB – 64 MiB). Setting it (or a signer, or
   * encryption) makes uploads chunked: the manifest lists every chunk's SHA-256, and
   * downloads fetch chunks in parallel, verify each, and resume after an interruption.
   * @defaultValue 4 MiB when chunked; uploads without signer or encryption are not chunked unless this is set
   */
  chunkBytes?: number;
  /** Chunks fetched at once by a chunked download (memory ≈ this × chunkBytes). @defaultValue 4 */
  downloadConcurrency?: number;
  /** Refetches of a chunk that fails its hash before `CHUNK_CORRUPTED`. @defaultValue 2 */
  chunkRetries?: number;
  /** Resume stages of other downloads untouched this long are swept. @defaultValue 86 400 000 (24 h) */
  resumeMaxAgeMs?: number;
}

/** Options of a transfer. */
export interface TransferOptions {
  signal?: AbortSignal;
  /** Receives `{ phase: "upload" | "download", bytesDone, bytesTotal }`. */
  onProgress?: ProgressFn;
}

/** Options of {@link ArtifactTransport.download}. */
export interface DownloadOptions extends TransferOptions {
  /**
   * Where a chunked download keeps its resume stage (same filesystem as the destination).
   * @defaultValue the destination's parent directory
   */
  resumeDir?: string;
  /** Receives what a chunked download did (chunks, resumed, fetches, refetched). */
  onChunkStats?: (stats: ChunkedDownloadStats) => void;
}

/** Options of a small remote call. */
export interface RemoteOptions {
  signal?: AbortSignal;
}

/** What {@link ArtifactTransport.upload} did. */
export type UploadResult =
  | {
      readonly outcome: "published";
      readonly cursor: WatchCursor;
      readonly payloadKey: string;
      readonly manifest: ExportManifest;
    }
  | {
      /** The remote pointer is strictly newer; it was left alone. */
      readonly outcome: "superseded";
      readonly cursor: WatchCursor;
      readonly payloadKey: string;
      readonly manifest: ExportManifest;
      /** The cursor of the newer remote pointer. */
      readonly remoteCursor: WatchCursor;
    };

/** Consecutive lost conditional-write races before a publish gives up. */
export const MAX_PUBLISH_ATTEMPTS = 8;
/** Default overall bound of one payload transfer. */
export const DEFAULT_TRANSFER_TIMEOUT_MS = 6 * 60 * 60 * 1000;

type PointerState =
  | { readonly kind: "absent" }
  | {
      readonly kind: "present";
      readonly bytes: Uint8Array;
      readonly version: string;
      /** Undefined when the pointer is unreadable (a corrupt pointer may be replaced). */
      readonly manifest: ExportManifest | undefined;
    };

/** Lets go of a body that will not be read (closes its file or connection). Never waits. */
function releaseBody(body: AsyncIterable<Uint8Array>): void {
  const destroyable = body as { destroy?: () => void };
  if (typeof destroyable.destroy === "function") destroyable.destroy();
  else void Promise.resolve(body[Symbol.asyncIterator]().return?.()).catch(() => {});
}

async function* bytesBody(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

function roundUp512(n: number): number {
  return Math.ceil(n / 512) * 512;
}

/** The most bytes a tar of this manifest can take (headers, long-name records, padding). */
function maxTarBytes(manifest: ExportManifest, manifestBytes: Uint8Array): number {
  const entry = (name: string, size: number) => 1024 + roundUp512(Buffer.byteLength(name) + 512) + roundUp512(size);
  let total = entry(MANIFEST_FILE, manifestBytes.byteLength) + 10240;
  for (const d of payloadDirs(manifest)) total += entry(`${d}/`, 0);
  for (const f of manifest.files) total += entry(f.path, f.size);
  return total;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Checks that the artifact directory holds exactly what its manifest declares (before any upload). */
async function checkArtifactLayout(dir: string, manifest: ExportManifest): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.name === MANIFEST_FILE && e.isFile()) continue;
    if (e.name === PAYLOAD_DIR && e.isDirectory()) continue;
    throw artifactInvalid(`artifact ${dir} contains undeclared entry: ${e.name}`);
  }
  let present: string[] = [];
  try {
    present = (await listPayload(join(dir, PAYLOAD_DIR))).files.map((f) => `${PAYLOAD_DIR}/${f}`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const declared = new Map(manifest.files.map((f) => [f.path, f.size]));
  for (const p of present) {
    if (!declared.has(p)) throw artifactInvalid(`artifact ${dir} contains undeclared file: ${p}`);
  }
  const presentSet = new Set(present);
  for (const [path, size] of declared) {
    if (!presentSet.has(path)) throw artifactInvalid(`artifact ${dir} is missing declared file: ${path}`);
    const st = await lstat(join(dir, path));
    if (st.size !== size) {
      throw artifactInvalid(`artifact file ${path} is ${st.size} bytes; the manifest declares ${size}`);
    }
  }
}

/**
 * Publishes artifacts to, and fetches them from, a {@link BlobStore}.
 *
 * @example
 * ```ts
 * const transport = new ArtifactTransport(new FsBlobStore("./artifacts"));
 * const res = await transport.upload("edge/us-east", artifactDir);
 * await transport.download("edge/us-east", "./downloaded-artifact");
 * ```
 */
export class ArtifactTransport {
  readonly #store: BlobStore;
  readonly #prefix: string;
  readonly #allowNonAtomic: boolean;
  readonly #timeoutMs: number;
  readonly #transferTimeoutMs: number;
  readonly #log: Logger;
  readonly #signer: ManifestSigner | undefined;
  readonly #trust: TrustPolicy | undefined;
  readonly #keyWrapper: KeyWrapper | undefined;
  readonly #encrypt: boolean;
  readonly #chunkBytes: number | undefined;
  readonly #concurrency: number;
  readonly #retries: number;
  readonly #resumeMaxAgeMs: number;

  constructor(store: BlobStore, opts: ArtifactTransportOptions = {}) {
    if (typeof store !== "object" || store === null || typeof store.readSmall !== "function") {
      throw new TypeError("ArtifactTransport needs a BlobStore");
    }
    const prefix = opts.prefix ?? "";
    if (prefix !== "") assertBlobKey(prefix, "prefix");
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!(timeoutMs > 0)) throw new TypeError("timeoutMs must be a positive number");
    const transferTimeoutMs = opts.transferTimeoutMs ?? DEFAULT_TRANSFER_TIMEOUT_MS;
    if (!(transferTimeoutMs > 0)) throw new TypeError("transferTimeoutMs must be a positive number");
    this.#store = store;
    this.#prefix = prefix;
    this.#allowNonAtomic = opts.allowNonAtomicPointer === true;
    this.#timeoutMs = timeoutMs;
    this.#transferTimeoutMs = transferTimeoutMs;
    this.#log = opts.logger ?? silentLogger;
    if (opts.trust !== undefined) validateTrustPolicy(opts.trust);
    if (opts.encryptUploads === true && !opts.keyWrapper) {
      throw new TypeError("encryptUploads needs a keyWrapper");
    }
    const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    if (!Number.isSafeInteger(chunkBytes) || chunkBytes < CHUNK_SIZE_LIMITS.min || chunkBytes > CHUNK_SIZE_LIMITS.max) {
      throw new TypeError(`chunkBytes must be an integer from ${CHUNK_SIZE_LIMITS.min} to ${CHUNK_SIZE_LIMITS.max}`);
    }
    const positive = (v: number | undefined, name: string, dflt: number, min = 1): number => {
      const n = v ?? dflt;
      if (!Number.isSafeInteger(n) || n < min) throw new TypeError(`${name} must be an integer ≥ ${min}`);
      return n;
    };
    this.#signer = opts.signer;
    this.#trust = opts.trust;
    this.#keyWrapper = opts.keyWrapper;
    this.#encrypt = opts.encryptUploads === true;
    this.#chunkBytes = opts.signer || this.#encrypt || opts.chunkBytes !== undefined ? chunkBytes : undefined;
    this.#concurrency = positive(opts.downloadConcurrency, "downloadConcurrency", DEFAULT_DOWNLOAD_CONCURRENCY);
    this.#retries = positive(opts.chunkRetries, "chunkRetries", DEFAULT_CHUNK_RETRIES, 0);
    this.#resumeMaxAgeMs = positive(opts.resumeMaxAgeMs, "resumeMaxAgeMs", DEFAULT_RESUME_MAX_AGE_MS, 0);
  }

  /**
   * The verdict of the trust policy on manifest bytes read from the store: `verified`,
   * `unsigned` (accepted: no policy, or `allowUnsigned`) or `unchecked` (signed, no policy);
   * throws the refusal codes of {@link ArtifactTransportOptions.trust}.
   */
  checkTrust(manifestBytes: Uint8Array, manifest: ExportManifest = parseManifest(manifestBytes)): SignatureCheck {
    return assertManifestTrusted(manifestBytes, manifest, this.#trust);
  }

  /** The pointer object of `key`. */
  pointerKey(key: string): string {
    assertBlobKey(key);
    return pointerKeyOf(this.#prefix, key);
  }

  /** The payload object a pointer with these exact bytes names. */
  payloadKey(key: string, manifestBytes: Uint8Array): string {
    assertBlobKey(key);
    return `${payloadPrefixOf(this.#prefix, key)}${payloadName(parseManifest(manifestBytes), manifestBytes)}`;
  }

  /** Runs one small remote call with the per-await timeout; backend failures become `BACKEND`. */
  #remote<T>(what: string, signal: AbortSignal | undefined, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    return withTimeout(`object store: ${what}`, this.#timeoutMs, signal, fn).catch((err: unknown) => {
      throw SlipstreamError.wrap(err, "BACKEND", `object store: ${what}`);
    });
  }

  async #readPointer(pointerKey: string, signal: AbortSignal | undefined): Promise<PointerState> {
    const got = await this.#remote(`read ${pointerKey}`, signal, (s) =>
      this.#store.readSmall(pointerKey, { maxBytes: MAX_MANIFEST_BYTES, signal: s }),
    );
    if (!got) return { kind: "absent" };
    let manifest: ExportManifest | undefined;
    try {
      manifest = parseManifest(got.bytes);
    } catch (err) {
      this.#log.warn("remote pointer is unreadable", { key: pointerKey, error: (err as Error).message });
      return { kind: "present", bytes: got.bytes, version: got.version, manifest };
    }
    if (this.#trust) {
      // With a policy, a pointer it refuses counts for nothing, like an unreadable one: its
      // cursor neither holds back an upload (a forged pointer with a huge cursor cannot
      // freeze the fleet's artifact) nor drives prune.
      try {
        this.checkTrust(got.bytes, manifest);
      } catch (err) {
        if (!(err instanceof SlipstreamError)) throw err;
        this.#log.warn("remote pointer is not trusted; treating it as unreadable", {
          key: pointerKey,
          code: err.code,
          error: err.message,
        });
        manifest = undefined;
      }
    }
    return { kind: "present", bytes: got.bytes, version: got.version, manifest };
  }

  /**
   * Uploads the artifact at `artifactDir` under `key`: validates it, streams its tar to a
   * write-once payload object, then publishes its manifest as the pointer with a
   * conditional write. A strictly newer remote pointer is left alone and reported as
   * `superseded` (checked before the payload is sent, and again at publish time).
   */
  async upload(key: string, artifactDir: string, opts: TransferOptions = {}): Promise<UploadResult> {
    const pointerKey = this.pointerKey(key);
    const local = await readManifest(artifactDir);
    await checkArtifactLayout(artifactDir, local.manifest);
    const { manifest, bytes, sealing } = await this.#remoteManifest(artifactDir, local.manifest, local.bytes, opts);
    const cursor = manifest.cursor;
    const rank = cursorRank(cursor);
    const payloadKey = this.payloadKey(key, bytes);
    const attrs = { key, cursor: cursor.toHex() };

    const atomic = this.#store.capabilities.conditionalWrites;
    if (!atomic && !this.#allowNonAtomic) {
      throw new SlipstreamError(
        "BACKEND",
        `refusing to publish ${pointerKey}: this store has no conditional writes, so concurrent exporters could move the pointer backwards; pass allowNonAtomicPointer: true to ArtifactTransport to publish anyway`,
      );
    }

    let current = await this.#readPointer(pointerKey, opts.signal);
    const superseded = (remote: ExportManifest): UploadResult => {
      this.#log.warn("remote pointer is newer; not publishing", { ...attrs, remoteCursor: remote.cursor.toHex() });
      return { outcome: "superseded", cursor, payloadKey, manifest, remoteCursor: remote.cursor };
    };
    if (
      current.kind === "present" &&
      current.manifest &&
      !pointerPublishAllowed(cursorRank(current.manifest.cursor), rank)
    ) {
      return superseded(current.manifest);
    }

    await this.#putPayload(payloadKey, artifactDir, manifest, bytes, sealing, opts);

    if (!atomic) {
      current = await this.#readPointer(pointerKey, opts.signal);
      if (
        current.kind === "present" &&
        current.manifest &&
        !pointerPublishAllowed(cursorRank(current.manifest.cursor), rank)
      ) {
        return superseded(current.manifest);
      }
      this.#log.warn("publishing the pointer without a conditional write (allowNonAtomicPointer)", attrs);
      await this.#remote(`write ${pointerKey}`, opts.signal, (s) =>
        this.#store.put(pointerKey, bytesBody(bytes), {
          signal: s,
          size: bytes.byteLength,
        }),
      );
      this.#log.info("artifact published", attrs);
      return { outcome: "published", cursor, payloadKey, manifest };
    }

    for (let attempt = 1; attempt <= MAX_PUBLISH_ATTEMPTS; attempt++) {
      if (attempt > 1) current = await this.#readPointer(pointerKey, opts.signal);
      let result: Awaited<ReturnType<BlobStore["conditionalPut"]>>;
      if (current.kind === "absent") {
        result = await this.#remote(`create ${pointerKey}`, opts.signal, (s) =>
          this.#store.conditionalPut(pointerKey, bytes, { ifAbsent: true }, { signal: s }),
        );
      } else {
        if (bytesEqual(current.bytes, bytes)) {
          this.#log.info("artifact already published", attrs);
          return { outcome: "published", cursor, payloadKey, manifest };
        }
        const currentRank = current.manifest ? cursorRank(current.manifest.cursor) : undefined;
        if (current.manifest && !pointerPublishAllowed(currentRank, rank)) return superseded(current.manifest);
        const version = current.version;
        result = await this.#remote(`replace ${pointerKey}`, opts.signal, (s) =>
          this.#store.conditionalPut(pointerKey, bytes, { ifVersion: version }, { signal: s }),
        );
      }
      if (result.status === "written") {
        this.#log.info("artifact published", { ...attrs, attempt });
        return { outcome: "published", cursor, payloadKey, manifest };
      }
      this.#log.debug("lost a conditional-write race on the pointer; re-reading", { ...attrs, attempt });
    }
    throw new SlipstreamError(
      "BACKEND",
      `publishing ${pointerKey} lost ${MAX_PUBLISH_ATTEMPTS} consecutive conditional-write races; giving up`,
    );
  }

  /**
   * The manifest published for a local artifact: the local one as it is, or — when this
   * transport chunks, encrypts or signs — the same manifest with chunk hashes, the wrapped
   * data key and the signature (fields a previous transport added are replaced). Reads
   * every file once to hash its chunks and check its SHA-256.
   */
  async #remoteManifest(
    artifactDir: string,
    local: ExportManifest,
    localBytes: Uint8Array,
    opts: TransferOptions,
  ): Promise<{ manifest: ExportManifest; bytes: Uint8Array; sealing: ChunkSealing | undefined }> {
    const { chunkSize: _c, encryption: _e, signature: _s, ...rest } = local;
    const base: ExportManifest = {
      ...rest,
      files: local.files.map(({ chunks: _x, ...f }): ArtifactFile => f),
    };
    const chunkSize = this.#chunkBytes;
    if (chunkSize === undefined) {
      const plain = local.chunkSize !== undefined || local.encryption !== undefined || local.signature !== undefined;
      return { manifest: base, bytes: plain ? Buffer.from(encodeManifest(base)) : localBytes, sealing: undefined };
    }
    let sealing: ChunkSealing | undefined;
    if (this.#encrypt) {
      const wrapper = this.#keyWrapper as KeyWrapper;
      sealing = await this.#remote("wrap the data key", opts.signal, (signal) => newArtifactKey(wrapper, { signal }));
    }
    const total = base.files.reduce((n, f) => n + f.size, 0);
    let hashed = 0;
    const files = await hashChunks(artifactDir, base, chunkSize, sealing, {
      ...(opts.signal ? { signal: opts.signal } : {}),
      onBytes: (n) => {
        hashed += n;
        opts.onProgress?.({ phase: "hash", bytesDone: hashed, bytesTotal: total });
      },
    });
    let manifest: ExportManifest = {
      ...base,
      files,
      chunkSize,
      ...(sealing ? { encryption: sealing.encryption } : {}),
    };
    if (this.#signer) manifest = this.#signer.sign(manifest);
    const bytes = Buffer.from(encodeManifest(manifest));
    if (bytes.byteLength > MAX_MANIFEST_BYTES) {
      throw artifactInvalid(
        `the chunked manifest is ${bytes.byteLength} bytes, over ${MAX_MANIFEST_BYTES}; use larger chunkBytes`,
      );
    }
    return { manifest, bytes, sealing };
  }

  async #putPayload(
    payloadKey: string,
    artifactDir: string,
    manifest: ExportManifest,
    manifestBytes: Uint8Array,
    sealing: ChunkSealing | undefined,
    opts: TransferOptions,
  ): Promise<void> {
    const total = manifestBytes.byteLength + manifest.files.reduce((n, f) => n + storedFileSize(manifest, f.size), 0);
    const firsts = manifest.chunkSize !== undefined ? firstChunkIndexes(manifest, manifest.chunkSize) : [];
    let done = 0;
    const deadline = transferDeadline(`object store: upload ${payloadKey}`, {
      idleMs: this.#timeoutMs,
      overallMs: this.#transferTimeoutMs,
      signal: opts.signal,
    });
    const finishMs = 8 * this.#timeoutMs;
    try {
      opts.onProgress?.({ phase: "upload", bytesDone: 0, bytesTotal: total });
      const chunkSize = manifest.chunkSize;
      const body = packArtifact(artifactDir, manifest, manifestBytes, {
        signal: deadline.signal,
        reuseBuffers: this.#store.capabilities.putReadsSequentially === true,
        onBytes: (n) => {
          done += n;
          opts.onProgress?.({ phase: "upload", bytesDone: done, bytesTotal: total });
        },
        // Chunked payloads are sent chunk by chunk, each checked against its hash (encrypted
        // ones sealed again: the same key, salt and index give the same bytes as hashed).
        ...(chunkSize !== undefined
          ? {
              fileBody: (f: ArtifactFile, i: number) => ({
                size: storedFileSize(manifest, f.size),
                body: storedChunks(artifactDir, f, firsts[i] as number, chunkSize, sealing, deadline.signal),
              }),
            }
          : {}),
      });
      const counted = (async function* () {
        yield* tap(body, () => deadline.touch());
        // The body is complete; a store may take longer than one idle period to commit it.
        deadline.touch(finishMs);
      })();
      // Parts accepted by the store count as progress too: a parallel multipart upload may pull
      // no body bytes for longer than one idle period on a slow link while parts complete.
      await deadline.run((signal) =>
        this.#store.put(payloadKey, counted, { signal, onProgress: () => deadline.touch() }),
      );
      opts.onProgress?.({ phase: "upload", bytesDone: total, bytesTotal: total });
    } catch (err) {
      throw SlipstreamError.wrap(err, "BACKEND", `object store: upload ${payloadKey}`);
    } finally {
      deadline.dispose();
    }
  }

  /** The published manifest of `key` (the pointer only), strictly parsed. */
  async manifest(key: string, opts: RemoteOptions = {}): Promise<ExportManifest> {
    const pointerKey = this.pointerKey(key);
    const got = await this.#remote(`read ${pointerKey}`, opts.signal, (s) =>
      this.#store.readSmall(pointerKey, { maxBytes: MAX_MANIFEST_BYTES, signal: s }),
    );
    if (!got) throw artifactInvalid(`remote artifact not found: ${pointerKey}`);
    const manifest = parseManifest(got.bytes);
    this.checkTrust(got.bytes, manifest);
    return manifest;
  }

  /**
   * Downloads the artifact published under `key` into `destDir` (absent or empty, with an
   * existing parent). The payload is unpacked while it streams in (no staging tar on disk)
   * into a hidden stage beside `destDir`, refusing anything the pointer does not declare and
   * hashing every file as it is written (SHA-256 must match the pointer's manifest); the
   * embedded manifest must equal the pointer byte for byte; then the stage is renamed into
   * place. On any failure nothing appears at `destDir`. The store's import checks the
   * hashes again, since it trusts no directory.
   */
  async download(key: string, destDir: string, opts: DownloadOptions = {}): Promise<ExportManifest> {
    const pointerKey = this.pointerKey(key);
    await checkDestAvailable(destDir);
    const got = await this.#remote(`read ${pointerKey}`, opts.signal, (s) =>
      this.#store.readSmall(pointerKey, { maxBytes: MAX_MANIFEST_BYTES, signal: s }),
    );
    if (!got) throw artifactInvalid(`remote artifact not found: ${pointerKey}`);
    const manifestBytes = got.bytes;
    const manifest = parseManifest(manifestBytes);
    // Trust is decided on the pointer alone, before a byte of payload is fetched or written.
    const trust = this.checkTrust(manifestBytes, manifest);
    const payloadKey = this.payloadKey(key, manifestBytes);
    const attrs = { key, cursor: manifest.cursor.toHex(), signature: trust.status };

    if (manifest.chunkSize !== undefined) {
      const enc = manifest.encryption;
      const dataKey = enc
        ? await withTimeout("unwrap the data key", this.#timeoutMs, opts.signal, (signal) =>
            unwrapArtifactKey(this.#keyWrapper, enc, { signal }),
          )
        : undefined;
      // Each ranged read is bounded by timeoutMs; the whole download by transferTimeoutMs.
      const deadline = transferDeadline(`object store: download ${payloadKey}`, {
        idleMs: 4 * this.#timeoutMs,
        overallMs: this.#transferTimeoutMs,
        signal: opts.signal,
      });
      let stats: ChunkedDownloadStats;
      try {
        stats = await downloadChunked({
          store: this.#store,
          payloadKey,
          manifest,
          manifestBytes,
          destDir,
          ...(opts.resumeDir !== undefined ? { resumeDir: opts.resumeDir } : {}),
          ...(dataKey ? { dataKey } : {}),
          concurrency: this.#concurrency,
          retries: this.#retries,
          resumeMaxAgeMs: this.#resumeMaxAgeMs,
          timeoutMs: this.#timeoutMs,
          signal: deadline.signal,
          onProgress: (progress) => {
            deadline.touch();
            opts.onProgress?.(progress);
          },
          log: this.#log,
        });
      } finally {
        deadline.dispose();
      }
      opts.onChunkStats?.(stats);
      this.#log.info("artifact downloaded", { ...attrs, ...stats });
      return manifest;
    }

    const work = await createStageBeside(destDir, TEMP_PREFIX.download);
    try {
      const stage = join(work, "artifact");
      await mkdir(stage);
      await this.#fetchPayload(payloadKey, stage, manifest, manifestBytes, opts);
      await checkDestAvailable(destDir);
      await renameIntoPlace(stage, destDir);
      this.#log.info("artifact downloaded", attrs);
      return manifest;
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  /** Streams the payload object into `unpackArtifact`, bounded by size and by the transfer deadline. */
  async #fetchPayload(
    payloadKey: string,
    stage: string,
    manifest: ExportManifest,
    manifestBytes: Uint8Array,
    opts: TransferOptions,
  ): Promise<void> {
    const maxBytes = maxTarBytes(manifest, manifestBytes);
    const deadline = transferDeadline(`object store: download ${payloadKey}`, {
      idleMs: this.#timeoutMs,
      overallMs: this.#transferTimeoutMs,
      signal: opts.signal,
    });
    try {
      const blob = await deadline.run((signal) => this.#store.get(payloadKey, { signal }));
      if (!blob) throw artifactInvalid(`remote payload not found: ${payloadKey} (named by the pointer)`);
      if (blob.size > maxBytes) {
        releaseBody(blob.body);
        throw artifactInvalid(
          `remote payload ${payloadKey} is ${blob.size} bytes; its manifest allows at most ${maxBytes}`,
        );
      }
      const total = blob.size;
      opts.onProgress?.({ phase: "download", bytesDone: 0, bytesTotal: total });
      let done = 0;
      const counted = (async function* () {
        for await (const chunk of blob.body) {
          deadline.touch();
          done += chunk.byteLength;
          if (done > maxBytes || done > total) {
            throw artifactInvalid(`remote payload ${payloadKey} is longer than ${Math.min(total, maxBytes)} bytes`);
          }
          opts.onProgress?.({ phase: "download", bytesDone: done, bytesTotal: total });
          yield chunk;
        }
        if (done !== total) {
          throw new SlipstreamError("BACKEND", `download of ${payloadKey} ended after ${done} of ${total} bytes`);
        }
      })();
      // Chunks the unpack is done with go back to the store, which may read into them again.
      const release = blob.release;
      await deadline.run((signal) =>
        unpackArtifact(counted, stage, { manifest, manifestBytes, signal, ...(release ? { release } : {}) }),
      );
    } catch (err) {
      throw SlipstreamError.wrap(err, "BACKEND", `object store: download ${payloadKey}`);
    } finally {
      deadline.dispose();
    }
  }

  /**
   * Deletes the payloads of `key` that are strictly older than the pointer's cursor and
   * were written more than `graceMs` ago. Never deletes the pointer's target or objects
   * whose name it does not recognise; without a readable pointer it deletes nothing.
   * Returns the deleted object keys.
   */
  async prune(key: string, graceMs: number, opts: RemoteOptions = {}): Promise<string[]> {
    if (typeof graceMs !== "number" || Number.isNaN(graceMs)) throw new TypeError("graceMs must be a number");
    const pointerKey = this.pointerKey(key);
    let pointer: PointerState;
    try {
      pointer = await this.#readPointer(pointerKey, opts.signal);
    } catch (err) {
      // An oversized pointer is unreadable like a corrupt one: nothing can be pruned safely.
      if (!SlipstreamError.is(err, "ARTIFACT_INVALID")) throw err;
      this.#log.warn("remote pointer is unreadable; pruning nothing", { key: pointerKey, error: err.message });
      return [];
    }
    if (pointer.kind === "absent" || !pointer.manifest) return [];
    if (this.#trust) {
      // A forged pointer with a huge cursor would make every real payload look old.
      try {
        this.checkTrust(pointer.bytes, pointer.manifest);
      } catch (err) {
        if (!SlipstreamError.is(err)) throw err;
        this.#log.warn("remote pointer is not trusted; pruning nothing", { key: pointerKey, error: err.message });
        return [];
      }
    }
    const pointerRank = cursorRank(pointer.manifest.cursor);
    const prefix = payloadPrefixOf(this.#prefix, key);
    const target = `${prefix}${payloadName(pointer.manifest, pointer.bytes)}`;

    const listed: { key: string; lastModified: Date }[] = [];
    // The listing is bounded like a transfer: each page/item within timeoutMs. Its signal
    // fires on a stall, so a store blocked inside `list` is released too.
    const deadline = transferDeadline(`object store: list ${prefix}`, {
      idleMs: this.#timeoutMs,
      overallMs: this.#transferTimeoutMs,
      signal: opts.signal,
    });
    const iterator = this.#store.list(prefix, { signal: deadline.signal })[Symbol.asyncIterator]();
    let finished = false;
    try {
      for (;;) {
        const next = await deadline.run(() => iterator.next());
        deadline.touch();
        if (next.done) break;
        listed.push(next.value);
      }
      finished = true;
    } catch (err) {
      throw SlipstreamError.wrap(err, "BACKEND", `object store: list ${prefix}`);
    } finally {
      deadline.dispose();
      // Never await return() of an iterator whose next() may still be pending: it would
      // wait for that next() forever.
      if (!finished) void Promise.resolve(iterator.return?.()).catch(() => {});
    }

    const nowMs = Date.now();
    const deleted: string[] = [];
    for (const item of listed) {
      if (!item.key.startsWith(prefix)) continue;
      const name = item.key.slice(prefix.length);
      if (name.includes("/")) continue;
      const prunable = payloadPrunable({
        payloadRank: parsePayloadName(name)?.rank,
        pointerRank,
        isPointerTarget: item.key === target,
        lastModifiedMs: item.lastModified.getTime(),
        nowMs,
        graceMs,
      });
      if (!prunable) continue;
      await this.#remote(`delete ${item.key}`, opts.signal, (s) => this.#store.delete(item.key, { signal: s }));
      deleted.push(item.key);
      this.#log.debug("pruned payload", { key, payload: item.key });
    }
    if (deleted.length > 0) this.#log.info("pruned old payloads", { key, count: deleted.length });
    return deleted;
  }
}
