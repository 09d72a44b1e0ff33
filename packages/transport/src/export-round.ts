/**
 * One export round of a fleet: the node that wins the lease exports its fold, uploads it
 * and records the outcome in the lease; every other node skips. The lease only
 * de-duplicates work — safety comes from the monotonic pointer (invariant 6).
 */
import { mkdir, rm } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import {
  type ExportManifest,
  exporterProblem,
  invalidArgument,
  type Logger,
  mkdtempOwned,
  type ProgressFn,
  SlipstreamError,
  silentLogger,
  sweepAbandonedTemps,
  TEMP_PREFIX,
  throwIfAborted,
  type WatchCursor,
  type WatchScope,
} from "@slipstream/core";
import type { ArtifactTransport } from "./artifact-transport.js";

/** The held lease of a round (structurally, `LeaseGuard` of `@slipstream/lease`). */
export interface RoundLeaseGuard {
  /** Records the round's outcome; what it resolves to is ignored. */
  complete(cursor: WatchCursor, opts?: { signal?: AbortSignal }): Promise<unknown>;
  /** Releases the lease early so the next round need not wait for it to expire. */
  abandon(): Promise<unknown>;
}

/** The lease a round competes for (structurally, `ExportLease` of `@slipstream/lease`). */
export interface RoundLease {
  tryAcquire(ttlMs: number, opts?: { signal?: AbortSignal }): Promise<RoundLeaseGuard | undefined>;
}

/** What exports the fold (structurally, `AppliedWatch` of `@slipstream/fold`). */
export interface RoundExporter {
  requestExport(
    destDir: string,
    opts?: { signal?: AbortSignal; onProgress?: ProgressFn; exporter?: string; scope?: WatchScope },
  ): Promise<ExportManifest>;
}

/** Options of {@link runExportRound}. */
export interface ExportRoundOptions {
  lease: RoundLease;
  /** Lease time-to-live = the round period; payloads are pruned after 4 × ttl. */
  ttlMs: number;
  fold: RoundExporter;
  transport: Pick<ArtifactTransport, "upload" | "prune">;
  /** The artifact key under the transport's prefix. */
  key: string;
  /** A local directory for the transient artifact (created if missing). */
  scratchDir: string;
  /**
   * Who exports, recorded as the manifest's `exporter` (at most 256 printable characters;
   * else `INVALID_ARGUMENT` before the lease is tried), or `false` to record none. Operators
   * see it in `slipstream artifacts`. @defaultValue {@link defaultExporter}: `<host name>:<pid>`
   */
  exporter?: string | false;
  /**
   * Publish a partial artifact of only these prefixes (its manifest records the scope);
   * the fold must hold them (`SCOPE_NOT_COVERED` otherwise). Nodes watching a scope within
   * it can bootstrap from it.
   * @defaultValue everything the fold holds
   */
  scope?: WatchScope;
  signal?: AbortSignal;
  logger?: Logger;
  onProgress?: ProgressFn;
}

/**
 * This process as an exporter: `<host name>:<pid>`, read from the OS at call time (never
 * configured), with the host name cut to keep the whole within the 256-character limit.
 * A host name that is not printable gives `pid <pid>`.
 */
export function defaultExporter(): string {
  const id = `${hostname().slice(0, 200)}:${process.pid}`;
  return exporterProblem(id) === undefined ? id : `pid ${process.pid}`;
}

/** What {@link runExportRound} did. */
export type ExportRoundResult =
  | { readonly outcome: "skipped" }
  | {
      readonly outcome: "published" | "superseded";
      readonly cursor: WatchCursor;
      readonly manifest: ExportManifest;
    };

/**
 * Runs one export round: acquire the lease (another holder → `{ outcome: "skipped" }`),
 * export the fold into `<scratchDir>/.slipstream-export-round-*` /artifact, upload it,
 * record the cursor in the lease (also when a newer artifact superseded ours), prune
 * payloads older than 4 × ttl when ours was published, and delete the local artifact. A
 * failure after winning abandons the lease (so the next round need not wait for it to
 * expire), removes the local artifact and is rethrown.
 */
export async function runExportRound(opts: ExportRoundOptions): Promise<ExportRoundResult> {
  const log = opts.logger ?? silentLogger;
  if (!(opts.ttlMs > 0)) throw new TypeError("ttlMs must be a positive number");
  const exporter = opts.exporter === undefined ? defaultExporter() : opts.exporter;
  if (exporter !== false) {
    if (typeof exporter !== "string") throw new TypeError("exporter must be a string or false");
    const problem = exporterProblem(exporter);
    if (problem) throw invalidArgument(`exporter ${JSON.stringify(exporter.slice(0, 80))} ${problem}`);
  }
  throwIfAborted(opts.signal, "export round");
  let guard: RoundLeaseGuard | undefined;
  try {
    guard = await opts.lease.tryAcquire(opts.ttlMs, { signal: opts.signal });
  } catch (err) {
    throw SlipstreamError.wrap(err, "BACKEND", "export lease");
  }
  if (!guard) {
    log.debug("export round skipped: another node holds the lease", { key: opts.key });
    return { outcome: "skipped" };
  }

  let roundDir: string | undefined;
  try {
    await mkdir(opts.scratchDir, { recursive: true });
    // A round dir left by a crashed process holds a whole exported fold: remove it.
    await sweepAbandonedTemps(opts.scratchDir, TEMP_PREFIX.exportRound);
    roundDir = await mkdtempOwned(opts.scratchDir, TEMP_PREFIX.exportRound);
    const artifactDir = join(roundDir, "artifact");
    const exported = await opts.fold.requestExport(artifactDir, {
      signal: opts.signal,
      onProgress: opts.onProgress,
      ...(exporter !== false ? { exporter } : {}),
      ...(opts.scope !== undefined ? { scope: opts.scope } : {}),
    });
    const uploaded = await opts.transport.upload(opts.key, artifactDir, {
      signal: opts.signal,
      onProgress: opts.onProgress,
    });
    const cursor = uploaded.cursor;
    if (!cursor.equals(exported.cursor)) {
      throw new SlipstreamError(
        "ARTIFACT_INVALID",
        `uploaded cursor ${cursor.toHex()} differs from the exported ${exported.cursor.toHex()}`,
      );
    }
    // The round is done; what follows must not undo it, so its failures are only logged.
    try {
      await guard.complete(cursor, { signal: opts.signal });
    } catch (err) {
      log.warn("export round: recording the outcome in the lease failed", {
        key: opts.key,
        cursor: cursor.toHex(),
        error: (err as Error).message,
      });
    }
    if (uploaded.outcome === "superseded") {
      log.warn("export round superseded by a newer artifact", {
        key: opts.key,
        cursor: cursor.toHex(),
        remoteCursor: uploaded.remoteCursor.toHex(),
      });
    } else {
      try {
        await opts.transport.prune(opts.key, 4 * opts.ttlMs, { signal: opts.signal });
      } catch (err) {
        log.warn("export round: pruning old payloads failed", { key: opts.key, error: (err as Error).message });
      }
    }
    return { outcome: uploaded.outcome, cursor, manifest: uploaded.manifest };
  } catch (err) {
    try {
      await guard.abandon();
    } catch (abandonErr) {
      log.warn("export round: abandoning the lease failed", { key: opts.key, error: (abandonErr as Error).message });
    }
    log.error("export round failed", { key: opts.key, error: (err as Error).message });
    throw err;
  } finally {
    if (roundDir) await rm(roundDir, { recursive: true, force: true });
  }
}
