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
  artifactInvalid,
  checkDestAvailable,
  createStageBeside,
  cursorRank,
  DEFAULT_TIMEOUT_MS,
  type ExportManifest,
  type Logger,
  listPayload,
  MANIFEST_FILE,
  MAX_MANIFEST_BYTES,
  PAYLOAD_DIR,
  type ProgressFn,
  parseManifest,
  payloadPrunable,
  pointerPublishAllowed,
  readManifest,
  renameIntoPlace,
  SlipstreamError,
  silentLogger,
  TEMP_PREFIX,
  type WatchCursor,
  withTimeout,
} from "@slipstream/core";
import { assertBlobKey, type BlobStore } from "./blob-store.js";
import { tap, transferDeadline } from "./deadline.js";
import { parsePayloadName, payloadName, payloadPrefixOf, pointerKeyOf } from "./naming.js";
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
}

/** Options of a transfer. */
export interface TransferOptions {
  signal?: AbortSignal;
  /** Receives `{ phase: "upload" | "download", bytesDone, bytesTotal }`. */
  onProgress?: ProgressFn;
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
    const { manifest, bytes } = await readManifest(artifactDir);
    await checkArtifactLayout(artifactDir, manifest);
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

    await this.#putPayload(payloadKey, artifactDir, manifest, bytes, opts);

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

  async #putPayload(
    payloadKey: string,
    artifactDir: string,
    manifest: ExportManifest,
    manifestBytes: Uint8Array,
    opts: TransferOptions,
  ): Promise<void> {
    const total = manifestBytes.byteLength + manifest.files.reduce((n, f) => n + f.size, 0);
    let done = 0;
    const deadline = transferDeadline(`object store: upload ${payloadKey}`, {
      idleMs: this.#timeoutMs,
      overallMs: this.#transferTimeoutMs,
      signal: opts.signal,
    });
    const finishMs = 8 * this.#timeoutMs;
    try {
      opts.onProgress?.({ phase: "upload", bytesDone: 0, bytesTotal: total });
      const body = packArtifact(artifactDir, manifest, manifestBytes, {
        signal: deadline.signal,
        onBytes: (n) => {
          done += n;
          opts.onProgress?.({ phase: "upload", bytesDone: done, bytesTotal: total });
        },
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
    return parseManifest(got.bytes);
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
  async download(key: string, destDir: string, opts: TransferOptions = {}): Promise<ExportManifest> {
    const pointerKey = this.pointerKey(key);
    await checkDestAvailable(destDir);
    const got = await this.#remote(`read ${pointerKey}`, opts.signal, (s) =>
      this.#store.readSmall(pointerKey, { maxBytes: MAX_MANIFEST_BYTES, signal: s }),
    );
    if (!got) throw artifactInvalid(`remote artifact not found: ${pointerKey}`);
    const manifestBytes = got.bytes;
    const manifest = parseManifest(manifestBytes);
    const payloadKey = this.payloadKey(key, manifestBytes);

    const work = await createStageBeside(destDir, TEMP_PREFIX.download);
    try {
      const stage = join(work, "artifact");
      await mkdir(stage);
      await this.#fetchPayload(payloadKey, stage, manifest, manifestBytes, opts);
      await checkDestAvailable(destDir);
      await renameIntoPlace(stage, destDir);
      this.#log.info("artifact downloaded", { key, cursor: manifest.cursor.toHex() });
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
      await deadline.run((signal) => unpackArtifact(counted, stage, { manifest, manifestBytes, signal }));
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
