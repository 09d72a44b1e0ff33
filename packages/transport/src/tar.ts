/**
 * The wire format of an artifact: an uncompressed tar holding `MANIFEST.json` and the
 * declared files under `data/` (plus their parent directories), with normalised modes,
 * owners and times. Unpacking trusts nothing in the tar: every entry must be a regular file
 * or directory the pointer's manifest declares, with the declared size.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open } from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import {
  type ArtifactFile,
  abortedError,
  artifactInvalid,
  ChunkPool,
  type ExportManifest,
  fsyncPath,
  MANIFEST_FILE,
  MAX_MANIFEST_BYTES,
  PAYLOAD_DIR,
  readChunks,
  SlipstreamError,
  throwIfAborted,
} from "@slipstream/core";
import * as tarStream from "tar-stream";

const FILE_MODE = 0o644;
const DIR_MODE = 0o755;
const READ_CHUNK = 256 * 1024;

interface EventSource {
  once(event: string, fn: (...args: unknown[]) => void): unknown;
  off(event: string, fn: (...args: unknown[]) => void): unknown;
  readonly destroying?: boolean;
  readonly destroyed?: boolean;
}

/** Waits for `event` on a (Node or streamx) stream; rejects if it closes or errors first. */
function waitEvent(stream: EventSource, event: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    // A stream already torn down will not emit again: waiting would hang forever.
    if (stream.destroying || stream.destroyed) return reject(new Error("stream closed"));
    const cleanup = () => {
      stream.off(event, onEvent);
      stream.off("error", onError);
      stream.off("close", onClose);
    };
    const onEvent = () => {
      cleanup();
      resolvePromise();
    };
    const onError = (err: unknown) => {
      cleanup();
      reject(err);
    };
    const onClose = () => {
      cleanup();
      reject(new Error("stream closed"));
    };
    stream.once(event, onEvent);
    stream.once("error", onError);
    stream.once("close", onClose);
  });
}

/** The parent directories (`data`, `data/a`, …) of the declared files, sorted. */
export function payloadDirs(manifest: ExportManifest): string[] {
  const dirs = new Set<string>([PAYLOAD_DIR]);
  for (const f of manifest.files) {
    const segs = f.path.split("/");
    for (let i = 2; i < segs.length; i++) dirs.add(segs.slice(0, i).join("/"));
  }
  return [...dirs].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

/** The first `limit` bytes of the file at `path`, as chunks lent from `pool` (see `readChunks`). */
async function* pooledFile(path: string, limit: number, pool: ChunkPool): AsyncGenerator<Uint8Array> {
  const fh = await open(path, "r");
  try {
    yield* readChunks(fh, pool, { limit });
  } finally {
    await fh.close();
  }
}

/** Options of {@link packArtifact}. */
export interface PackOptions {
  signal?: AbortSignal;
  /**
   * The consumer is done with each chunk (has written or copied it and keeps no reference)
   * before it pulls the next one — `BlobStoreCapabilities.putReadsSequentially` — so file
   * bytes may be read into a few reused buffers instead of a fresh one per read.
   * @defaultValue false
   */
  reuseBuffers?: boolean;
  /** Called with the number of payload bytes read from disk, as they are read. */
  onBytes?: (n: number) => void;
  /**
   * The stored form of file `index` (e.g. encrypted chunks) instead of its plain bytes:
   * the tar entry gets `size` bytes from `body`.
   * @defaultValue the file as it is on disk
   */
  fileBody?: (file: ArtifactFile, index: number) => { size: number; body: AsyncIterable<Uint8Array> };
}

/**
 * Streams the tar of an artifact directory whose manifest is `manifestBytes`/`manifest`:
 * `MANIFEST.json`, the directories holding declared files, then every declared file, read
 * from disk with bounded buffers. A file whose size differs from the manifest aborts the
 * stream with `ARTIFACT_INVALID`.
 */
export async function* packArtifact(
  artifactDir: string,
  manifest: ExportManifest,
  manifestBytes: Uint8Array,
  opts: PackOptions = {},
): AsyncGenerator<Uint8Array> {
  const pack = tarStream.pack({ highWaterMark: READ_CHUNK });
  const pool = opts.reuseBuffers === true && opts.fileBody === undefined ? new ChunkPool() : undefined;
  // Failures reach the consumer through the iteration below; without a listener, a destroy
  // while the consumer is between two reads would also surface as an uncaught 'error' event.
  pack.on("error", () => {});
  const mtime = manifest.createdAt;
  const common = { uid: 0, gid: 0, uname: "", gname: "", mtime };

  const addFile = async (
    name: string,
    size: number,
    body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  ): Promise<void> => {
    let entryError: Error | null | undefined;
    let pumping: Promise<void> = Promise.resolve();
    const ended = new Promise<void>((resolvePromise) => {
      const entry = pack.entry({ ...common, name, type: "file", mode: FILE_MODE, size }, (err) => {
        entryError = err;
        resolvePromise();
      });
      // Errors are reported through the pack stream (destroyed below); this keeps them from
      // also surfacing as an unhandled 'error' event of the entry.
      entry.on("error", () => {});
      pumping = (async () => {
        try {
          let written = 0;
          for await (const chunk of body) {
            throwIfAborted(opts.signal, "packing the artifact");
            written += chunk.byteLength;
            if (written > size) throw artifactInvalid(`${name} grew past its declared ${size} bytes while uploading`);
            opts.onBytes?.(chunk.byteLength);
            if (!entry.write(chunk)) await waitEvent(entry as unknown as EventSource, "drain");
          }
          if (written !== size) {
            throw artifactInvalid(`${name} is ${written} bytes; the manifest declares ${size}`);
          }
          entry.end(undefined);
        } catch (err) {
          entry.destroy(err as Error);
          pack.destroy(err as Error);
        }
      })();
    });
    await ended;
    // The body is finished with too (its file closed) before the next file opens.
    await pumping;
    if (entryError) throw entryError;
  };

  const produce = async (): Promise<void> => {
    await addFile(MANIFEST_FILE, manifestBytes.byteLength, [manifestBytes]);
    for (const dir of payloadDirs(manifest)) {
      // A pending entry is destroyed with the pack's error; that error is reported once, by the pack.
      pack.entry({ ...common, name: `${dir}/`, type: "directory", mode: DIR_MODE }).on("error", () => {});
    }
    for (const [index, f] of manifest.files.entries()) {
      if (opts.fileBody) {
        const stored = opts.fileBody(f, index);
        await addFile(f.path, stored.size, stored.body);
        continue;
      }
      const path = join(artifactDir, f.path);
      if (pool) {
        // One byte past the declared size: a file that grew is detected.
        await addFile(f.path, f.size, pooledFile(path, f.size + 1, pool));
        continue;
      }
      // `end` is inclusive: reading one byte past the declared size detects a file that grew.
      const body = createReadStream(path, { start: 0, end: f.size, highWaterMark: READ_CHUNK });
      try {
        await addFile(f.path, f.size, body as AsyncIterable<Uint8Array>);
      } finally {
        body.destroy();
      }
    }
    pack.finalize();
  };

  let finished = false;
  const producing = produce().catch((err: unknown) => {
    pack.destroy(err instanceof Error ? err : new Error(String(err)));
  });
  const onAbort = () => pack.destroy(abortedError(opts.signal, "packing the artifact"));
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for await (const chunk of pack) {
      yield chunk as Uint8Array;
      // The consumer pulled again: it is done with this chunk.
      pool?.release(chunk as Uint8Array);
    }
    finished = true;
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
    if (!finished) pack.destroy();
    await producing;
  }
}

// Files whose fsync may be in flight while the next entries are written.
const MAX_PENDING_SYNCS = 4;

/** fsync + close of written files, a few at a time, overlapping with further writes. */
class SyncQueue {
  readonly #max: number;
  readonly #pending: Promise<void>[] = [];
  #error: unknown;

  constructor(max: number) {
    this.#max = max;
  }

  /** Starts fsync + close of `fh`; waits for the oldest when `max` are in flight. Rethrows a failed fsync. */
  async add(fh: Awaited<ReturnType<typeof open>>): Promise<void> {
    const done = fh
      .sync()
      .finally(() => fh.close())
      .catch((err: unknown) => {
        this.#error ??= err;
      });
    this.#pending.push(done);
    if (this.#pending.length >= this.#max) await this.#pending.shift();
    if (this.#error !== undefined) throw this.#error;
  }

  /** Waits for every fsync; rethrows the first failure. */
  async drain(): Promise<void> {
    await Promise.all(this.#pending.splice(0));
    if (this.#error !== undefined) throw this.#error;
  }
}

/** Options of {@link unpackArtifact}. */
export interface UnpackOptions {
  /** The pointer's manifest: the only entries accepted are the ones it declares. */
  manifest: ExportManifest;
  /** The pointer's bytes; the embedded `MANIFEST.json` must equal them byte for byte. */
  manifestBytes: Uint8Array;
  signal?: AbortSignal;
  /**
   * Called with each chunk of `source` once every byte of it has been handled (decoded, or
   * written and hashed), so its memory may be reused (see `BlobBody.release`).
   */
  release?: (chunk: Uint8Array) => void;
}

function entryPathProblem(name: string): string | undefined {
  if (name.length === 0) return "is empty";
  if (name.includes("\0")) return "contains a NUL byte";
  if (name.includes("\\")) return "contains a backslash";
  if (name.startsWith("/")) return "is absolute";
  for (const seg of name.split("/")) {
    if (seg === "" || seg === "." || seg === "..") return "leaves the artifact (empty, '.' or '..' segment)";
  }
  return undefined;
}

/**
 * Unpacks a tar — a file path, or a byte stream such as a download body, consumed as it
 * arrives (nothing is staged on disk first) — into the existing empty directory `stageDir`.
 * Refuses with `ARTIFACT_INVALID` — before writing the offending entry — anything that is
 * not a regular file or directory, any path that is absolute, has a backslash or a
 * `.`/`..` segment, is not `MANIFEST.json`, `data/` or declared by `manifest`, has a size
 * other than declared, or appears twice; an embedded `MANIFEST.json` that differs from
 * `manifestBytes`; a file whose SHA-256 differs from the declared one (hashed as it is
 * written); and a tar missing the manifest or a declared file. Permissions and times in
 * the tar are ignored. On failure the caller removes `stageDir`.
 */
export async function unpackArtifact(
  source: string | AsyncIterable<Uint8Array>,
  stageDir: string,
  opts: UnpackOptions,
): Promise<void> {
  throwIfAborted(opts.signal, "unpacking the artifact");
  const root = resolve(stageDir);
  const declared = new Map(opts.manifest.files.map((f) => [f.path, f]));
  const dirs = new Set(payloadDirs(opts.manifest));
  const seen = new Set<string>();
  let sawManifest = false;

  const input: AsyncIterable<Uint8Array> & { destroy?: () => void } =
    typeof source === "string" ? createReadStream(source, { highWaterMark: READ_CHUNK }) : source;
  const extract = tarStream.extract();
  extract.on("error", () => {}); // surfaced through the iteration below
  // Chunks fed to the extract and the tar offset each ends at, until every byte of them is
  // handled: tar-stream hands file data on as views of these chunks, and decodes headers.
  const fed: { chunk: Uint8Array; end: number }[] = [];
  let fedBytes = 0;
  const release = opts.release;
  /** Everything before tar offset `offset` is handled: hand back the chunks that end by then. */
  const handled = (offset: number): void => {
    if (release === undefined) return;
    while (fed.length > 0 && (fed[0] as { end: number }).end <= offset)
      release((fed.shift() as { chunk: Uint8Array }).chunk);
  };
  const feeding = (async () => {
    for await (const chunk of input) {
      fedBytes += chunk.byteLength;
      if (release !== undefined) fed.push({ chunk, end: fedBytes });
      if (!extract.write(chunk as Buffer)) await waitEvent(extract as unknown as EventSource, "drain");
    }
    extract.end(undefined);
  })().catch((err: unknown) => {
    extract.destroy(err instanceof Error ? err : new Error(String(err)));
  });
  const onAbort = () => extract.destroy(abortedError(opts.signal, "unpacking the artifact"));
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  const syncing = new SyncQueue(MAX_PENDING_SYNCS);

  try {
    for await (const entry of extract) {
      // If the extract is destroyed (abort) while this entry is not being read, its error
      // must not escape as an uncaught 'error' event; the iteration reports it.
      entry.on("error", () => {});
      const h = entry.header;
      const type = h.type ?? "file";
      const rawName = h.name;
      const name = type === "directory" ? rawName.replace(/\/$/, "") : rawName;
      const shown = JSON.stringify(rawName.slice(0, 200));
      if (type !== "file" && type !== "directory") {
        throw artifactInvalid(`tar entry ${shown} is a ${type}; only regular files and directories are allowed`);
      }
      const problem = entryPathProblem(name);
      if (problem) throw artifactInvalid(`tar entry ${shown} ${problem}`);
      const target = resolve(root, name);
      if (!target.startsWith(root + sep)) throw artifactInvalid(`tar entry ${shown} leaves the artifact`);
      if (seen.has(name)) throw artifactInvalid(`tar entry ${shown} appears twice`);
      seen.add(name);
      const size = h.size ?? 0;
      // Where this entry's data starts in the tar (tar-stream's own bookkeeping); every byte
      // before it — the headers — is decoded.
      const dataAt = (h as { byteOffset?: number }).byteOffset;
      if (dataAt !== undefined) handled(dataAt);

      if (type === "directory") {
        if (!dirs.has(name)) throw artifactInvalid(`tar entry ${shown} is a directory the manifest does not need`);
        if (size !== 0) throw artifactInvalid(`tar directory entry ${shown} has a body`);
        await mkdir(target, { recursive: true });
        entry.resume();
        continue;
      }

      if (name === MANIFEST_FILE) {
        if (size > MAX_MANIFEST_BYTES || size !== opts.manifestBytes.byteLength) {
          throw artifactInvalid("embedded manifest disagrees with the pointer (size differs)");
        }
        const chunks: Uint8Array[] = [];
        for await (const chunk of entry) chunks.push(chunk as Uint8Array);
        const bytes = Buffer.concat(chunks);
        if (dataAt !== undefined) handled(dataAt + size);
        if (!bytes.equals(Buffer.from(opts.manifestBytes))) {
          throw artifactInvalid("embedded manifest disagrees with the pointer");
        }
        const fh = await open(target, "wx", FILE_MODE);
        try {
          await fh.writeFile(bytes);
          await fh.sync();
        } finally {
          await fh.close();
        }
        sawManifest = true;
        continue;
      }

      const file = declared.get(name);
      if (file === undefined) throw artifactInvalid(`tar entry ${shown} is not declared by the manifest`);
      const want = file.size;
      if (size !== want) {
        throw artifactInvalid(`tar entry ${shown} is ${size} bytes; the manifest declares ${want}`);
      }
      await mkdir(dirname(target), { recursive: true });
      const fh = await open(target, "wx", FILE_MODE);
      let handedOff = false;
      try {
        // Hashed as it is written (the hash runs while the write is in flight): a corrupt
        // payload is refused here, while downloading.
        const hash = createHash("sha256");
        let written = 0;
        for await (const raw of entry) {
          const chunk = raw as Uint8Array;
          written += chunk.byteLength;
          if (written > want) throw artifactInvalid(`tar entry ${shown} is longer than declared`);
          const writing = fh.write(chunk);
          hash.update(chunk);
          await writing;
          if (dataAt !== undefined) handled(dataAt + written);
        }
        if (written !== want) throw artifactInvalid(`tar entry ${shown} is truncated`);
        const sha256 = hash.digest("hex");
        if (sha256 !== file.sha256) {
          throw artifactInvalid(
            `payload file ${name} checksum mismatch: expected sha256 ${file.sha256}, found ${sha256}`,
          );
        }
        // The flush to disk overlaps with the next entries (a few files at a time).
        handedOff = true;
        await syncing.add(fh);
      } finally {
        if (!handedOff) await fh.close();
      }
    }
    // A failed fsync fails the unpack.
    await syncing.drain();
  } catch (err) {
    if (SlipstreamError.is(err)) throw err;
    if (opts.signal?.aborted) throw abortedError(opts.signal, "unpacking the artifact");
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === "string" && code.startsWith("E") && code !== "ERR_STREAM_PREMATURE_CLOSE") {
      throw SlipstreamError.wrap(err, "BACKEND", "unpacking the artifact");
    }
    throw artifactInvalid(`payload is not a valid tar: ${(err as Error).message}`, err);
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
    if (typeof input.destroy === "function") input.destroy();
    extract.destroy();
    await feeding;
    // Every file handle is closed whatever happened (a failure is already on its way out).
    await syncing.drain().catch(() => {});
  }

  if (!sawManifest) throw artifactInvalid(`payload has no embedded ${MANIFEST_FILE}`);
  for (const path of declared.keys()) {
    if (!seen.has(path)) throw artifactInvalid(`payload file missing: ${path}`);
  }
  await fsyncPath(root);
}
