/**
 * Bootstrap of a new node from the published artifact: download, verified import, and the
 * store is ready to resume its watch from the artifact's cursor (delta only).
 */
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import {
  checkDestAvailable,
  mkdtempOwned,
  type ProgressFn,
  type SnapshotStore,
  sweepAbandonedTemps,
  TEMP_PREFIX,
  throwIfAborted,
} from "@slipstream/core";
import type { ArtifactTransport } from "./artifact-transport.js";

/**
 * What {@link importRemote} tells its `open`: the downloaded artifact directory is private
 * scratch, deleted right after `open` returns, so the importer may move its files into the
 * store (`transfer: "move"`) instead of copying them; and every payload file's SHA-256 was
 * checked against the artifact's manifest while the download wrote it (`hashesVerified`),
 * so a move needs no second hashing pass. Pass them on:
 * `(dir, dest, hints) => LevelSnapshotStore.import(dir, dest, hints)`.
 */
export interface ImportRemoteHints {
  readonly transfer: "move";
  readonly hashesVerified: true;
}

/** Options of {@link importRemote}. */
export interface ImportRemoteOptions<S extends SnapshotStore = SnapshotStore> {
  transport: Pick<ArtifactTransport, "download">;
  /** The artifact key under the transport's prefix. */
  key: string;
  /** A local directory for the transient download (created if missing). */
  scratchDir: string;
  /** Where the store is created (absent or empty). */
  destDir: string;
  /**
   * The store's verified import, e.g. `LevelSnapshotStore.import` or
   * `MemorySnapshotStore.import`: re-checks every size and hash before anything appears at
   * `destDir`. `hints` says the artifact directory is scratch (see {@link ImportRemoteHints});
   * pass it on where the import takes it: `(dir, dest, hints) => LevelSnapshotStore.import(dir, dest, hints)`.
   */
  open: (artifactDir: string, destDir: string, hints: ImportRemoteHints) => Promise<S>;
  signal?: AbortSignal;
  onProgress?: ProgressFn;
}

/**
 * Downloads the artifact published under `key` into
 * `<scratchDir>/.slipstream-bootstrap-*` /artifact, imports it with `open` and always
 * deletes the download. Returns the opened store; resume the watch from its `cursor`. A
 * chunked download interrupted here resumes on the next call with the same `scratchDir`.
 */
export async function importRemote<S extends SnapshotStore>(opts: ImportRemoteOptions<S>): Promise<S> {
  throwIfAborted(opts.signal, "import");
  // Refuse an occupied destination before moving any bytes (the import checks it again).
  await checkDestAvailable(opts.destDir);
  await mkdir(opts.scratchDir, { recursive: true });
  // A download left by a crashed process holds a whole artifact: remove it.
  await sweepAbandonedTemps(opts.scratchDir, TEMP_PREFIX.bootstrap);
  const work = await mkdtempOwned(opts.scratchDir, TEMP_PREFIX.bootstrap);
  try {
    const artifactDir = join(work, "artifact");
    // The resume stage of a chunked download lives in scratchDir itself (not in this run's
    // work folder), so a bootstrap killed half-way resumes on the next start.
    await opts.transport.download(opts.key, artifactDir, {
      signal: opts.signal,
      onProgress: opts.onProgress,
      resumeDir: opts.scratchDir,
    });
    throwIfAborted(opts.signal, "import");
    return await opts.open(artifactDir, opts.destDir, { transfer: "move", hashesVerified: true });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
