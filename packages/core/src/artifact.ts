/**
 * Artifact staging helpers shared by every SnapshotStore backend: hashing, sealing (manifest
 * last, then one atomic rename) and verified import (re-hash while copying into a hidden
 * stage, then one atomic rename). Nothing half-made ever appears at a final path.
 */
import { createHash } from "node:crypto";
import { constants, createReadStream, createWriteStream } from "node:fs";
import { link, lstat, mkdir, open, readdir, rename, rm, rmdir, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { abortedError, forEachConcurrent, throwIfAborted } from "./async.js";
import type { WatchCursor } from "./cursor.js";
import { artifactInvalid, invalidArgument, SlipstreamError } from "./errors.js";
import { assertScopeCovers, foldScopeOf } from "./fold-scope.js";
import { fsyncParent, fsyncPath } from "./fsync.js";
import {
  ARTIFACT_SCHEMA_VERSION,
  encodeManifest,
  exporterProblem,
  MANIFEST_FILE,
  MAX_MANIFEST_BYTES,
  PAYLOAD_DIR,
  parseManifest,
  sortFiles,
} from "./manifest.js";
import { mkdtempOwned, sweepAbandonedTemps } from "./owned-temp.js";
import type { ArtifactFile, ExportManifest, ProgressFn, WatchScope } from "./types.js";

/** Temp-name prefixes, so operators can recognise (and clean) leftovers. */
export const TEMP_PREFIX = {
  artifact: ".slipstream-artifact-",
  import: ".slipstream-import-",
  download: ".slipstream-download-",
  exportRound: ".slipstream-export-round-",
  bootstrap: ".slipstream-bootstrap-",
  replace: ".slipstream-replace-",
} as const;

function ioError(what: string, err: unknown): SlipstreamError {
  return SlipstreamError.wrap(err, "BACKEND", what);
}

/**
 * Every failure leaves as a SlipstreamError: a fired signal → `ABORTED` (whatever Node threw
 * for it), other raw errors (file system) → `BACKEND`.
 */
function typed(err: unknown, signal: AbortSignal | undefined, what: string): SlipstreamError {
  if (SlipstreamError.is(err)) return err;
  if (signal?.aborted) return abortedError(signal, what);
  return ioError(what, err);
}

/** A bad `exporter` option: TypeError for a non-string, `INVALID_ARGUMENT` for a bad string. */
function checkExporter(exporter: unknown): void {
  if (exporter === undefined) return;
  if (typeof exporter !== "string") throw new TypeError("exporter must be a string");
  const problem = exporterProblem(exporter);
  if (problem) throw invalidArgument(`exporter ${JSON.stringify(exporter.slice(0, 80))} ${problem}`);
}

/** Bytes per read of {@link hashFile}. */
const HASH_CHUNK = 1 << 20;
/** Read buffer pairs kept for reuse between {@link hashFile} calls (a few may run at once). */
const spareHashBuffers: Buffer[][] = [];

/**
 * Reads `path` through SHA-256; returns its size and lowercase hex digest. Double-buffered
 * into reused buffers: the next chunk is read on the thread pool while this one is hashed,
 * and no buffer is allocated per chunk (a stream's fresh 1 MiB chunks made the garbage
 * collector a sixth of an export's time).
 */
export async function hashFile(
  path: string,
  opts: { signal?: AbortSignal; onBytes?: (n: number) => void } = {},
): Promise<{ size: number; sha256: string }> {
  const { signal, onBytes } = opts;
  throwIfAborted(signal, `hashing ${path}`);
  const fh = await open(path, "r");
  const buffers = spareHashBuffers.pop() ?? [Buffer.allocUnsafeSlow(HASH_CHUNK), Buffer.allocUnsafeSlow(HASH_CHUNK)];
  let reading: Promise<{ bytesRead: number }> | undefined;
  try {
    const hash = createHash("sha256");
    let size = 0;
    let which = 0;
    reading = fh.read(buffers[0] as Buffer, 0, HASH_CHUNK, 0);
    for (;;) {
      const { bytesRead } = await reading;
      reading = undefined;
      if (bytesRead === 0) break;
      throwIfAborted(signal, `hashing ${path}`);
      const current = buffers[which] as Buffer;
      size += bytesRead;
      which ^= 1;
      reading = fh.read(buffers[which] as Buffer, 0, HASH_CHUNK, size);
      hash.update(current.subarray(0, bytesRead));
      onBytes?.(bytesRead);
    }
    return { size, sha256: hash.digest("hex") };
  } finally {
    // A read still in flight (abort) must finish before its buffer is reused or the file closed.
    await reading?.catch(() => {});
    await fh.close();
    if (spareHashBuffers.length < 4) spareHashBuffers.push(buffers);
  }
}

/**
 * Destination preconditions: absent, or an empty directory. A non-empty directory or a file
 * → `ARTIFACT_INVALID`; a missing parent directory → `ARTIFACT_INVALID`.
 */
export async function checkDestAvailable(destDir: string): Promise<void> {
  const parent = dirname(resolve(destDir));
  try {
    const p = await stat(parent);
    if (!p.isDirectory())
      throw artifactInvalid(`destination ${destDir} has no parent directory (${parent} is not a directory)`);
  } catch (err) {
    if (SlipstreamError.is(err)) throw err;
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw artifactInvalid(`destination ${destDir} has no parent directory (${parent} does not exist)`);
    }
    throw ioError(`checking ${parent}`, err);
  }
  let st: Awaited<ReturnType<typeof lstat>>;
  try {
    st = await lstat(destDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw ioError(`checking destination ${destDir}`, err);
  }
  if (!st.isDirectory()) throw artifactInvalid(`destination ${destDir} already exists and is not a directory`);
  const entries = await readdir(destDir);
  if (entries.length > 0) throw artifactInvalid(`destination ${destDir} exists and is not empty`);
}

/**
 * Moves a finished stage onto `to` in one rename (replacing only an absent target or an
 * empty directory), then fsyncs the parent so the rename is durable. Races fail closed.
 */
export async function renameIntoPlace(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOTEMPTY" || code === "EEXIST" || code === "ENOTDIR" || code === "EISDIR") {
      throw artifactInvalid(`destination ${to} appeared while staging; refusing to replace it`, err);
    }
    throw ioError(`renaming ${from} to ${to}`, err);
  }
  await fsyncParent(to);
}

/** Creates a hidden stage directory beside `destDir` (same filesystem, so rename is atomic). */
export async function createStageBeside(destDir: string, prefix: string): Promise<string> {
  const parent = dirname(resolve(destDir));
  try {
    // A crashed process's stage (same prefix, owner gone) is removed first: it can hold a whole fold.
    await sweepAbandonedTemps(parent, prefix);
    return await mkdtempOwned(parent, prefix);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw artifactInvalid(`destination ${destDir} has no parent directory (${parent} does not exist)`, err);
    }
    throw ioError(`creating a stage beside ${destDir}`, err);
  }
}

/** Walks a payload directory: regular files (relative paths, sorted) and directories. */
async function walkPayload(root: string, rel: string, files: string[], dirs: string[]): Promise<void> {
  const entries = await readdir(join(root, rel), { withFileTypes: true });
  for (const e of entries) {
    const relPath = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) {
      dirs.push(relPath);
      await walkPayload(root, relPath, files, dirs);
    } else if (e.isFile()) {
      files.push(relPath);
    } else {
      throw artifactInvalid(`payload contains a non-regular file: ${relPath}`);
    }
  }
}

/** Lists a payload tree under `dir`: regular files (sorted) and directories; anything else is refused. */
export async function listPayload(dir: string): Promise<{ files: string[]; dirs: string[] }> {
  const files: string[] = [];
  const dirs: string[] = [];
  await walkPayload(dir, "", files, dirs);
  files.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return { files, dirs };
}

async function writeFileDurably(path: string, data: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
  const fh = await open(tmp, "wx");
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

/** Options of {@link sealArtifact}. */
export interface SealOptions {
  backend: string;
  backendVersion: string;
  cursor: WatchCursor;
  /**
   * The key prefixes the payload holds, in canonical form (see `normalizeScope`), written
   * into the manifest; undefined = the whole bucket (no `scope` field).
   */
  scope?: readonly string[] | undefined;
  signal?: AbortSignal;
  onProgress?: ProgressFn;
  /** Clock for createdAt (tests). */
  now?: () => Date;
  /** The manifest's `exporter` (see {@link ExportManifest.exporter}). @defaultValue none */
  exporter?: string;
  /**
   * Hashes one payload file (`path` relative to `data/`, `abs` its location in the stage).
   * A backend whose payload files are immutable (e.g. LevelDB tables linked into the stage)
   * may answer from a cache of its own; the default streams the file through SHA-256.
   */
  hashFile?: (path: string, abs: string, signal: AbortSignal | undefined) => Promise<{ size: number; sha256: string }>;
  /**
   * Payload files (`path` relative to `data/`) whose data is durable already — e.g. hard
   * links to table files LevelDB fsynced when it wrote them — are not fsynced one by one
   * (each such fsync commits the journal for a renamed or linked inode); the directories
   * holding them still are. Every other file is fsynced.
   * @defaultValue none: every file is fsynced
   */
  durable?: (path: string) => boolean;
}

/**
 * Seals a stage whose payload is complete under `stageDir/data`: lists the regular files
 * (anything else → `ARTIFACT_INVALID`), hashes and fsyncs each, fsyncs the directories and
 * writes `MANIFEST.json` last (temp + fsync + rename). The stage stays where it is; move it
 * with {@link renameIntoPlace}.
 */
export async function sealArtifact(stageDir: string, opts: SealOptions): Promise<ExportManifest> {
  checkExporter(opts.exporter);
  try {
    return await sealArtifactUntyped(stageDir, opts);
  } catch (err) {
    throw typed(err, opts.signal, `sealing ${stageDir}`);
  }
}

async function sealArtifactUntyped(stageDir: string, opts: SealOptions): Promise<ExportManifest> {
  const dataDir = join(stageDir, PAYLOAD_DIR);
  await mkdir(dataDir, { recursive: true });
  const { files, dirs } = await listPayload(dataDir);
  let total = 0;
  for (const f of files) total += (await stat(join(dataDir, f))).size;
  const manifestFiles: ArtifactFile[] = [];
  let done = 0;
  for (const f of files) {
    throwIfAborted(opts.signal, "artifact seal");
    const abs = join(dataDir, f);
    const { size, sha256 } = opts.hashFile
      ? await opts.hashFile(f, abs, opts.signal)
      : await hashFile(abs, { signal: opts.signal });
    if (opts.durable?.(f) !== true) await fsyncPath(abs);
    manifestFiles.push({ path: `${PAYLOAD_DIR}/${f}`, size, sha256 });
    done += size;
    opts.onProgress?.({ phase: "seal", bytesDone: done, bytesTotal: total });
  }
  for (const d of dirs) await fsyncPath(join(dataDir, d));
  await fsyncPath(dataDir);
  const manifest: ExportManifest = {
    schemaVersion: ARTIFACT_SCHEMA_VERSION,
    backend: opts.backend,
    backendVersion: opts.backendVersion,
    cursor: opts.cursor,
    ...(opts.scope !== undefined ? { scope: [...opts.scope] } : {}),
    createdAt: opts.now?.() ?? new Date(),
    ...(opts.exporter !== undefined ? { exporter: opts.exporter } : {}),
    files: sortFiles(manifestFiles),
  };
  // Invariant 5: the manifest is written last; an artifact with a manifest is complete.
  await writeFileDurably(join(stageDir, MANIFEST_FILE), encodeManifest(manifest));
  await fsyncPath(stageDir);
  return manifest;
}

/** Options of {@link exportArtifact}. */
export interface ExportArtifactOptions extends SealOptions {
  /** Writes the backend's payload into `dataDir` (which exists and is empty). */
  writePayload: (dataDir: string) => Promise<void>;
  /** Re-opens the sealed stage and checks it against the live store before it is published. */
  verifyStaged?: (stageDir: string, manifest: ExportManifest) => Promise<void>;
}

/**
 * The whole export path of a backend: check the destination, stage beside it, write the
 * payload, seal, verify, re-check the destination, one atomic rename. On any failure the
 * stage is removed and nothing appears at `destDir`.
 */
export async function exportArtifact(destDir: string, opts: ExportArtifactOptions): Promise<ExportManifest> {
  // Checked before anything is staged: a bad exporter must not cost an export.
  checkExporter(opts.exporter);
  try {
    return await exportArtifactUntyped(destDir, opts);
  } catch (err) {
    throw typed(err, opts.signal, `export to ${destDir}`);
  }
}

async function exportArtifactUntyped(destDir: string, opts: ExportArtifactOptions): Promise<ExportManifest> {
  await checkDestAvailable(destDir);
  const stage = await createStageBeside(destDir, TEMP_PREFIX.artifact);
  try {
    const dataDir = join(stage, PAYLOAD_DIR);
    await mkdir(dataDir);
    await opts.writePayload(dataDir);
    throwIfAborted(opts.signal, "export");
    const manifest = await sealArtifact(stage, opts);
    await opts.verifyStaged?.(stage, manifest);
    await checkDestAvailable(destDir);
    await renameIntoPlace(stage, destDir);
    return manifest;
  } catch (err) {
    await rm(stage, { recursive: true, force: true });
    throw err;
  }
}

/** Reads and strictly parses `dir/MANIFEST.json` (capped at 1 MiB); returns it and its bytes. */
export async function readManifest(dir: string): Promise<{ manifest: ExportManifest; bytes: Uint8Array }> {
  const path = join(dir, MANIFEST_FILE);
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    // O_NOFOLLOW: a symlinked manifest could point anywhere; an artifact holds regular files only.
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw artifactInvalid(`no ${MANIFEST_FILE} in ${dir}`, err);
    if (code === "ELOOP") throw artifactInvalid(`${path} is a symlink, not a regular file`, err);
    throw ioError(`opening ${path}`, err);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw artifactInvalid(`${path} is not a regular file`);
    if (st.size > MAX_MANIFEST_BYTES) {
      throw artifactInvalid(`manifest ${path} is ${st.size} bytes; it exceeds ${MAX_MANIFEST_BYTES} bytes`);
    }
    const buf = Buffer.alloc(MAX_MANIFEST_BYTES + 1);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const bytes = new Uint8Array(buf.subarray(0, bytesRead));
    return { manifest: parseManifest(bytes), bytes };
  } finally {
    await fh.close();
  }
}

/** Options of {@link verifyAndStageImport}. */
export interface StageImportOptions {
  /** Accepts the manifest's backend and format generation or throws `ARTIFACT_INVALID`. */
  checkBackend: (manifest: ExportManifest) => void;
  /**
   * The scope of the node importing: the artifact's scope must cover it, else
   * `SCOPE_NOT_COVERED` before anything is staged. Keeping only the keys of this scope is
   * the backend's work (in `verifyStaged`, after every hash was checked).
   * @defaultValue the whole bucket (a partial artifact is refused)
   */
  scope?: WatchScope;
  /**
   * Opens the staged fold (the payload's `data/` contents at the stage root) and checks its
   * cursor equals the manifest's; throw `ARTIFACT_INVALID` to refuse.
   */
  verifyStaged?: (stageDir: string, manifest: ExportManifest) => Promise<void>;
  signal?: AbortSignal;
  onProgress?: ProgressFn;
  /**
   * How each payload file reaches the stage. `"copy"` byte-copies it while hashing (the
   * artifact is left as it was and shares nothing with the result). `"link"` hard-links the
   * files {@link StageImportOptions.linkable} accepts (files the backend never writes again)
   * and copies the rest: the artifact may be deleted afterwards but must not be rewritten in
   * place. `"move"` renames every file into the stage: the artifact directory is scratch and
   * is consumed (left partly emptied, whatever the outcome). Linked and moved files are hashed
   * once, in the stage; across filesystems both fall back to `"copy"`.
   * @defaultValue "copy"
   */
  transfer?: ImportTransfer;
  /** Which payload files (paths relative to `data/`) may be hard-linked under `transfer: "link"`. */
  linkable?: (path: string) => boolean;
  /**
   * With `transfer: "move"` only: the caller wrote every payload file itself into a private
   * scratch directory and checked its SHA-256 against this very manifest as it wrote it
   * (what `importRemote`'s streamed download does), so the files are moved without a second
   * hashing pass. Sizes, paths and the declared set are still checked, and a move that
   * falls back to a copy still hashes. Never set it for an artifact you did not verify.
   * @defaultValue false
   */
  hashesVerified?: boolean;
  /**
   * With `transfer: "move"` only: every payload file's data is already durable (fsynced by
   * whoever wrote it, as `importRemote`'s download does), so moved files are not fsynced one
   * by one; the stage's directories still are, so the moves are durable. A move that falls
   * back to a copy still fsyncs the copy.
   * @defaultValue false
   */
  durable?: boolean;
}

/** How {@link verifyAndStageImport} brings payload files into the stage. */
export type ImportTransfer = "copy" | "link" | "move";

const CROSS_DEVICE = new Set(["EXDEV", "EPERM", "ENOTSUP", "EOPNOTSUPP", "EMLINK"]);

/**
 * Links or renames `from` to `to` (`how`), then hashes the result once. Returns undefined
 * where the filesystem cannot do it (another device, no permission): the caller copies.
 */
async function placeHashing(
  how: "link" | "move",
  from: string,
  to: string,
  signal: AbortSignal | undefined,
  onBytes: (n: number) => void,
  known: { size: number; sha256: string } | undefined,
): Promise<{ size: number; sha256: string } | undefined> {
  try {
    if (how === "link") await link(from, to);
    else await rename(from, to);
  } catch (err) {
    if (CROSS_DEVICE.has((err as NodeJS.ErrnoException).code ?? "")) return undefined;
    throw err;
  }
  // Hashed already by whoever wrote the file (see StageImportOptions.hashesVerified).
  if (known !== undefined) {
    onBytes(known.size);
    return known;
  }
  return hashFile(to, { ...(signal ? { signal } : {}), onBytes });
}

/** Copies `from` to `to` while hashing; returns size and digest. */
async function copyHashing(from: string, to: string, signal: AbortSignal | undefined, onBytes: (n: number) => void) {
  const hash = createHash("sha256");
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
  await pipeline(createReadStream(from, { highWaterMark: 1 << 20 }), tap, createWriteStream(to, { flags: "wx" }), {
    signal,
  });
  await fsyncPath(to);
  return { size, sha256: hash.digest("hex") };
}

/** Payload files placed at once by an import (moves are a rename each; copies stream). */
const IMPORT_CONCURRENCY = 8;

/**
 * Verified import: reads the manifest strictly, checks backend/format through
 * `checkBackend`, checks the destination, refuses undeclared or non-regular files, copies
 * every declared file into a hidden stage beside `destDir` while re-hashing it (size and
 * SHA-256 must match), lets the backend open the staged copy (`verifyStaged`), re-checks
 * the destination and renames the stage into place. The stage holds the contents of the
 * artifact's `data/` at its root. Any failure removes the stage; nothing appears at `destDir`.
 */
export async function verifyAndStageImport(
  artifactDir: string,
  destDir: string,
  opts: StageImportOptions,
): Promise<ExportManifest> {
  const transfer = opts.transfer ?? "copy";
  if (transfer !== "copy" && transfer !== "link" && transfer !== "move") {
    throw new TypeError('transfer must be "copy", "link" or "move"');
  }
  try {
    return await verifyAndStageImportUntyped(artifactDir, destDir, opts);
  } catch (err) {
    throw typed(err, opts.signal, `import of ${artifactDir}`);
  }
}

async function verifyAndStageImportUntyped(
  artifactDir: string,
  destDir: string,
  opts: StageImportOptions,
): Promise<ExportManifest> {
  const { manifest } = await readManifest(artifactDir);
  opts.checkBackend(manifest);
  assertScopeCovers(manifest.scope, opts.scope === undefined ? undefined : foldScopeOf(opts.scope), "the artifact");
  await checkDestAvailable(destDir);

  // Every file in the artifact must be declared (and regular); only MANIFEST.json and data/ at the top.
  const top = await readdir(artifactDir, { withFileTypes: true });
  for (const e of top) {
    if (e.name === MANIFEST_FILE) continue;
    if (e.name === PAYLOAD_DIR && e.isDirectory()) continue;
    if (e.name === PAYLOAD_DIR) throw artifactInvalid(`payload contains a non-regular file: ${PAYLOAD_DIR}`);
    throw artifactInvalid(`payload contains undeclared file: ${e.name}`);
  }
  const declared = new Map(manifest.files.map((f) => [f.path, f]));
  let present: string[] = [];
  try {
    present = (await listPayload(join(artifactDir, PAYLOAD_DIR))).files.map((f) => `${PAYLOAD_DIR}/${f}`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  for (const p of present) {
    if (!declared.has(p)) throw artifactInvalid(`payload contains undeclared file: ${p}`);
  }
  const presentSet = new Set(present);
  for (const f of manifest.files) {
    if (!presentSet.has(f.path)) throw artifactInvalid(`payload file missing: ${f.path}`);
  }

  const transfer = opts.transfer ?? "copy";
  // Only files moved out of a scratch download skip the second hash; a copy always hashes.
  const trusted = opts.hashesVerified === true && transfer === "move";
  const synced = opts.durable === true && transfer === "move";
  // Directories that received moved files without a per-file fsync.
  const movedInto = new Set<string>();
  const total = manifest.files.reduce((n, f) => n + f.size, 0);
  let done = 0;
  const stage = await createStageBeside(destDir, TEMP_PREFIX.import);
  try {
    // Several files at once: each one is a few filesystem calls (a rename when moving) that
    // would otherwise wait for each other's round trip to the thread pool.
    await forEachConcurrent(manifest.files, IMPORT_CONCURRENCY, async (f) => {
      throwIfAborted(opts.signal, "import");
      const rel = f.path.slice(PAYLOAD_DIR.length + 1);
      const src = join(artifactDir, f.path);
      const st = await lstat(src);
      if (!st.isFile()) throw artifactInvalid(`payload contains a non-regular file: ${f.path}`);
      if (st.size !== f.size) {
        throw artifactInvalid(`payload file ${f.path} is ${st.size} bytes; the manifest declares ${f.size}`);
      }
      const dst = join(stage, rel);
      await mkdir(dirname(dst), { recursive: true });
      const onBytes = (n: number) => {
        done += n;
        opts.onProgress?.({ phase: "import", bytesDone: done, bytesTotal: total });
      };
      const how = transfer === "link" && !(opts.linkable?.(rel) ?? false) ? "copy" : transfer;
      const placed =
        how === "copy"
          ? undefined
          : await placeHashing(
              how,
              src,
              dst,
              opts.signal,
              onBytes,
              trusted ? { size: st.size, sha256: f.sha256 } : undefined,
            );
      // A copy (also the fallback across filesystems) is fsynced by copyHashing. A moved file
      // whose data is durable already needs only its new directory fsynced (below).
      const got = placed ?? (await copyHashing(src, dst, opts.signal, onBytes));
      if (placed !== undefined) {
        if (how === "move" && synced) {
          // The directory it landed in and every one between it and the stage (their entries).
          for (let d = dirname(dst); d !== stage && d.startsWith(stage); d = dirname(d)) movedInto.add(d);
        } else await fsyncPath(dst);
      }
      if (got.size !== f.size) {
        throw artifactInvalid(`payload file ${f.path} changed size while copying (${got.size} ≠ ${f.size})`);
      }
      if (got.sha256 !== f.sha256) {
        throw artifactInvalid(
          `payload file ${f.path} checksum mismatch: expected sha256 ${f.sha256}, found ${got.sha256}; the artifact is corrupt — re-download it or recover from another node at cursor ${manifest.cursor.toHex() || "none"}`,
        );
      }
    });
    for (const dir of movedInto) await fsyncPath(dir);
    await fsyncPath(stage);
    await opts.verifyStaged?.(stage, manifest);
    await checkDestAvailable(destDir);
    await renameIntoPlace(stage, destDir);
    return manifest;
  } catch (err) {
    await rm(stage, { recursive: true, force: true });
    throw err;
  }
}

/** Removes `dir` if it is an empty directory; returns whether it did. */
export async function removeIfEmptyDir(dir: string): Promise<boolean> {
  try {
    await rmdir(dir);
    return true;
  } catch {
    return false;
  }
}

/** The error a backend raises when a staged copy's cursor disagrees with its manifest. */
export function cursorMismatch(found: WatchCursor, manifest: ExportManifest): SlipstreamError {
  return artifactInvalid(
    `payload cursor ${found.toHex() || "none"} disagrees with manifest cursor ${manifest.cursor.toHex() || "none"}`,
  );
}

/** A backend check for {@link StageImportOptions.checkBackend}: exact backend id and one of the accepted versions. */
export function expectBackend(backend: string, versions: readonly string[]): (m: ExportManifest) => void {
  return (m) => {
    if (m.backend !== backend) {
      throw artifactInvalid(`artifact backend is ${JSON.stringify(m.backend)}; expected ${JSON.stringify(backend)}`);
    }
    if (!versions.includes(m.backendVersion)) {
      throw artifactInvalid(
        `artifact backendVersion ${JSON.stringify(m.backendVersion)} of ${backend} is not readable here (reads ${versions.join(", ")})`,
      );
    }
  };
}
