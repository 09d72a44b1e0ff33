/**
 * Bootstrap of a node from the published artifact: download, verified import, and the
 * store is ready to resume its watch from the artifact's cursor (delta only). Also the
 * replacement of an existing fold by an artifact (e.g. after its cursor expired), behind
 * the mass-delete guard.
 */
import { mkdir, rename, rm } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import {
  askMassDelete,
  assertScopeCovers,
  checkDestAvailable,
  type FoldScope,
  fsyncParent,
  type Logger,
  type MassDeleteGuard,
  type MassDeleteInfo,
  massDeleteTrips,
  mkdtempOwned,
  type ProgressFn,
  resolveImportScope,
  resolveMassDeleteGuard,
  SlipstreamError,
  type SnapshotStore,
  silentLogger,
  sweepAbandonedTemps,
  TEMP_PREFIX,
  throwIfAborted,
  type WatchScope,
} from "@slipstream/core";
import type { ArtifactTransport } from "./artifact-transport.js";

/**
 * What {@link importRemote} tells its `open`: the downloaded artifact directory is private
 * scratch, deleted right after `open` returns, so the importer may move its files into the
 * store (`transfer: "move"`) instead of copying them; every payload file's SHA-256 was
 * checked against the artifact's manifest while the download wrote it (`hashesVerified`),
 * so a move needs no second hashing pass; every payload file was fsynced by the download
 * (`durable`), so a move need not fsync each file again; and `scope`, the node's scope when
 * one was given. Pass them on: `(dir, dest, hints) => LevelSnapshotStore.import(dir, dest, hints)`.
 */
export interface ImportRemoteHints {
  readonly transfer: "move";
  readonly hashesVerified: true;
  readonly durable: true;
  /** {@link ImportRemoteOptions.scope}: the import keeps only these keys. */
  readonly scope?: WatchScope;
}

/** Replacing an existing fold with the artifact (see {@link ImportRemoteOptions.replace}). */
export interface ImportReplaceOptions<S extends SnapshotStore = SnapshotStore> {
  /**
   * The fold now at `destDir`, open. Its keys in scope are counted for the mass-delete
   * guard; it is closed by `importRemote` right before the swap (and left open, untouched,
   * when the import is refused or fails). Stop any watch that commits into it first.
   */
  current: SnapshotStore;
  /** Opens the new fold at `destDir` after the swap, e.g. `(dir) => LevelSnapshotStore.open(dir)`. */
  reopen: (destDir: string) => Promise<S>;
  /**
   * The mass-delete guard of the replacement (the same options as `watchApplied`'s): when
   * the artifact holds fewer keys in scope than the current fold, by more than `maxShare`
   * of the fold and at least `minKeys`, the import is refused with `MASS_DELETE_REFUSED`
   * and the current fold stays as it was (unless `onMassDelete` returns true). `false`
   * turns the guard off.
   * @defaultValue `{ maxShare: 0.5, minKeys: 100 }`
   */
  massDelete?: MassDeleteGuard | false;
}

/** Options of {@link importRemote}. */
export interface ImportRemoteOptions<S extends SnapshotStore = SnapshotStore> {
  /** `manifest`, when present, lets a scope check refuse an artifact before its payload is fetched. */
  transport: Pick<ArtifactTransport, "download"> & Partial<Pick<ArtifactTransport, "manifest">>;
  /** The artifact key under the transport's prefix. */
  key: string;
  /** A local directory for the transient download (created if missing). */
  scratchDir: string;
  /**
   * Where the store is created (absent or empty) — or, with {@link ImportRemoteOptions.replace},
   * the directory of the fold to replace.
   */
  destDir: string;
  /**
   * The store's verified import, e.g. `LevelSnapshotStore.import` or
   * `MemorySnapshotStore.import`: re-checks every size and hash before anything appears at
   * `destDir`. `hints` says the artifact directory is scratch (see {@link ImportRemoteHints});
   * pass it on where the import takes it: `(dir, dest, hints) => LevelSnapshotStore.import(dir, dest, hints)`.
   */
  open: (artifactDir: string, destDir: string, hints: ImportRemoteHints) => Promise<S>;
  /**
   * The scope the node watches. The artifact's scope must cover it (`SCOPE_NOT_COVERED`
   * otherwise, nothing written); the import keeps only its keys (passed to `open` as
   * `hints.scope`). Resume the watch with this same scope from the store's cursor.
   * @defaultValue the whole bucket
   */
  scope?: WatchScope;
  /**
   * Replace the fold at `destDir` instead of creating one: the artifact is imported beside
   * it, the keys in scope of both are counted and the mass-delete guard decides; then the
   * current fold is closed, the new one renamed into its place and reopened. A refusal or
   * any failure leaves the current fold as it was and nothing behind.
   */
  replace?: ImportReplaceOptions<S>;
  signal?: AbortSignal;
  onProgress?: ProgressFn;
  logger?: Logger;
}

/**
 * Downloads the artifact published under `key` into
 * `<scratchDir>/.slipstream-bootstrap-*` /artifact, imports it with `open` and always
 * deletes the download. Returns the opened store; resume the watch from its `cursor`. A
 * chunked download interrupted here resumes on the next call with the same `scratchDir`.
 *
 * @throws SlipstreamError `SCOPE_NOT_COVERED` when the artifact's scope does not cover
 *   `scope`; `MASS_DELETE_REFUSED` when a replacement trips the guard; `ARTIFACT_INVALID`
 *   for a bad artifact or an occupied `destDir` (without `replace`).
 */
export async function importRemote<S extends SnapshotStore>(opts: ImportRemoteOptions<S>): Promise<S> {
  throwIfAborted(opts.signal, "import");
  const keep = resolveImportScope(opts.scope);
  const guard = opts.replace ? resolveMassDeleteGuard(opts.replace.massDelete, "replace.massDelete") : undefined;
  // Refuse an occupied destination before moving any bytes (the import checks it again).
  if (!opts.replace) await checkDestAvailable(opts.destDir);
  // The pointer alone tells whether the artifact covers a scoped node: refuse before the
  // payload moves (every import checks the downloaded manifest again below).
  if (opts.scope !== undefined && opts.transport.manifest) {
    const remote = await opts.transport.manifest(opts.key, { signal: opts.signal });
    assertScopeCovers(remote.scope, keep, `artifact ${opts.key}`);
  }
  await mkdir(opts.scratchDir, { recursive: true });
  // A download left by a crashed process holds a whole artifact: remove it.
  await sweepAbandonedTemps(opts.scratchDir, TEMP_PREFIX.bootstrap);
  const work = await mkdtempOwned(opts.scratchDir, TEMP_PREFIX.bootstrap);
  const hints: ImportRemoteHints = {
    transfer: "move",
    hashesVerified: true,
    durable: true,
    ...(opts.scope !== undefined ? { scope: opts.scope } : {}),
  };
  try {
    const artifactDir = join(work, "artifact");
    // The resume stage of a chunked download lives in scratchDir itself (not in this run's
    // work folder), so a bootstrap killed half-way resumes on the next start.
    const manifest = await opts.transport.download(opts.key, artifactDir, {
      signal: opts.signal,
      onProgress: opts.onProgress,
      resumeDir: opts.scratchDir,
    });
    assertScopeCovers(manifest.scope, keep, `artifact ${opts.key}`);
    throwIfAborted(opts.signal, "import");
    if (!opts.replace) return await opts.open(artifactDir, opts.destDir, hints);
    return await replaceFold(opts, opts.replace, guard, keep, artifactDir, hints);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Keys of `store` within `scope`; O(1) through a `count()` the store may offer for the whole bucket. */
async function countInScope(store: SnapshotStore, scope: FoldScope, signal: AbortSignal | undefined): Promise<number> {
  const counted = store as SnapshotStore & { count?: () => Promise<number> };
  const held = store.scope;
  if (scope === undefined && held === undefined && typeof counted.count === "function") return counted.count();
  let n = 0;
  for (const prefix of scope ?? [""]) {
    for await (const _ of store.range(prefix)) {
      if (++n % 4096 === 0) throwIfAborted(signal, "import");
    }
  }
  return n;
}

/**
 * Imports beside the current fold (same filesystem), applies the guard, then swaps: the
 * current fold is closed and moved aside, the new one renamed into `destDir`, the old one
 * removed. Between the two renames `destDir` is briefly absent: a crash there leaves the
 * node with no fold (a fresh state-sync, correct but slow), never with a mixed one.
 */
async function replaceFold<S extends SnapshotStore>(
  opts: ImportRemoteOptions<S>,
  replace: ImportReplaceOptions<S>,
  guard: ReturnType<typeof resolveMassDeleteGuard>,
  keep: FoldScope,
  artifactDir: string,
  hints: ImportRemoteHints,
): Promise<S> {
  const log = opts.logger ?? silentLogger;
  const dest = resolve(opts.destDir);
  const parent = dirname(dest);
  await sweepAbandonedTemps(parent, TEMP_PREFIX.replace);
  const side = await mkdtempOwned(parent, TEMP_PREFIX.replace);
  try {
    const fresh = await opts.open(artifactDir, join(side, "fold"), hints);
    let incoming: number;
    let existing: number;
    try {
      incoming = await countInScope(fresh, keep, opts.signal);
      existing = await countInScope(replace.current, keep, opts.signal);
      const dropped = existing - incoming;
      if (guard && massDeleteTrips(guard, dropped, existing)) {
        const info: MassDeleteInfo = {
          source: "import",
          deletes: dropped,
          foldKeys: existing,
          liveKeys: incoming,
          cursor: replace.current.cursor,
          sample: [],
        };
        const { allowed, hookError } = await askMassDelete(guard, info);
        log.warn(allowed ? "mass delete by import allowed by onMassDelete" : "mass delete by import refused", {
          key: opts.key,
          cursor: replace.current.cursor.toHex(),
          deletes: dropped,
          foldKeys: existing,
          artifactKeys: incoming,
        });
        if (!allowed) {
          throw new SlipstreamError(
            "MASS_DELETE_REFUSED",
            `artifact ${opts.key} holds ${incoming} keys in scope; the fold it would replace holds ${existing}: ${dropped} keys (more than ${Math.round(guard.maxShare * 100)}%) would go. Refused, the fold is unchanged. To replace it anyway, allow it with replace.massDelete.onMassDelete`,
            hookError === undefined ? undefined : { cause: hookError },
          );
        }
      }
    } finally {
      await fresh.close();
    }
    throwIfAborted(opts.signal, "import");
    await replace.current.close();
    try {
      await rename(dest, join(side, "previous"));
    } catch (err) {
      throw SlipstreamError.wrap(err, "BACKEND", `moving the current fold ${dest} aside`);
    }
    try {
      await rename(join(side, "fold"), dest);
    } catch (err) {
      // Put the previous fold back: the node keeps what it had.
      await rename(join(side, "previous"), dest).catch(() => {});
      throw SlipstreamError.wrap(err, "BACKEND", `moving the imported fold into ${dest}`);
    }
    await fsyncParent(dest);
    log.info("replaced the fold with an artifact", {
      key: opts.key,
      dir: dest,
      foldKeys: existing,
      artifactKeys: incoming,
    });
  } finally {
    await rm(side, { recursive: true, force: true });
  }
  return replace.reopen(opts.destDir);
}
